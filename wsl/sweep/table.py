"""The sweep's results table, written by the driver as trials report and finish.

A Ray Tune ``Callback`` keeps one row per trial and one per trial-epoch and
rewrites ``trials.parquet`` / ``epochs.parquet`` atomically after every
change (``wsl.results.write_parquet``), so ``wsl results`` can read them
while the sweep runs. On resume it starts from the rows on disk: a trial
that finished before the driver died keeps its row. Columns: DESIGN.md
(results table) and ``wsl.results``; epoch rows also carry ``reported_at``
(Unix seconds when the driver received them), because the file is sorted by
trial and a search's progress ("best so far after N trial-epochs") needs
the order in which results came in.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from ray import tune

from wsl.metrics import BEST, EPOCH
from wsl.results import write_parquet
from wsl.sweep.config import flatten

TRIALS, EPOCHS = "trials.parquet", "epochs.parquet"
EPOCH_METRICS = (*EPOCH, "objective")


class ResultsTable(tune.Callback):
    def __init__(self, directory: Path, sweep: str, base_config: dict, max_t: int):
        self.directory = Path(directory)
        self.sweep = sweep
        self.base = base_config  # flattened TrainConfig of the sweep; trial values override it
        self.max_t = max_t
        self.trials: dict[str, dict] = {}
        self.epochs: dict[tuple[str, int], dict] = {}

    def setup(self, **info) -> None:
        """Start from what is on disk (a resumed sweep), so finished trials keep their rows.

        A row still RUNNING belonged to the dead driver: Tune restarts it from its
        checkpoint if its last snapshot knew the trial (the row turns RUNNING again),
        otherwise the searcher samples a replacement and the row stays INTERRUPTED.
        """
        if (self.directory / TRIALS).is_file():
            rows = pd.read_parquet(self.directory / TRIALS).to_dict("records")
            self.trials = {
                r["trial_id"]: {**r, "status": "INTERRUPTED" if r["status"] == "RUNNING" else r["status"]} for r in rows
            }
        if (self.directory / EPOCHS).is_file():
            rows = pd.read_parquet(self.directory / EPOCHS).to_dict("records")
            self.epochs = {(r["trial_id"], int(r["epoch"])): r for r in rows}

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._update(trial, "RUNNING", {})

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        metrics = {k: result[k] for k in EPOCH_METRICS if k in result}
        self.epochs[(trial.trial_id, int(result["epoch"]))] = {
            "sweep": self.sweep,
            "trial_id": trial.trial_id,
            **metrics,
            "reported_at": time.time(),
        }
        self._update(trial, "RUNNING", {**metrics, "wall_time_s": result.get("time_total_s", float("nan"))})

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        epochs = int((trial.last_result or {}).get("training_iteration", 0))
        self._update(trial, "STOPPED" if epochs < self.max_t else "TERMINATED", {})

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        error = trial.error_file and Path(trial.error_file).read_text(errors="replace").strip().splitlines()[-1]
        self._update(trial, "ERROR", {"error": error or "trial raised"})

    def _update(self, trial, status: str, metrics: dict) -> None:
        tid = trial.trial_id
        row = self.trials.get(tid) or {"sweep": self.sweep, "trial_id": tid, **self.base, **flatten(trial.config)}
        row.update(metrics, status=status)
        history = [r for (t, _), r in self.epochs.items() if t == tid]
        for name in BEST:
            values = [r[name] for r in history if pd.notna(r.get(name))]
            row[f"best_{name}"] = max(values) if values else float("nan")
        row["epochs"] = len(history)
        row["stopped_early"] = status == "STOPPED"
        row.setdefault("wall_time_s", 0.0)
        checkpoint = trial.checkpoint
        row["checkpoint"] = checkpoint.path if checkpoint is not None else None
        row.setdefault("error", None)
        self.trials[tid] = row
        self.flush()

    def flush(self) -> None:
        write_parquet(self.directory / TRIALS, list(self.trials.values()))
        if self.epochs:
            rows = sorted(self.epochs.values(), key=lambda r: (r["trial_id"], r["epoch"]))
            write_parquet(self.directory / EPOCHS, rows)
