"""The results table's contract: where a sweep's files are, what a row's status means, how rows are written.

A sweep NAME lives in ``<root>/NAME/`` (root: ``$WSL_RESULTS``, else
``results``) and holds ``trials.parquet`` (one row per trial, plus one
``PROMOTED`` row per final run), ``epochs.parquet`` (one row per trial and
epoch), ``sweep.yaml`` and the Optuna study. Two writers share
``trials.parquet``: the sweep's Tune callback, as trials start and end, and
``wsl promote``, minutes later, possibly while the sweep still runs. So every
write is a read-modify-write under an exclusive file lock (``fcntl.flock``,
across processes), replacing only the writer's own rows, and lands by an
atomic rename: a reader needs no lock and never sees half a table.

A sweep's driver reports every epoch of every trial: rewriting a whole
table for each report would cost more per report as the sweep grows. So a
running sweep appends its rows to small part files (``epochs.parts/``,
``trials.parts/``, ``PART_ROWS`` rows each; only the newest is rewritten),
and folds them into the tables when it ends or resumes (under the lock).
A trial's row is appended when it starts and ends, not every epoch:
``read_trials`` brings a running trial's figures up to its newest epoch row.
Read a sweep's tables through ``read_trials`` and ``read_epochs``.

Every module that reads or writes these files goes through here; this module
imports no Ray, so the query layer and the report stay light.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from wsl.atomic import write_file
from wsl.errors import WslError
from wsl.metrics import BEST, EPOCH, PARETO_RANK, is_objective

TRIALS, EPOCHS = "trials.parquet", "epochs.parquet"
PARTS = {TRIALS: "trials.parts", EPOCHS: "epochs.parts"}  # rows a running sweep appended, not yet folded in
PART_ROWS = 256  # rows per part: bounds what one report rewrites
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
    PARETO_RANK,
)
"""Who, state and provenance: the columns of a row that are neither config nor metric."""


VALIDATION_FROM = 3
"""The ``sweep.yaml`` version from which a sweep's metric columns are validation figures. Sweeps written
before it computed the same columns (``rec_*``, ``probe_*``, ``objective``) on the zoo's test models."""


def saved_sweep(directory: Path) -> dict | None:
    """Sweep ``directory``'s ``sweep.yaml`` as a plain dict (``{}`` when it holds no mapping); None when there is
    none (a table copied alone). Unreadable YAML is one error naming the file."""
    path = Path(directory) / SWEEP_FILE
    if not path.is_file():
        return None
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise WslError(f"cannot read {path}: {e}") from None
    return tree if isinstance(tree, dict) else {}


def metrics_split(directory: Path) -> str:
    """Which models sweep ``directory``'s metric columns are on: ``val``; ``test`` for a sweep written before
    version ``VALIDATION_FROM``; ``unknown`` for a table without its ``sweep.yaml`` (copied alone)."""
    tree = saved_sweep(directory)
    if tree is None:
        return "unknown"
    return "val" if tree.get("version", 1) >= VALIDATION_FROM else "test"  # no version key: the first format


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
    path = directory / name
    with locked(directory):
        table = pd.DataFrame(list(rows))
        if path.is_file():
            table = pd.concat([read(path), table], ignore_index=True)
        if table.empty:
            return table
        table = _newest(table, name)
        write(path, table)
    return table


def _newest(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """The newest version (the last) of each row of ``table`` by table ``name``'s key, where its first stood;
    epoch rows sorted by trial and epoch."""
    keys = list(KEYS[name])
    newest = ~table.duplicated(keys, keep="last").to_numpy()
    if name == EPOCHS:
        return table[newest].sort_values(keys, kind="stable", ignore_index=True)
    place = table.groupby(keys, sort=False).ngroup().to_numpy()[newest]  # a row keeps its first place
    # picked by position, no helper columns: inserting one into a PROMOTED row's hundreds warns (fragmented)
    return table[newest].iloc[np.argsort(place, kind="stable")].reset_index(drop=True)


# ---------------------------------------------------------------- rows a running sweep appends


def exists(directory: Path, name: str) -> bool:
    """Whether sweep ``directory`` has table ``name``: its file, or parts a running sweep appended."""
    parts = Path(directory) / PARTS[name]
    return (Path(directory) / name).is_file() or (parts.is_dir() and any(parts.glob("*.parquet")))


def read_rows(directory: Path, name: str) -> pd.DataFrame | None:
    """Table ``name`` of sweep ``directory``: its file and the parts appended since it was folded, newest
    version of each row; None if there is neither.

    The parts are read before the file: a fold that runs meanwhile writes the
    file (holding the parts' rows) before it removes the parts, so a part gone
    by the time it is opened is in the file read after it. Parts are numbered
    in the order they were written and only the newest grows, so the parts
    read are a prefix of the sweep's reports: no row without those before it.
    """
    directory = Path(directory)
    parts = directory / PARTS[name]
    files = sorted(parts.glob("*.parquet")) if parts.is_dir() else []
    with ThreadPoolExecutor() as pool:  # a part is small: opening it is most of its cost; Arrow's is GIL-free
        found = [t for t in pool.map(_read_part, files) if t is not None]
    frames = [_concat(found)] if found else []
    if (directory / name).is_file():
        frames.insert(0, read(directory / name))
    if not frames:
        return None
    rows = pd.concat(frames, ignore_index=True)
    return rows if rows.empty else _newest(rows, name)


def read_epochs(directory: Path) -> pd.DataFrame | None:
    """Every epoch row of sweep ``directory``, sorted by trial and epoch; None if it has none yet."""
    return read_rows(directory, EPOCHS)


def _read_part(path: Path) -> pa.Table | None:
    try:
        source = pa.OSFile(str(path))
    except FileNotFoundError:  # folded since the listing
        return None
    with source:
        return pq.read_table(source)


def _concat(parts: list[pa.Table]) -> pd.DataFrame:
    """Parts as one frame, joined in Arrow (one conversion to pandas, not one per part); through pandas where
    a column is numbers in one part and text in another (``_write_part``)."""
    try:
        return pa.concat_tables(parts, promote_options="permissive").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.concat([part.to_pandas() for part in parts], ignore_index=True)


class Appender:
    """The driver's writer of table ``name``'s rows while a sweep runs: ``append`` rewrites only the newest
    part (at most ``PART_ROWS`` rows), so a report costs the same in a sweep of 1,000 rows and of 100,000.
    A row appended again (the same key) replaces the earlier version when read; within the newest part it
    replaces it where it stands, so an epoch's row and its checkpoint's, appended one after the other, are
    one row to read, not two (across a part boundary, the reader keeps the later). Every row has its table's
    key columns."""

    def __init__(self, directory: Path, name: str):
        self.parts = Path(directory) / PARTS[name]
        self.keys = KEYS[name]
        numbers = [int(p.stem) for p in self.parts.glob("*.parquet")] if self.parts.is_dir() else []
        self.number = max(numbers, default=-1) + 1  # never rewrite a part written before: a reader may hold it
        self.rows: dict[tuple, dict] = {}  # the newest part's rows by key, in the order they first came

    def append(self, row: dict) -> None:
        self.rows[tuple(row[k] for k in self.keys)] = dict(row)
        self.parts.mkdir(parents=True, exist_ok=True)
        _write_part(self.parts / f"{self.number:08d}.parquet", list(self.rows.values()))
        if len(self.rows) >= PART_ROWS:
            self.number, self.rows = self.number + 1, {}


def _write_part(path: Path, rows: list[dict]) -> None:
    """Straight from the dicts with pyarrow (no pandas frame per report), every key of any row a column;
    through ``write`` where a column holds numbers and words, which ``write`` stores as text."""
    columns = dict.fromkeys(key for row in rows for key in row)
    try:
        part = pa.Table.from_pydict({c: [row.get(c) for row in rows] for c in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        write(path, rows)
        return
    write_file(path, lambda tmp: pq.write_table(part, tmp))


def fold(directory: Path, name: str) -> None:
    """Fold the parts of table ``name`` into its file and remove them (the driver's, at sweep end and resume),
    under the lock: ``wsl promote`` may be upserting its rows into the trials table meanwhile."""
    directory = Path(directory)
    if not (directory / PARTS[name]).is_dir():
        return
    with locked(directory):
        rows = read_rows(directory, name)
        if rows is not None:
            write(directory / name, rows)
        for part in (directory / PARTS[name]).glob("*.parquet"):
            part.unlink()
        (directory / PARTS[name]).rmdir()


# ---------------------------------------------------------------- trial rows, as of their newest epoch


def progress(history: list[dict]) -> dict:
    """What a trial's row says of its epoch rows ``history`` (in epoch order): the last epoch's figures (and
    where its checkpoint is), the best of each ``BEST`` metric over them, and how many epochs it ran."""
    last = history[-1] if history else {}
    out = {k: v for k, v in last.items() if k in (*EPOCH, "wall_time_s", "checkpoint") or is_objective(k)}
    for name in BEST:
        values = [r[name] for r in history if pd.notna(r.get(name))]
        out[f"best_{name}"] = max(values) if values else float("nan")
    out["epochs"] = len(history)
    return out


def read_trials(directory: Path) -> pd.DataFrame | None:
    """Sweep ``directory``'s trial rows, a RUNNING trial's brought up to its newest epoch row (the driver
    writes a trial's row when it starts and ends, not every epoch); None if the sweep has no trials table."""
    trials = read_rows(directory, TRIALS)
    if trials is None or trials.empty:
        return trials
    running = trials.index[trials["status"] == RUNNING]
    epochs = read_epochs(directory) if len(running) else None
    if epochs is None or epochs.empty:
        return trials
    ids = set(trials.loc[running, "trial_id"])
    histories = {t: rows.to_dict("records") for t, rows in epochs[epochs["trial_id"].isin(ids)].groupby("trial_id")}
    for i in running:
        for key, value in progress(histories.get(trials.at[i, "trial_id"], [])).items():
            trials.loc[i, key] = value  # .loc: a metric the row lacks becomes a column (.at will raise)
    return trials
