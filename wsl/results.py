"""Queries over sweep results tables, from notebooks and ``wsl results``.

A sweep NAME keeps ``<root>/NAME/trials.parquet`` (one row per trial) and
``<root>/NAME/epochs.parquet`` (one row per trial per epoch); ``wsl.table``
owns those files (names, statuses, atomic writes). Here they are only read,
so no lock is needed: a writer replaces a table by one rename.

Readers want to ask "which weightings reconstruct working models *and* embed
well?" without knowing the dotted config paths by heart, so every column
argument (``where``, ``sort``, ``columns``) also accepts a short name: ``beta``
for ``loss.beta`` when ``beta`` is the last component of exactly one dotted
column and no column is called ``beta`` itself. A name that matches nothing
fails with the names that exist, before any work is done.

    >>> trials = load("paper-*")
    >>> query(trials, where="beta < 0.5 and probe_r2 > 0.8", sort="rec_acc_ratio", top=5)
    >>> pareto_front(trials)                      # rec_agreement vs probe_r2
    >>> pareto_front(trials, *objectives("mo-*"))  # a multi-objective sweep's own front
"""

from __future__ import annotations

import glob
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from wsl import pareto
from wsl import table as tables
from wsl.atomic import write_file
from wsl.columns import resolve, where_rows
from wsl.errors import WslError
from wsl.metrics import BEST, END, EPOCH, FINAL, OBJECTIVE, PARETO_RANK, SHOWN, is_objective
from wsl.objectives import objectives as sweep_objectives
from wsl.table import BOOKKEEPING, results_root

TABLES = {"trials": tables.TRIALS, "epochs": tables.EPOCHS}
SPREAD = ("_std", "_ci95")  # a PROMOTED row's spread over seeds beside each mean
NOT_CONFIG = {*BOOKKEEPING, *EPOCH, *END, *FINAL, "metrics_split", *(f"best_{m}" for m in BEST)}
SWEEP_NAME = re.compile(rf"[*?\[\]!{tables.NAME_CHARS}]+")  # a sweep name (``wsl.table``), or a glob over names


# ---------------------------------------------------------------- writing


def export(df: pd.DataFrame, path: Path | str) -> Path:
    """Write ``df`` to ``path`` as CSV (``.csv``) or a JSON list of records (``.json``), atomically."""
    path = Path(path)
    writers = {
        ".csv": lambda tmp: df.to_csv(tmp, index=False),
        ".json": lambda tmp: df.to_json(tmp, orient="records", indent=2),
    }
    if path.suffix.lower() not in writers:
        raise WslError(f"cannot export to {path}: unknown suffix {path.suffix!r}; use a .csv or .json file name")
    write_file(path, writers[path.suffix.lower()])
    return path


# ---------------------------------------------------------------- reading


def load(name: str, table: str = "trials", root: Path | str | None = None) -> pd.DataFrame:
    """The ``table`` ("trials" or "epochs") of sweep ``name``, or of every sweep a glob (``paper-*``) matches.

    Matching sweeps are concatenated; their ``sweep`` column tells them apart.
    A glob skips sweeps that have not written the table yet; a plain name
    without it is an error.
    """
    if table not in TABLES:
        raise WslError(f"unknown results table {table!r}; use one of {', '.join(TABLES)}")
    root = Path(root if root is not None else results_root())
    sweeps = _sweep_dirs(name, root)
    read = tables.read_trials if table == "trials" else tables.read_epochs
    found = [frame.assign(metrics_split=tables.metrics_split(d)) for d in sweeps if (frame := read(d)) is not None]
    if not found:
        missing = sweeps[0] / TABLES[table] if len(sweeps) == 1 else root / name / TABLES[table]
        raise WslError(
            f"no {table} table for sweep {name!r}: {missing} does not exist; "
            "a sweep writes it when its first trial starts (is the sweep running?)"
        )
    return pd.concat(found, ignore_index=True)


def split_note(frame: pd.DataFrame) -> str | None:
    """A warning when ``frame``'s metric columns are not all validation figures: sweeps of an earlier wsl
    (test figures) or tables without their ``sweep.yaml`` (unknown), and, beside validation ones, not to mix."""
    if "metrics_split" not in frame or (frame["metrics_split"] == "val").all():
        return None
    which = frame.groupby("metrics_split")["sweep"].unique().map(sorted)
    parts = []
    if "test" in which:
        parts.append(
            f"{', '.join(which['test'])} (written before version {tables.VALIDATION_FROM}): on the zoo's test models"
        )
    if "unknown" in which:
        parts.append(f"{', '.join(which['unknown'])} (no {tables.SWEEP_FILE}): on models unknown")
    mixed = "; do not compare them with the others' validation figures" if "val" in which else ""
    return f"note: metric columns of {'; '.join(parts)}{mixed} (see the metrics_split column)"


def sweep_dir(name: str, root: Path | str | None = None) -> Path:
    """The directory of sweep ``name`` (a plain name, not a glob), or an error listing the sweeps there."""
    (directory,) = _sweep_dirs(tables.check_name(name), Path(root if root is not None else results_root()))
    return directory


def _sweep_dirs(name: str, root: Path) -> list[Path]:
    if not SWEEP_NAME.fullmatch(name):
        raise WslError(
            f"sweep name {name!r} is invalid: use letters, digits, '-' and '_' (or a glob such as 'paper-*')"
        )
    dirs = sorted(p for p in root.glob(name) if p.is_dir())
    if dirs:
        return dirs
    known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    what = "matches" if glob.has_magic(name) else "is named"
    hint = f"sweeps there: {', '.join(known)}" if known else "set $WSL_RESULTS to the directory that holds the sweeps"
    raise WslError(f"no sweep {what} {name!r} under {root} ({root / name} does not exist); {hint}")


# ---------------------------------------------------------------- querying


def query(
    df: pd.DataFrame,
    where: str | None = None,
    sort: str | Sequence[str] | None = None,
    top: int | None = None,
    columns: Sequence[str] | None = None,
    ascending: bool = False,
) -> pd.DataFrame:
    """Filter by the pandas expression ``where``, sort (default: ``objective``, best first), keep ``top`` rows.

    Names in ``where``, ``sort`` and ``columns`` may be full (``loss.beta``,
    bare or in backticks) or short (``beta``). NaN sorts last.
    """
    if top is not None and top < 1:
        raise WslError(f"top={top} must be >= 1")
    if sort is None and PARETO_RANK in df.columns:  # a multi-objective sweep: its front first
        sort, ascending = PARETO_RANK, True
    by = _sort_columns(df, sort)
    keep = [resolve(df, c) for c in columns] if columns else None
    if where:
        df = where_rows(df, where)
    if by:
        df = df.sort_values(by, ascending=ascending, na_position="last", kind="stable")
    if top is not None:
        df = df.head(top)
    return (df[keep] if keep else df).reset_index(drop=True)


def _sort_columns(df: pd.DataFrame, sort: str | Sequence[str] | None) -> list[str]:
    if sort is None:
        return [OBJECTIVE] if OBJECTIVE in df.columns else []
    return [resolve(df, c) for c in ([sort] if isinstance(sort, str) else sort)]


def pareto_front(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The rows no other row beats on every one of ``columns`` (higher is better; default ``rec_agreement``
    and ``probe_r2``), sorted by them in order.

    A row is dominated when another is at least as good on all and better on
    one; equal points are all kept. Rows with NaN in any column are ignored.
    """
    columns = [resolve(df, c) for c in columns or ("rec_agreement", "probe_r2")]
    rows = df.dropna(subset=columns)
    front = rows[pareto.on_front(rows[columns].to_numpy(dtype=float).reshape(len(rows), len(columns)))]
    return front.sort_values(columns, kind="stable").reset_index(drop=True)


def objectives(name: str, root: Path | str | None = None) -> list[str]:
    """The objective columns of the sweeps ``name`` matches (``objective``, or a multi-objective sweep's
    several), from their ``sweep.yaml``; sweeps judged by different objectives are an error."""
    found = _objectives_by_sweep(name, root)
    kinds = {tuple(v) for v in found.values()}
    if len(kinds) > 1:
        raise WslError(f"sweeps {', '.join(found)} have different objectives {sorted(kinds)}: query one at a time")
    return list(kinds.pop()) if kinds else [OBJECTIVE]


def shown_objectives(name: str, root: Path | str | None = None) -> list[str]:
    """Every objective column of the sweeps ``name`` matches, in order: what a listing of them shows beside the
    default metrics (a multi-objective sweep's objectives may be none of ``SHOWN``)."""
    found = _objectives_by_sweep(name, root).values()
    return list(dict.fromkeys(column for columns in found for column in columns))


def _objectives_by_sweep(name: str, root: Path | str | None) -> dict[str, list[str]]:
    root = Path(root if root is not None else results_root())
    found = {}
    for directory in _sweep_dirs(name, root):
        saved = tables.saved_sweep(directory) or {}
        if "objective" in saved:
            found[directory.name] = list(sweep_objectives(saved["objective"]))
    return found


def front(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``--pareto``: with several objective ``columns``, the front of the trials that reached ``max_t`` (at their
    last epoch: comparable figures) on them; with one, the front of ``rec_agreement`` vs ``probe_r2``."""
    if len(columns) < 2:
        return pareto_front(df)
    return pareto_front(df[df["status"] == tables.TERMINATED], *columns)


# ---------------------------------------------------------------- showing


def default_columns(df: pd.DataFrame, objectives: Sequence[str] = ()) -> list[str]:
    """Who (sweep when several, trial, status), the config values that differ between rows, progress, metrics:
    the sweeps' ``objectives`` first, then ``SHOWN``."""
    ids = [c for c in ("trial_id", "status") if c in df.columns]
    if "sweep" in df.columns and df["sweep"].nunique() > 1:
        ids.insert(0, "sweep")
    config = [
        c
        for c in df.columns
        if c not in NOT_CONFIG and not is_objective(str(c)) and not str(c).endswith(SPREAD) and _varies(df[c])
    ]
    progress = ["epochs"] if "epochs" in df.columns else ["epoch"] if "epoch" in df.columns else []
    ranked = [PARETO_RANK] if PARETO_RANK in df.columns else []
    objective = [c for c in df.columns if is_objective(c) and c not in SHOWN]
    objective += [c for c in objectives if c in df.columns and c not in objective]
    return [
        *ids,
        *config,
        *progress,
        *ranked,
        *objective,
        *(m for m in SHOWN if m in df.columns and m not in objective),
    ]


def _varies(column: pd.Series) -> bool:
    return column.astype(str).nunique() > 1  # as text: a config value may be a list (unhashable)


def render(
    df: pd.DataFrame, columns: Sequence[str] | None = None, title: str | None = None, objectives: Sequence[str] = ()
) -> Table:
    """A rich table of ``df``: floats to 3 decimals (tiny ones in scientific notation), missing values as "-";
    ``columns``, else ``default_columns`` with the sweeps' ``objectives``.

    Headers use the short names that ``where`` and ``sort`` accept (``beta`` for ``loss.beta``) to
    keep the table narrow; cells wrap rather than being cut short, so a trial id stays whole.
    """
    shown = [resolve(df, c) for c in columns] if columns else default_columns(df, objectives)
    table = Table(title=title)
    for column in shown:
        numeric = pd.api.types.is_numeric_dtype(df[column]) and not pd.api.types.is_bool_dtype(df[column])
        table.add_column(_header(df, column), justify="right" if numeric else "left", overflow="fold")
    for row in df[shown].itertuples(index=False):
        table.add_row(*map(cell_text, row))
    return table


def _header(df: pd.DataFrame, column) -> str:
    short = str(column).rsplit(".", 1)[-1]
    try:
        return short if resolve(df, short) == column else str(column)
    except WslError:
        return str(column)


def cell_text(value, missing: str = "-") -> str:
    """A value as every table of wsl shows it (the terminal's, the report's, a promoted config's): floats to 3
    decimals, below 0.001 in scientific notation (a learning rate); ``missing`` for None and NaN."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return missing
    if isinstance(value, (float, np.floating)):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"
    return str(value)


def spread(row, key: str) -> str:
    """A PROMOTED row's ``key`` as ``mean ± std`` over its seeds; ``-`` where it has none."""
    value, std = row.get(key), row.get(f"{key}_std")
    if not is_number(value):
        return "-"
    return f"{float(value):.3f}" + (f" ± {float(std):.3f}" if is_number(std) else "")


def interval(row, key: str) -> str:
    """``[low, high]``: the 95% interval over seeds of a PROMOTED row's test figure ``key``; ``-`` where none."""
    value, half = row.get(key), row.get(f"{key}_ci95")
    return f"[{value - half:.3f}, {value + half:.3f}]" if is_number(value) and is_number(half) else "-"


def is_number(value) -> bool:
    """A finite number (not a bool): a metric cell worth showing."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return number and math.isfinite(float(value))


def snapshot(
    name: str, table: str = "trials", root: Path | str | None = None, top: int | None = 10, **query_args
) -> Table:
    """One frame of ``watch``: load, query, render."""
    rows = query(load(name, table, root), top=top, **query_args)
    shown = time.strftime("%H:%M:%S")
    title = f"{table} of {name} at {shown}"
    return render(rows, query_args.get("columns"), title, shown_objectives(name, root))


def watch(
    name: str,
    every: float,
    table: str = "trials",
    root: Path | str | None = None,
    top: int | None = 10,
    console: Console | None = None,
    **query_args,
) -> None:
    """Redraw ``snapshot`` every ``every`` seconds until Ctrl-C.

    A sweep that has not written its table yet (or any other error) is shown
    in place and retried, so the view can be opened as the sweep starts.
    """
    if every <= 0:
        raise WslError(f"watch interval {every} must be > 0 seconds")
    try:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                try:
                    view = snapshot(name, table, root, top, **query_args)
                except WslError as e:
                    view = Text(f"{e} (retrying every {every:g}s, Ctrl-C to stop)", style="red")
                live.update(view, refresh=True)
                time.sleep(every)
    except KeyboardInterrupt:
        pass
