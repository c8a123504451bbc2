"""Records a running sweep into its results table (``wsl.table``), as trials report and finish.

A Ray Tune ``Callback`` in the driver keeps this sweep's trial and epoch rows
and, after every change, upserts them into ``trials.parquet`` /
``epochs.parquet`` under the table's lock, so ``wsl results`` can read them
while the sweep runs and rows another writer added (``wsl promote``'s) stay.
Epoch rows also carry ``reported_at`` (Unix seconds when the driver received
them): the file is sorted by trial, and a search's progress ("best so far
after N trial-epochs") needs the order in which results came in.

On resume it starts from the rows on disk. A row still RUNNING belonged to
the dead driver and becomes INTERRUPTED; Tune restarts it from its checkpoint
if its last snapshot knew the trial (the row turns RUNNING again). A trial
the snapshot did not know and that never reported an epoch is REPLACED: the
searcher draws another in its place.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from ray import tune

from wsl import table
from wsl.config import flatten
from wsl.metrics import BEST, EPOCH, OBJECTIVE

EPOCH_METRICS = (*EPOCH, OBJECTIVE)


class TableRecorder(tune.Callback):
    def __init__(self, directory: Path, sweep: str, base_config: dict, max_t: int):
        self.directory = Path(directory)
        self.sweep = sweep
        self.base = base_config  # flattened TrainConfig of the sweep; trial values override it
        self.max_t = max_t
        self.trials: dict[str, dict] = {}
        self.epochs: dict[tuple[str, int], dict] = {}
        self.restored = False  # resumed rows checked against what Tune restored

    def setup(self, **info) -> None:
        if (self.directory / table.TRIALS).is_file():
            rows = table.read(self.directory / table.TRIALS).to_dict("records")
            self.trials = {r["trial_id"]: r for r in rows if r["status"] != table.PROMOTED}
            interrupted = [{**r, "status": table.INTERRUPTED} for r in rows if r["status"] == table.RUNNING]
            self.trials.update({r["trial_id"]: r for r in interrupted})
            if interrupted:
                table.upsert(self.directory, table.TRIALS, interrupted)
        if (self.directory / table.EPOCHS).is_file():
            rows = table.read(self.directory / table.EPOCHS).to_dict("records")
            self.epochs = {(r["trial_id"], int(r["epoch"])): r for r in rows}

    def on_step_begin(self, iteration, trials, **info) -> None:
        """On the first step, ``trials`` is what Tune restored: interrupted rows it does not know never resume."""
        if self.restored:
            return
        self.restored = True
        known = {t.trial_id for t in trials}
        lost = [
            row
            for tid, row in self.trials.items()
            if row["status"] == table.INTERRUPTED and tid not in known and row.get("epochs", 0) == 0
        ]
        for row in lost:
            row["status"] = table.REPLACED
        if lost:
            table.upsert(self.directory, table.TRIALS, lost)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._update(trial, table.RUNNING, {})

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        metrics = {k: result[k] for k in EPOCH_METRICS if k in result}
        row = {"sweep": self.sweep, "trial_id": trial.trial_id, **metrics, "reported_at": time.time()}
        self.epochs[(trial.trial_id, int(result["epoch"]))] = row
        table.upsert(self.directory, table.EPOCHS, [row])
        self._update(trial, table.RUNNING, {**metrics, "wall_time_s": result.get("time_total_s", float("nan"))})

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._update(trial, trial_end_status(trial, self.max_t), {})

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._update(trial, table.ERROR, {"error": last_line(trial.error_file) or "trial raised"})

    def _update(self, trial, status: str, metrics: dict) -> None:
        tid = trial.trial_id
        row = self.trials.get(tid) or {"sweep": self.sweep, "trial_id": tid, **self.base, **flatten(trial.config)}
        row.update(metrics, status=status)
        history = [r for (t, _), r in self.epochs.items() if t == tid]
        for name in BEST:
            values = [r[name] for r in history if pd.notna(r.get(name))]
            row[f"best_{name}"] = max(values) if values else float("nan")
        row["epochs"] = len(history)
        row["stopped_early"] = status == table.STOPPED
        row["failures"] = trial.num_failures
        row.setdefault("wall_time_s", 0.0)
        checkpoint = trial.checkpoint
        row["checkpoint"] = checkpoint.path if checkpoint is not None else None
        row.setdefault("error", None)
        self.trials[tid] = row
        table.upsert(self.directory, table.TRIALS, [row])


def trial_end_status(trial, max_t: int) -> str:
    """A completed trial's status: STOPPED if it ended before ``max_t`` epochs (ASHA stopped it), else TERMINATED."""
    return table.end_status(int((trial.last_result or {}).get("training_iteration", 0)), max_t)


def last_line(path: str | None) -> str | None:
    """The last non-empty line of a trial's error file (the exception), or None when there is none."""
    if not path or not Path(path).is_file():
        return None
    lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else None
