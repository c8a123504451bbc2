"""The live view of a running sweep: trial states and the best so far, one line per event.

Tune's own reporter prints a box per trial result; with dozens of trials and
ASHA stopping most of them that is pages of noise. This callback prints one
line when a trial starts, is stopped, finishes or fails, each with the time
since the sweep started, the count of trials per state and the best
objective so far (with several objectives: how many finished trials are on the front).
"""

from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np
from ray import tune
from rich.console import Console

from wsl import pareto, table
from wsl.metrics import OBJECTIVE

console = Console(soft_wrap=True)  # module-level: Tune pickles its callbacks, and a Console holds a lock


class LiveView(tune.Callback):
    def __init__(self, max_t: int, objectives: list[str] | None = None):
        self.max_t = max_t
        self.objectives = objectives or [OBJECTIVE]
        self.states: dict[str, str] = {}
        self.best = (-math.inf, "")
        self.finished: dict[str, list[float]] = {}  # trial_id -> objectives at max_t (several objectives)
        self.start = time.monotonic()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._event(trial, table.RUNNING, f"started {_params(trial.config)}")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if result.get(OBJECTIVE, -math.inf) > self.best[0]:
            self.best = (result[OBJECTIVE], trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        epochs = int(result.get("training_iteration", 0))
        state = table.end_status(epochs, self.max_t)
        verb = f"stopped by ASHA at epoch {epochs}" if state == table.STOPPED else "finished"
        values = [result.get(o, float("nan")) for o in self.objectives]
        if state == table.TERMINATED:
            self.finished[trial.trial_id] = values
        self._event(trial, state, f"{verb}: " + ", ".join(f"{o} {v:.3f}" for o, v in zip(self.objectives, values)))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._event(trial, table.ERROR, "failed (see its error in `wsl results NAME --where 'status == \"ERROR\"'`)")

    def _event(self, trial, state: str, what: str) -> None:
        self.states[trial.trial_id] = state
        counts = " ".join(f"{k.lower()} {v}" for k, v in sorted(Counter(self.states.values()).items()))
        best = self._best()
        minutes, seconds = divmod(int(time.monotonic() - self.start), 60)
        console.print(
            f"[dim]{minutes:>3}:{seconds:02d}[/] [bold]{trial.trial_id}[/] {what}  [dim]| {counts} | {best}[/]",
            highlight=False,
        )

    def _best(self) -> str:
        if len(self.objectives) > 1:
            front = pareto.on_front(
                np.array(list(self.finished.values()), dtype=float).reshape(-1, len(self.objectives))
            ).sum()
            return f"front {front} of {len(self.finished)} at epoch {self.max_t}"
        return f"best {self.best[0]:.3f} ({self.best[1]})" if self.best[1] else "best -"


def _params(config: dict) -> str:
    return " ".join(
        f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}" for k, v in config.items()
    )
