"""The results table's contract: where a sweep's files are, what a row's status means, how rows are written.

A sweep NAME lives in ``<root>/NAME/`` (root: ``$WSL_RESULTS``, else
``results``) and holds ``trials.parquet`` (one row per trial, plus one
``PROMOTED`` row per final run), ``epochs.parquet`` (one row per trial and
epoch), ``sweep.yaml`` and the Optuna study. Two writers share
``trials.parquet``: the sweep's Tune callback, as trials report, and
``wsl promote``, minutes later, possibly while the sweep still runs. So every
write is a read-modify-write under an exclusive file lock (``fcntl.flock``,
across processes), replacing only the writer's own rows, and lands by an
atomic rename: a reader needs no lock and never sees half a table.

Every module that reads or writes these files goes through here; this module
imports no Ray, so the query layer and the report stay light.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from wsl.atomic import write_file
from wsl.errors import WslError

TRIALS, EPOCHS = "trials.parquet", "epochs.parquet"
SWEEP_FILE = "sweep.yaml"
JOURNAL = "optuna.journal"
PROMOTED_DIR = "promoted"
LOCK = ".table.lock"
KEYS = {TRIALS: ("trial_id",), EPOCHS: ("trial_id", "epoch")}  # what identifies a row of each table

NAME_CHARS = "A-Za-z0-9_-"  # what a sweep name is made of (a directory name: no '/', no newline)
NAME = re.compile(rf"[A-Za-z0-9][{NAME_CHARS}]*")

RUNNING = "RUNNING"
TERMINATED = "TERMINATED"  # ran to max_t: told to Optuna as complete
STOPPED = "STOPPED"  # stopped early by ASHA: told to Optuna as pruned
ERROR = "ERROR"  # failed after its retries
INTERRUPTED = "INTERRUPTED"  # running when the driver died; Tune resumes it, or it stays interrupted
REPLACED = "REPLACED"  # started just before the driver died, never ran an epoch, unknown to the restored Tune
PROMOTED = "PROMOTED"  # a final run of ``wsl promote``, mean over seeds
FINISHED = (TERMINATED, STOPPED)  # trials that ended normally: what promotion picks from

BOOKKEEPING = (
    "sweep",
    "trial_id",
    "status",
    "epochs",
    "stopped_early",
    "failures",
    "wall_time_s",
    "checkpoint",
    "error",
    "reported_at",
    "source_trial",
    "seeds",
    "config_file",
    "pick_rule",
    "pick_metric",
    "pick_value",
    "race_values",
    "promoted_seeds",
    "metrics_split",
)
"""Who, state and provenance: the columns of a row that are neither config nor metric."""


VALIDATION_FROM = 3
"""The ``sweep.yaml`` version from which a sweep's metric columns are validation figures. Sweeps written
before it computed the same columns (``rec_*``, ``probe_*``, ``objective``) on the zoo's test models."""


def metrics_split(directory: Path) -> str:
    """Which models sweep ``directory``'s metric columns are on: ``val``; ``test`` for a sweep written before
    version ``VALIDATION_FROM``; ``unknown`` for a table without its ``sweep.yaml`` (copied alone)."""
    path = Path(directory) / SWEEP_FILE
    if not path.is_file():
        return "unknown"
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise WslError(f"cannot read {path}: {e}") from None
    version = tree.get("version", 1) if isinstance(tree, dict) else 1  # no version key: the first format
    return "val" if version >= VALIDATION_FROM else "test"


def stopped_early(epochs: int, max_t: int) -> bool:
    """A trial that ended before ``max_t`` epochs was stopped by ASHA (the one rule, for table, view and study)."""
    return epochs < max_t


def end_status(epochs: int, max_t: int) -> str:
    return STOPPED if stopped_early(epochs, max_t) else TERMINATED


def results_root() -> Path:
    """Where sweeps keep their results: ``$WSL_RESULTS``, else ``results`` under the working directory."""
    return Path(os.environ.get("WSL_RESULTS", "results"))


def check_name(name: str) -> str:
    """A sweep name is a directory name: letters, digits, '-' and '_' (no '/', no newline)."""
    if not NAME.fullmatch(name):
        raise WslError(f"sweep name {name!r} must be a plain identifier (letters, digits, '-', '_')")
    return name


def read(path: Path) -> pd.DataFrame:
    """One table of a sweep, with a ``sweep`` column; a clear error if it is unreadable.

    The file is opened once, as an Arrow file: pyarrow opens a path more than
    once (footer, then pages), and a writer's rename in between would pair the
    old file's footer with the new one's pages. Not as Python bytes: Arrow may
    release its reader on a worker thread after the read returns, and a
    Python-owned buffer freed there as the interpreter exits aborts the
    process ("terminate called without an active exception", apache/arrow#33975).
    """
    try:
        with pa.OSFile(str(path)) as source:
            frame = pd.read_parquet(source)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise WslError(
            f"cannot read {path}: {e}; it is not a readable parquet table (delete it or restore it)"
        ) from None
    if "sweep" not in frame.columns:
        frame.insert(0, "sweep", Path(path).parent.name)
    return frame


def write(path: Path, rows: Iterable[dict] | pd.DataFrame) -> None:
    """Replace ``path`` by a table of ``rows``, atomically (no lock: for files one writer owns).

    A column whose values are of several types (``tokens.width`` searched over
    ``[32, row]``) is stored as text: parquet columns have one type.
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    mixed = [c for c in frame.columns if frame[c].dtype == object and frame[c].dropna().map(type).nunique() > 1]
    frame = frame.assign(**{c: frame[c].map(_text) for c in mixed}) if mixed else frame
    write_file(path, lambda tmp: frame.to_parquet(tmp, index=False))


def _text(value):
    """A cell of a mixed column as text, a missing one left missing (``astype(str)`` of pandas 2 writes "None")."""
    return value if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def cell(value):
    """A table cell as the plain Python value a config holds: numpy scalars unwrapped, and the numbers of a
    mixed column (``write`` stores ``[32, "row"]`` as text) read back as numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the sweep directory's table lock (blocking; across processes) for a read-modify-write."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upsert(directory: Path, name: str, rows: Sequence[dict]) -> pd.DataFrame:
    """Put ``rows`` into table ``name`` of ``directory``: each replaces the row with its key, others stay.

    Read and write happen under the lock, so rows another process wrote
    since this one last looked are kept. Returns the table as written.
    """
    keys = list(KEYS[name])
    path = directory / name
    with locked(directory):
        table = pd.DataFrame(list(rows))
        if path.is_file():
            table = pd.concat([read(path), table], ignore_index=True)
        if table.empty:
            return table
        key = table[keys].astype(str).agg("\x1f".join, axis=1)
        first = pd.Series(range(len(key)), index=key).groupby(level=0).min()  # a row keeps its place
        newest = (~key.duplicated(keep="last")).to_numpy()  # the newest version of each row
        place = key.map(first).to_numpy()[newest]
        # picked by position, no helper columns: inserting one into a PROMOTED row's hundreds warns (fragmented)
        table = table[newest].iloc[np.argsort(place, kind="stable")].reset_index(drop=True)
        if name == EPOCHS:
            table = table.sort_values(keys, kind="stable", ignore_index=True)
        write(path, table)
    return table
