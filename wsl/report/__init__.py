"""``wsl report NAME``: one self-contained HTML page (and the same figures as PNG) for a sweep.

Everything comes from the sweep's results table (``trials.parquet``,
``epochs.parquet``, ``promoted/<trial>/models.parquet``, ``sweep.yaml`` when
present; names and statuses as ``wsl.table`` defines them): nothing is
re-trained. Sections, each a figure or a note saying why it is empty:

- ``pareto``: ``rec_agreement`` vs ``probe_r2`` per trial (a multi-objective
  sweep: its first two objectives), coloured by ``beta``, the Pareto front and
  the promoted trial marked;
- ``hypervolume`` (several objectives): the hypervolume of the front over trials
  and over time;
- ``weighting``: ``gamma`` x ``beta`` coloured by the objective;
- ``importance``: Optuna's fANOVA and mean-decrease-impurity importances of the
  searched parameters for the objective, over the trials that ran to ``max_t``
  (ASHA-stopped trials are left out, as the searcher saw them: pruned);
- ``curves``: the objective per epoch and trial, ASHA's stops marked;
- ``promoted``: per held-out model of a promoted run, original vs reconstructed
  test accuracy, agreement, and the 2-D embedding coloured by test accuracy;
- ``top``: the best trials by objective with their configs.

Plotly draws the figures (``sections``, ``promoted``, with what they share in
``figures``; importances in ``importance``): the page (``page``) inlines plotly.js once and loads nothing
from the network when opened. Kaleido exports the PNGs (``png``) with the
system Chrome/Chromium (``$BROWSER_PATH`` or ``chromium`` on the PATH);
without one the page is written alone, with a warning.

``<root>/NAME/report`` is a symlink to a hidden sibling directory: a new
report is written whole into another one and the link is flipped in one
rename (``wsl.atomic.swap_dir``), so a reader sees the old report or the new
one, never half of one and never none.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wsl import atomic, table
from wsl.errors import WslError
from wsl.metrics import OBJECTIVE
from wsl.objectives import objectives
from wsl.report import sections
from wsl.report.importance import parameter_importances
from wsl.report.page import render_page
from wsl.report.png import write_pngs
from wsl.report.promoted import promoted_sections
from wsl.sweep.config import searched, space_params

__all__ = ["parameter_importances", "write_report"]

REPORT = "report"
PAGE = "report.html"


def write_report(name: str, root: Path | None = None, top: int = 10, *, png: bool = True) -> Path:
    """Write ``<root>/<name>/report/report.html`` (and one PNG per figure); return the HTML path."""
    directory = Path(root if root is not None else table.results_root()) / name
    if not table.exists(directory, table.TRIALS):
        raise WslError(f"sweep {name!r} has no results table: {directory / table.TRIALS} does not exist")
    if top < 1:
        raise WslError(f"top={top} must be >= 1")
    trials, epochs, sweep = _read(directory)
    promoted = trials[trials["status"] == table.PROMOTED]
    runs = trials[trials["status"] != table.PROMOTED]
    space = searched(space_params(sweep.get("space") or {}))
    columns = list(objectives(sweep["objective"])) if "objective" in sweep else [OBJECTIVE]
    first = columns[0]  # several objectives: the per-objective figures show the first
    content = [
        sections.pareto(runs, promoted, *columns[:2]) if len(columns) > 1 else sections.pareto(runs, promoted),
        *([sections.hypervolume(runs, epochs, columns)] if len(columns) > 1 else []),
        sections.weighting(runs, space, first),
        sections.importance(runs, space, first),
        sections.curves(runs, epochs, sweep, first),
        *promoted_sections(directory, promoted),
        sections.top_trials(runs, promoted, space, top, table.metrics_split(directory), first),
    ]

    def fill(tmp: Path) -> None:
        note = write_pngs(tmp, content) if png else "PNG export was not requested."
        (tmp / PAGE).write_text(render_page(name, trials, sweep, content, note), encoding="utf-8")

    atomic.swap_dir(directory / REPORT, fill)
    return directory / REPORT / PAGE


def _read(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """The sweep's trials (checked to be a wsl results table), its epochs and its ``sweep.yaml``, where present."""
    path = directory / table.TRIALS
    trials = table.read_trials(directory)
    for column in ("trial_id", "status"):
        if column not in trials.columns:
            raise WslError(f"{path} has no {column!r} column; is it a wsl results table?")
    trials["trial_id"] = trials["trial_id"].astype(str)
    epochs = table.read_epochs(directory)
    return trials, epochs, table.saved_sweep(directory) or {}
