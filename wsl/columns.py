"""Column names as a user writes them: short names (``beta`` for ``loss.beta``) and ``--where`` expressions.

``wsl results --where``, ``--sort`` and ``--columns``, ``wsl promote --pick``
and the report's axes all name a results table's columns the same way: the
full name, bare or in backticks, or the last component of a dotted one when
only one column ends so. A misspelt name is one error listing the columns.
"""

from __future__ import annotations

import difflib
import re

import pandas as pd

from wsl.errors import WslError

KEYWORDS = {"and", "or", "not", "in", "is", "True", "False", "None"}
# In a --where expression: a string literal, a backticked name, a number (so 1e5 is no name), a (dotted) name.
TOKEN = re.compile(
    r"""(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    r"|`(?P<quoted>[^`]*)`"
    r"|(?P<number>\d[\w.]*)"
    r"|(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
)


def resolve(df: pd.DataFrame, name: str) -> str:
    """The column ``name`` refers to: itself, or the one dotted column whose last component it is."""
    if name in df.columns:
        return name
    matches = [c for c in df.columns if isinstance(c, str) and c.rsplit(".", 1)[-1] == name and "." in c]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise WslError(f"column name {name!r} is ambiguous: it could be {', '.join(matches)}; use the full name")
    close = difflib.get_close_matches(name, [*map(str, df.columns), *_short_names(df)], n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise WslError(f"unknown column {name!r}; {hint}available columns: {', '.join(map(str, df.columns))}")


def _short_names(df: pd.DataFrame) -> list[str]:
    return [c.rsplit(".", 1)[-1] for c in df.columns if isinstance(c, str) and "." in c]


def where_rows(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """The rows of ``df`` that the pandas expression ``where`` keeps, its names resolved (``_rewrite``)."""
    expression = _rewrite(df, where)
    try:
        return df.query(expression, engine="python")
    except Exception as e:  # the expression is the user's: any failure is a bad --where
        raise WslError(f"cannot evaluate where={where!r}: {type(e).__name__}: {e}") from None


def _rewrite(df: pd.DataFrame, where: str) -> str:
    """``where`` with every column name full and in backticks: ``beta < 1`` becomes ```loss.beta` < 1``."""

    def replace(m: re.Match) -> str:
        if m["quoted"] is not None:
            return f"`{resolve(df, m['quoted'])}`"
        name = m["name"]
        if name is None or name in KEYWORDS or _is_call(where, m.end(), df, name):
            return m[0]
        column, rest = _split_attribute(df, name)
        return f"`{column}`{rest}"

    return TOKEN.sub(replace, where)


def _is_call(where: str, end: int, df: pd.DataFrame, name: str) -> bool:
    """A function name such as ``abs(...)``: left to pandas."""
    return where[end:].lstrip().startswith("(") and name not in df.columns and "." not in name


def _split_attribute(df: pd.DataFrame, name: str) -> tuple[str, str]:
    """``loss.beta`` -> (``loss.beta``, ""); ``status.str.len`` -> (``status``, ``.str.len``)."""
    head, _, rest = name.partition(".")
    if name in df.columns or not rest or any(str(c).startswith(head + ".") for c in df.columns):
        return resolve(df, name), ""
    return resolve(df, head), "." + rest
