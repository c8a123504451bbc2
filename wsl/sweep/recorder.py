"""Records a running sweep into its results table (``wsl.table``), as trials report and finish.

A Ray Tune ``Callback`` in the driver keeps this sweep's trial and epoch rows.
A trial's row is appended (``table.Appender``) when it starts, ends or fails
(also a failure Tune retries: ``failures`` counts it then), its epoch rows as
they arrive, each with the checkpoint Tune saved beside it: a report costs the
same however large the sweep has grown, and ``table.read_trials`` brings a
running trial's row up to its newest epoch. Epoch rows also carry
``reported_at`` (Unix seconds when the driver received them): the table is
sorted by trial, and a search's progress ("best so far after N trial-epochs")
needs the order in which results came in. The parts are folded into the tables
when the sweep ends, and when a killed driver's sweep resumes.

A multi-objective sweep's trial rows also hold ``pareto_rank``: the trial's
non-dominated rank among the trials that reached ``max_t``, kept current as
each one does (NaN for the others: their figures are not comparable).

On resume it starts from the rows on disk. A row still RUNNING belonged to
the dead driver and becomes INTERRUPTED; Tune restarts it from its checkpoint
if its last snapshot knew the trial (the row turns RUNNING again). A trial
the snapshot did not know and that never reported an epoch is REPLACED: the
searcher draws another in its place.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from ray import tune

from wsl import pareto, table
from wsl.config import flatten
from wsl.metrics import EPOCH, OBJECTIVE, PARETO_RANK, is_objective


class TableRecorder(tune.Callback):
    def __init__(
        self, directory: Path, sweep: str, base_config: dict, max_t: int, objectives: tuple[str, ...] = (OBJECTIVE,)
    ):
        self.directory = Path(directory)
        self.sweep = sweep
        self.base = base_config  # flattened TrainConfig of the sweep; trial values override it
        self.max_t = max_t
        self.objectives = list(objectives)  # their columns; several: a multi-objective sweep, ranked on its front
        self.trials: dict[str, dict] = {}
        self.epochs: dict[str, dict[int, dict]] = {}  # trial_id -> epoch -> its row
        self.restored = False  # resumed rows checked against what Tune restored

    def setup(self, **info) -> None:
        for name in (table.TRIALS, table.EPOCHS):  # a killed driver's parts
            table.fold(self.directory, name)
        self.trial_rows = table.Appender(self.directory, table.TRIALS)
        self.epoch_rows = table.Appender(self.directory, table.EPOCHS)
        epochs, trials = table.read_epochs(self.directory), table.read_trials(self.directory)
        for row in [] if epochs is None else epochs.to_dict("records"):
            self.epochs.setdefault(row["trial_id"], {})[int(row["epoch"])] = row
        rows = [] if trials is None else trials.to_dict("records")
        self.trials = {r["trial_id"]: r for r in rows if r["status"] != table.PROMOTED}
        interrupted = [{**r, "status": table.INTERRUPTED} for r in rows if r["status"] == table.RUNNING]
        self.trials.update({r["trial_id"]: r for r in interrupted})
        for row in interrupted:
            self.trial_rows.append(row)

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
            self.trial_rows.append(row)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._update(trial, table.RUNNING, {})

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        row = {
            "sweep": self.sweep,
            "trial_id": trial.trial_id,
            **epoch_metrics(result),
            "wall_time_s": result.get("time_total_s", float("nan")),
            "reported_at": time.time(),
            "checkpoint": None,
        }
        self.epochs.setdefault(trial.trial_id, {})[int(result["epoch"])] = row
        self.epoch_rows.append(row)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        """Tune saves an epoch's checkpoint after its result: its row, appended again, names it (Tune keeps
        only the newest, so a row naming an earlier one would send a reader to a deleted directory)."""
        history = self.epochs.get(trial.trial_id)
        if history:
            row = history[max(history)]
            row["checkpoint"] = checkpoint.path
            self.epoch_rows.append(row)

    def on_experiment_end(self, trials, **info) -> None:
        for name in (table.TRIALS, table.EPOCHS):
            table.fold(self.directory, name)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._update(trial, trial_end_status(trial, self.max_t), {})

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        """A failure Tune retries from the trial's checkpoint (a lost node, a killed worker) counts now: the
        retry may wait a long time for room on a cluster that lost a node."""
        self._update(trial, table.RUNNING, {})

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._update(trial, table.ERROR, {"error": last_line(trial.error_file) or "trial raised"})

    def _update(self, trial, status: str, metrics: dict) -> None:
        tid = trial.trial_id
        row = self.trials.get(tid) or {"sweep": self.sweep, "trial_id": tid, **self.base, **flatten(trial.config)}
        history = self.epochs.get(tid, {})
        row.update(table.progress([history[e] for e in sorted(history)]), **metrics, status=status)
        row["stopped_early"] = status == table.STOPPED
        row["failures"] = trial.num_failures
        row.setdefault("wall_time_s", 0.0)
        checkpoint = trial.checkpoint
        row["checkpoint"] = checkpoint.path if checkpoint is not None else row.get("checkpoint")
        row.setdefault("error", None)
        self.trials[tid] = row
        self.trial_rows.append(row)
        if len(self.objectives) > 1 and status == table.TERMINATED:
            self._rank()

    def _rank(self) -> None:
        """Each trial's ``pareto_rank`` among those that reached ``max_t`` (the front: comparable figures, at
        their last epoch); the rows whose rank changed are appended again."""
        full = [r for r in self.trials.values() if r["status"] == table.TERMINATED]
        points = np.array([[r.get(o, np.nan) for o in self.objectives] for r in full], dtype=float)
        for row, rank in zip(full, pareto.ranks(points), strict=True):
            old = row.get(PARETO_RANK, np.nan)
            if old != rank and not (np.isnan(old) and np.isnan(rank)):
                row[PARETO_RANK] = rank
                self.trial_rows.append(row)


def epoch_metrics(result: dict) -> dict:
    """What an epoch row keeps of a trial's ``result``: the epoch metrics and the objective column(s)."""
    return {k: v for k, v in result.items() if k in EPOCH or is_objective(k)}


def trial_end_status(trial, max_t: int) -> str:
    """A completed trial's status: STOPPED if it ended before ``max_t`` epochs (ASHA stopped it), else TERMINATED."""
    return table.end_status(int((trial.last_result or {}).get("training_iteration", 0)), max_t)


def last_line(path: str | None) -> str | None:
    """The last non-empty line of a trial's error file (the exception), or None when there is none."""
    if not path or not Path(path).is_file():
        return None
    lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else None
