"""Every trial's epochs in the tracker researchers already watch, MLflow or Weights & Biases, beside the table.

The results table stays the record wsl reads (``wsl results``, the report,
promotion); a tracker is a view for people, written by one more Tune logger
callback in the driver, one tracker run per trial:

- MLflow (``tracking=mlflow``, Tune's ``MLflowLoggerCallback``): an experiment
  named for the sweep; a run per trial with the trial's searched values as
  params, the epoch metrics the table records (``recorder.epoch_metrics``) at
  step = epoch, and tags ``wsl.sweep``, ``wsl.trial_id`` and, when it ends,
  ``wsl.status`` (the table's: TERMINATED, STOPPED or ERROR). The default store
  is SQLite in the sweep's directory: MLflow 3 refuses new file stores.
- W&B (``tracking=wandb``, Tune's ``WandbLoggerCallback``): run id = trial id,
  grouped by sweep; offline under ``results/NAME/wandb`` unless a key is set.

One run per trial across faults. A trial Tune retries after a crash keeps its
run: the callback's map from trial to run outlives the retry. A resumed
sweep's driver starts with an empty map, so the MLflow callback finds the
trial's run by its ``wsl.trial_id`` tag and continues it; W&B is asked to
resume the run of the trial's id (``resume="allow"``), which an online run
does. Offline, W&B cannot resume: each driver writes a directory of its own
for the same run id, and ``wandb sync --id TRIAL_ID DIR...`` uploads them in
order into one run.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune import Callback

from wsl.errors import WslError
from wsl.sweep.config import SweepConfig
from wsl.sweep.recorder import epoch_metrics, trial_end_status

SWEEP_TAG, TRIAL_TAG, STATUS_TAG = "wsl.sweep", "wsl.trial_id", "wsl.status"


def prepare(cfg: SweepConfig) -> None:
    """Before a sweep starts or resumes: refuse a tracker whose package is missing (not after the first trial),
    and with no W&B key, keep W&B's runs on disk (Tune's callback refuses to start without a key otherwise)."""
    kind = cfg.tracking.kind
    if kind is not None and importlib.util.find_spec(kind) is None:
        raise WslError(f"tracking={kind} needs the {kind} package: pip install -e '.[tracking]'")
    if kind == "wandb" and "WANDB_API_KEY" not in os.environ:
        os.environ.setdefault("WANDB_MODE", "offline")


def callbacks(cfg: SweepConfig, directory: Path) -> list[Callback]:
    """The tracker callback of ``cfg.tracking`` (none, or one), writing beside the sweep's ``directory``."""
    if cfg.tracking.kind == "mlflow":
        uri = cfg.tracking.uri or f"sqlite:///{Path(directory).resolve() / 'mlflow.db'}"
        for name in ("mlflow", "alembic"):  # their INFO lines (tables made, migrations) would cut into the live view
            logging.getLogger(name).setLevel(logging.WARNING)
        return [MlflowRuns(uri, cfg.name, cfg.scheduler.max_t)]
    if cfg.tracking.kind == "wandb":
        project = cfg.tracking.project or cfg.name
        mode = os.environ.get("WANDB_MODE", "online")
        return [WandbLoggerCallback(project=project, group=cfg.name, dir=str(directory), mode=mode, resume="allow")]
    return []


class MlflowRuns(MLflowLoggerCallback):
    """Tune's MLflow callback with one run per trial across driver restarts, and metrics at step = epoch."""

    def __init__(self, uri: str, sweep: str, max_t: int):
        super().__init__(tracking_uri=uri, experiment_name=sweep, tags={SWEEP_TAG: sweep})
        self.max_t = max_t

    def log_trial_start(self, trial) -> None:
        if trial not in self._trial_runs:  # a resumed driver's first sight of the trial: continue its run
            query = f"tags.`{TRIAL_TAG}` = '{trial.trial_id}'"
            earlier = self._client().search_runs([self.mlflow_util.experiment_id], query)
            if earlier:
                self._trial_runs[trial] = earlier[0].info.run_id
        super().log_trial_start(trial)
        run_id = self._trial_runs[trial]
        self._client().set_tag(run_id, TRIAL_TAG, trial.trial_id)
        self._client().update_run(run_id, status="RUNNING")

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        """The table's epoch metrics in one batch (Tune's logs every number of ``result``, one call each)."""
        from mlflow.entities import Metric

        step, now = int(result["epoch"]), int(1000 * result["timestamp"])
        metrics = [Metric(k, float(v), now, step) for k, v in epoch_metrics(result).items()]
        self._client().log_batch(self._trial_runs[trial], metrics=metrics)

    def log_trial_end(self, trial, failed: bool = False) -> None:
        status = "ERROR" if failed else trial_end_status(trial, self.max_t)
        self._client().set_tag(self._trial_runs[trial], STATUS_TAG, status)
        super().log_trial_end(trial, failed)

    def _client(self):
        return self.mlflow_util._get_client()
