"""The report's sections over a sweep's trials: Pareto front, loss weighting, importance, curves, top trials.

Each builder returns a ``Section`` with its figures, or with a note saying why
it has none, so a young sweep (one trial, nothing promoted) still gets the
whole page. Values are the last reported ones: a STOPPED trial's come from a
run that ASHA cut short, so statuses are always told apart (symbol, colour).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from wsl import metrics, table
from wsl import pareto as pareto_math
from wsl.metrics import OBJECTIVE
from wsl.report import page
from wsl.report.figures import (
    COLOURS,
    PLOTTED,
    STATUS_NAMES,
    X,
    Y,
    by_status,
    column,
    error_bars,
    finite,
    label,
    promoted_sources,
    searched,
    style,
)
from wsl.report.importance import parameter_importances
from wsl.report.page import Section
from wsl.results import pareto_front
from wsl.sweep.config import Param

METRIC_COLUMNS = (OBJECTIVE, *metrics.SCORES)
AXES = {X: "share of inputs where reconstruction and original agree", Y: "linear probe R²"}


def pareto(runs: pd.DataFrame, promoted: pd.DataFrame, x: str = X, y: str = Y) -> Section:
    """Reconstruction vs probe quality per trial (or a multi-objective sweep's first two objectives): the
    trade-off the loss weighting moves along."""
    import plotly.graph_objects as go

    section = Section("pareto", f"Pareto front: {x} vs {y}")
    points = finite(runs[runs["status"].isin(PLOTTED)], x, y)
    if points.empty:
        section.notes.append(f"No trial has reported {x} and {y} yet.")
        return section
    fig = go.Figure(by_status(points, x, y, column(points, "beta"), "Viridis", size=10))
    front = pareto_front(points, x, y)
    fig.add_trace(
        go.Scatter(
            x=front[x],
            y=front[y],
            mode="lines",
            name="Pareto front",
            line=dict(color="#444", dash="dash"),
            hoverinfo="skip",
        )
    )
    chosen = points[points["trial_id"].isin(promoted_sources(promoted))]
    if not chosen.empty:
        fig.add_trace(_promoted_trials(chosen, x, y))
    final = finite(promoted, x, y)
    if final.empty:
        section.notes.append("No promoted run yet: `wsl promote` marks the promoted trial here.")
    else:
        fig.add_trace(_final_runs(final, x, y))
    fig.update_layout(
        xaxis_title=f"{x} ({AXES[x]})" if x in AXES else x,
        yaxis_title=f"{y} ({AXES[y]})" if y in AXES else y,
    )
    section.notes.append(
        f"{len(points)} trials, {len(front)} on the front (both axes maximised; last reported values). "
        "Circles ran to max_t; diamonds were stopped early by ASHA."
    )
    section.figures["pareto"] = style(fig)
    return section


def _promoted_trials(chosen: pd.DataFrame, x: str, y: str):
    """A star on each trial that ``wsl promote`` picked."""
    import plotly.graph_objects as go

    return go.Scatter(
        x=chosen[x],
        y=chosen[y],
        mode="markers+text",
        name="promoted trial",
        text=[f"promoted {t}" for t in chosen["trial_id"]],
        textposition="top center",
        marker=dict(symbol="star", size=20, color="gold", line=dict(color="black", width=1.5)),
    )


def _final_runs(final: pd.DataFrame, x: str, y: str):
    """The promoted runs' seed means, with their spread: where the chosen config really lands."""
    import plotly.graph_objects as go

    return go.Scatter(
        x=final[x],
        y=final[y],
        mode="markers",
        name="promoted final run (mean ± std over seeds)",
        error_x=error_bars(final, x),
        error_y=error_bars(final, y),
        marker=dict(symbol="star-diamond", size=14, color="crimson", line=dict(color="black", width=1)),
    )


def hypervolume(runs: pd.DataFrame, epochs: pd.DataFrame | None, objectives: list[str]) -> Section:
    """How much of the objective space the front covered as trials finished: the hypervolume of the trials
    that ran to ``max_t``, after each one (and against the sweep's seconds), above 0 on every objective."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    section = Section("hypervolume", "Hypervolume of the front over trials and time")
    full = finite(runs[runs["status"] == table.TERMINATED], *objectives)
    if full.empty or epochs is None or "reported_at" not in epochs:
        section.notes.append("No trial has run to max_t yet.")
        return section
    start = epochs["reported_at"].min()
    ended = epochs.groupby("trial_id")["reported_at"].max()
    full = full.assign(ended=full["trial_id"].map(ended) - start).sort_values("ended", kind="stable")
    points = full[objectives].to_numpy(dtype=float)
    reference = np.zeros(len(objectives))
    volume = [pareto_math.hypervolume(points[: i + 1], reference) for i in range(len(points))]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("over trials that ran to max_t", "over the sweep's time"))
    fig.add_trace(go.Scatter(x=list(range(1, len(volume) + 1)), y=volume, mode="lines+markers", name="trials"), 1, 1)
    fig.add_trace(go.Scatter(x=full["ended"] / 60, y=volume, mode="lines+markers", name="minutes"), 1, 2)
    fig.update_xaxes(title_text="trials that ran to max_t", row=1, col=1)
    fig.update_xaxes(title_text="minutes since the first result", row=1, col=2)
    fig.update_yaxes(title_text="hypervolume", row=1, col=1)
    section.notes.append(
        f"Volume dominated by the front of {', '.join(objectives)} above the reference point 0 on each (an R² "
        f"of 0 predicts no better than the mean), after each of the {len(full)} trials that ran to max_t."
    )
    section.figures["hypervolume"] = style(fig)
    return section


def weighting(runs: pd.DataFrame, space: dict[str, Param], objective: str = OBJECTIVE) -> Section:
    """The objective over the two loss weights, to see which region of the weighting pays."""
    import plotly.graph_objects as go

    section = Section("weighting", "Loss-weighting map: gamma x beta")
    gamma, beta = column(runs, "gamma"), column(runs, "beta")
    if not gamma or not beta:
        section.notes.append("The results table has no gamma/beta columns.")
        return section
    points = finite(runs[runs["status"].isin(PLOTTED)], gamma, beta, objective)
    if points.empty:
        section.notes.append("No trial has reported an objective yet.")
        return section
    fig = go.Figure(by_status(points, gamma, beta, objective, "Plasma", size=14))
    fig.update_layout(xaxis_title="gamma (contrastive weight)", yaxis_title="beta (structural share of the rest)")
    if gamma in space and space[gamma].log:
        fig.update_xaxes(type="log")
    if beta in space and space[beta].log:
        fig.update_yaxes(type="log")
    section.notes.append(
        "L = gamma·L_contrast + (1 − gamma)·(beta·L_struct + (1 − beta)·L_behav). Colour: the "
        "objective (last reported; diamonds were stopped early, so theirs is a truncated run's)."
    )
    section.figures["weighting"] = style(fig)
    return section


def importance(runs: pd.DataFrame, space: dict[str, Param], objective: str = OBJECTIVE) -> Section:
    """Which searched parameters the objective depends on, over the trials that ran to ``max_t``.

    ASHA-stopped trials are left out: the study saw them as pruned, and their
    truncated objectives would credit parameters with early-epoch noise.
    """
    import plotly.graph_objects as go

    section = Section("importance", "Parameter importance for the objective")
    finished = finite(runs[runs["status"] == table.TERMINATED], objective)
    params = [p for p in searched(runs, space) if finished[p].dropna().astype(str).nunique() > 1]
    if len(finished) < 2 or not params:
        section.notes.append(
            f"Parameter importance needs at least 2 trials that ran to max_t with differing "
            f"searched parameters; this sweep has {len(finished)} such trial(s)"
            f"{'' if params else ' and no parameter that varies among them'}."
        )
        return section
    importances = parameter_importances(finished, params, space, objective)
    fig = go.Figure()
    order = sorted(params, key=lambda p: importances["fANOVA"].get(p, 0.0))
    for evaluator, values in importances.items():
        fig.add_trace(
            go.Bar(
                y=[label(p) for p in order],
                x=[values.get(p, 0.0) for p in order],
                name=evaluator,
                orientation="h",
                customdata=order,
                hovertemplate="%{customdata}: %{x:.3f}",
            )
        )
    fig.update_layout(barmode="group", xaxis_title="importance (sums to 1 per evaluator)", yaxis_title=None)
    section.notes.append(
        f"Optuna's fANOVA and mean-decrease-impurity evaluators over the {len(finished)} trials that "
        "ran to max_t (ASHA-stopped trials are pruned in the study, so they are left out)."
    )
    section.figures["importance"] = style(fig, height=max(300, 120 + 60 * len(params)))
    return section


def curves(runs: pd.DataFrame, epochs: pd.DataFrame | None, sweep: dict, objective: str = OBJECTIVE) -> Section:
    """The objective per epoch and trial: how ASHA's early stops compare with the trials that went on."""
    import plotly.graph_objects as go

    section = Section("curves", "Learning curves of the objective")
    if epochs is None or epochs.empty or not {"trial_id", "epoch", objective} <= set(epochs.columns):
        section.notes.append("No per-epoch results (epochs.parquet) yet.")
        return section
    epochs = finite(epochs.assign(trial_id=epochs["trial_id"].astype(str)), "epoch", objective)
    epochs = epochs.sort_values(["trial_id", "epoch"])
    status = dict(zip(runs["trial_id"], runs["status"], strict=False))
    fig, shown = go.Figure(), set()
    for trial_id, curve in epochs.groupby("trial_id", sort=True):
        kind = status.get(trial_id, table.RUNNING)
        fig.add_trace(_curve(trial_id, curve, kind, legend=kind not in shown, objective=objective))
        shown.add(kind)
    last = epochs.groupby("trial_id", sort=True).tail(1)
    stops = last[last["trial_id"].map(status) == table.STOPPED]
    if not stops.empty:
        fig.add_trace(
            go.Scatter(
                x=stops["epoch"],
                y=stops[objective],
                mode="markers",
                name="stopped by ASHA",
                text=stops["trial_id"],
                marker=dict(symbol="x", size=11, color="black"),
                hovertemplate="%{text} stopped at epoch %{x}<extra></extra>",
            )
        )
    rungs = _rungs(sweep.get("scheduler") or {})
    for rung in rungs:
        fig.add_vline(x=rung, line=dict(color="#bbb", dash="dot", width=1))
    fig.update_layout(xaxis_title="epoch", yaxis_title=objective)
    if rungs:
        section.notes.append("Dotted lines: ASHA's rungs (grace period × reduction factorᵏ).")
    section.figures["curves"] = style(fig)
    return section


def _curve(trial_id: str, curve: pd.DataFrame, kind: str, legend: bool, objective: str):
    """One trial's line, coloured by status; one legend entry per status, not per trial."""
    import plotly.graph_objects as go

    return go.Scatter(
        x=curve["epoch"],
        y=curve[objective],
        mode="lines+markers",
        name=STATUS_NAMES.get(kind, kind),
        legendgroup=kind,
        showlegend=legend,
        line=dict(color=COLOURS.get(kind, "#7f7f7f"), width=1.5),
        marker=dict(size=4),
        hovertemplate=f"{html.escape(trial_id)}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>",
    )


def _rungs(scheduler: dict) -> list[int]:
    """The epochs where ASHA decides (grace period × reduction factorᵏ below ``max_t``); none for other schedulers."""
    try:
        grace, factor, max_t = (
            int(scheduler["grace_period"]),
            int(scheduler["reduction_factor"]),
            int(scheduler["max_t"]),
        )
    except (KeyError, TypeError, ValueError):
        return []
    if scheduler.get("kind", "asha") != "asha" or grace < 1 or factor < 2:
        return []
    rungs, t = [], grace
    while t < max_t:
        rungs.append(t)
        t *= factor
    return rungs


def top_trials(
    runs: pd.DataFrame,
    promoted: pd.DataFrame,
    space: dict[str, Param],
    top: int,
    split: str = "val",
    objective: str = OBJECTIVE,
) -> Section:
    """The best trials by objective, with metrics and configs (searched parameters first): what to promote.

    ``split``: the models the sweep's metric columns are on (``wsl.table.metrics_split``)."""
    section = Section("top", f"Top {top} trials by objective")
    ranked = finite(runs, objective)
    by = [metrics.PARETO_RANK, objective] if metrics.PARETO_RANK in ranked else [objective]  # the front first
    ascending = [True] * (len(by) - 1) + [False]
    ranked = ranked.sort_values(by, ascending=ascending, na_position="last", kind="stable").head(top)
    if ranked.empty:
        section.notes.append("No trial has reported an objective yet.")
        return section
    shaded = searched(runs, space)
    config = sorted(c for c in ranked.columns if "." in c or c == "seed")
    columns = [
        "trial_id",
        "status",
        *(m for m in METRIC_COLUMNS if m in ranked.columns),
        *(c for c in ("epochs", "stopped_early", "wall_time_s") if c in ranked.columns),
        *shaded,
        *(c for c in config if c not in shaded),
    ]
    frame = ranked[columns].copy()
    frame.insert(0, "rank", range(1, len(frame) + 1))
    sources = set(promoted_sources(promoted))
    frame["trial_id"] = [f"{t} ★ promoted" if t in sources else t for t in frame["trial_id"]]
    section.html = page.table(frame, shaded)
    on = (
        "the validation models (what the sweep decided by; test figures are in the promoted runs' sections)"
        if split == "val"
        else "the zoo's TEST models: this sweep was written before wsl decided on validation, so they are optimistic"
    )
    section.notes.append(
        f"Last reported metrics, on {on}; shaded columns were searched. STOPPED trials' values are from a run "
        "that ASHA cut short."
    )
    return section
