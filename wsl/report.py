"""``wsl report NAME``: one self-contained HTML page (and the same figures as PNG) for a sweep.

Everything comes from the sweep's results table (``trials.parquet``,
``epochs.parquet``, ``promoted/<trial>/models.parquet``, ``sweep.yaml`` when
present): nothing is re-trained. Sections, each a figure or a note saying why
it is empty:

- ``pareto``: ``rec_acc_ratio`` vs ``probe_r2`` per trial, coloured by ``beta``,
  the Pareto front and the promoted trial marked;
- ``weighting``: ``gamma`` x ``beta`` coloured by the objective;
- ``importance``: Optuna's fANOVA and mean-decrease-impurity importances of the
  searched parameters for the objective, over the trials that ran to ``max_t``
  (ASHA-stopped trials are left out, as the searcher saw them: pruned);
- ``curves``: the objective per epoch and trial, ASHA's stops marked;
- ``promoted``: per held-out model of a promoted run, original vs reconstructed
  test accuracy, agreement, and the 2-D embedding coloured by test accuracy;
- ``top``: the best trials by objective with their configs.

Plotly draws the figures: the page inlines plotly.js once and loads nothing
from the network when opened. Kaleido exports the PNGs with the system
Chrome/Chromium (``$BROWSER_PATH`` or ``chromium`` on the PATH); without one
the page is written alone, with a warning. The report directory is built in a
temporary directory and renamed into place, so a reader sees the old report or
the new one, never half of one.
"""

from __future__ import annotations

import html
import math
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wsl.errors import WslError
from wsl.results import pareto_front, read_table, results_root

REPORT = "report"
PAGE = "report.html"
METRIC_COLUMNS = ("objective", "rec_acc_ratio", "probe_r2", "rec_agreement", "probe_tau", "rec_acc")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FINISHED = ("TERMINATED",)  # ran to max_t: what Optuna was told as complete
PLOTTED = ("TERMINATED", "STOPPED", "RUNNING")
# filled symbols only: plotly.js mis-handles open symbols coloured through a colour axis (console warnings)
SYMBOLS = {"TERMINATED": "circle", "STOPPED": "diamond", "RUNNING": "triangle-up"}
WIDTH, HEIGHT = 900, 560  # PNG size in pixels


@dataclass
class Section:
    key: str
    title: str
    figures: dict = field(default_factory=dict)  # file stem -> plotly Figure
    notes: list[str] = field(default_factory=list)
    html: str = ""  # extra markup before the figures (tables)


def write_report(name: str, root: Path | None = None, top: int = 10, *, png: bool = True) -> Path:
    """Write ``<root>/<name>/report/report.html`` (and one PNG per figure); return the HTML path."""
    directory = Path(root if root is not None else results_root()) / name
    trials_path = directory / "trials.parquet"
    if not trials_path.is_file():
        raise WslError(f"sweep {name!r} has no results table: {trials_path} does not exist")
    if top < 1:
        raise WslError(f"top={top} must be >= 1")
    trials = read_table(trials_path)
    epochs = read_table(directory / "epochs.parquet") if (directory / "epochs.parquet").is_file() else None
    sweep = _read_sweep_yaml(directory / "sweep.yaml")
    for column in ("trial_id", "status"):
        if column not in trials.columns:
            raise WslError(f"{trials_path} has no {column!r} column; is it a wsl results table?")
    trials["trial_id"] = trials["trial_id"].astype(str)
    promoted = trials[trials["status"] == "PROMOTED"]
    runs = trials[trials["status"] != "PROMOTED"]
    space = _space(sweep)

    sections = [
        _pareto(runs, promoted),
        _weighting(runs, space),
        _importance(runs, space),
        _curves(runs, epochs, sweep),
        *_promoted(directory, promoted),
        _top(runs, promoted, space, top),
    ]
    page = _page(name, trials, sweep, sections)

    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{REPORT}-", dir=directory))
    tmp.chmod(0o755)  # mkdtemp makes it private; the report is meant to be shared like the results table
    try:
        png_note = _write_pngs(tmp, sections) if png else "PNG export was not requested."
        if png_note:
            page = page.replace("<!--PNG-->", f'<p class="note">{html.escape(png_note)}</p>')
        (tmp / PAGE).write_text(page, encoding="utf-8")
        _swap_in(tmp, directory / REPORT)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory / REPORT / PAGE


# ---------------------------------------------------------------- inputs


def _read_sweep_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise WslError(f"cannot read {path}: {e}") from None
    return data if isinstance(data, dict) else {}


def _space(sweep: dict) -> dict[str, dict]:
    """The searched keys of ``sweep.yaml`` (dotted) -> their range / choices; fixed values left out."""
    out = {}
    for section, group in (sweep.get("space") or {}).items():
        for key, param in (group or {}).items():
            if isinstance(param, dict) and param.get("value") is None:
                out[f"{section}.{key}"] = param
    return out


def _column(frame: pd.DataFrame, short: str) -> str | None:
    """``beta`` -> ``loss.beta``: the column whose last dotted component is ``short``, if unique."""
    if short in frame.columns:
        return short
    matches = [c for c in frame.columns if c.rsplit(".", 1)[-1] == short and "." in c]
    return matches[0] if len(matches) == 1 else None


def _searched(frame: pd.DataFrame, space: dict) -> list[str]:
    """Config columns that were searched: the sweep's space, else dotted columns that vary across trials."""
    if space:
        return [k for k in space if k in frame.columns]
    out = []
    for column in frame.columns:
        if "." not in column:
            continue
        values = frame[column].dropna()
        if len(values) and values.astype(str).nunique() > 1:
            out.append(column)
    return out


def _label(column: str) -> str:
    return column.rsplit(".", 1)[-1]


def _finite(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    if any(c not in frame.columns for c in columns):
        return frame.iloc[0:0]
    values = frame[list(columns)].apply(pd.to_numeric, errors="coerce")
    return frame[np.isfinite(values.to_numpy(dtype=float)).all(axis=1)]


def _promoted_sources(promoted: pd.DataFrame) -> list[str]:
    if "source_trial" not in promoted.columns:
        return []
    return [str(s) for s in promoted["source_trial"].dropna().unique()]


# ---------------------------------------------------------------- sections


def _pareto(runs: pd.DataFrame, promoted: pd.DataFrame) -> Section:
    import plotly.graph_objects as go

    section = Section("pareto", "Pareto front: reconstruction vs probe")
    x, y = "rec_acc_ratio", "probe_r2"
    points = _finite(runs[runs["status"].isin(PLOTTED)], x, y)
    if points.empty:
        section.notes.append(f"No trial has reported {x} and {y} yet.")
        return section
    beta = _column(points, "beta")
    fig = go.Figure()
    for status, symbol in SYMBOLS.items():
        group = points[points["status"] == status]
        if group.empty:
            continue
        marker = dict(symbol=symbol, size=10, line=dict(width=1, color="#333"))
        if beta:
            marker.update(_shared_scale(group[beta], points[beta], "Viridis", "beta", first=not fig.data))
        fig.add_trace(
            go.Scatter(
                x=group[x],
                y=group[y],
                mode="markers",
                name=_status_name(status),
                marker=marker,
                text=_hover(group, beta),
                hovertemplate="%{text}<extra></extra>",
            )
        )
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
    sources = _promoted_sources(promoted)
    chosen = points[points["trial_id"].isin(sources)]
    if not chosen.empty:
        fig.add_trace(
            go.Scatter(
                x=chosen[x],
                y=chosen[y],
                mode="markers+text",
                name="promoted trial",
                text=[f"promoted {t}" for t in chosen["trial_id"]],
                textposition="top center",
                marker=dict(symbol="star", size=20, color="gold", line=dict(color="black", width=1.5)),
            )
        )
    final = _finite(promoted, x, y)
    if not final.empty:
        fig.add_trace(
            go.Scatter(
                x=final[x],
                y=final[y],
                mode="markers",
                name="promoted final run (mean ± std over seeds)",
                error_x=_error(final, x),
                error_y=_error(final, y),
                marker=dict(symbol="star-diamond", size=14, color="crimson", line=dict(color="black", width=1)),
            )
        )
    else:
        section.notes.append("No promoted run yet: `wsl promote` marks the promoted trial here.")
    fig.update_layout(xaxis_title=f"{x} (reconstructed / original test accuracy)", yaxis_title=f"{y} (linear probe R²)")
    section.notes.append(
        f"{len(points)} trials, {len(front)} on the front (both axes maximised; last reported values). "
        "Circles ran to max_t; diamonds were stopped early by ASHA."
    )
    section.figures["pareto"] = _style(fig)
    return section


def _weighting(runs: pd.DataFrame, space: dict) -> Section:
    import plotly.graph_objects as go

    section = Section("weighting", "Loss-weighting map: gamma x beta")
    gamma, beta = _column(runs, "gamma"), _column(runs, "beta")
    if not gamma or not beta:
        section.notes.append("The results table has no gamma/beta columns.")
        return section
    points = _finite(runs[runs["status"].isin(PLOTTED)], gamma, beta, "objective")
    if points.empty:
        section.notes.append("No trial has reported an objective yet.")
        return section
    fig = go.Figure()
    for status, symbol in SYMBOLS.items():
        group = points[points["status"] == status]
        if not group.empty:
            fig.add_trace(
                go.Scatter(
                    x=group[gamma],
                    y=group[beta],
                    mode="markers",
                    name=_status_name(status),
                    marker=dict(
                        symbol=symbol,
                        size=14,
                        line=dict(width=1, color="#333"),
                        **_shared_scale(
                            group["objective"], points["objective"], "Plasma", "objective", first=not fig.data
                        ),
                    ),
                    text=_hover(group, None),
                    hovertemplate="%{text}<extra></extra>",
                )
            )
    fig.update_layout(xaxis_title="gamma (contrastive weight)", yaxis_title="beta (structural share of the rest)")
    if space.get(gamma, {}).get("log"):
        fig.update_xaxes(type="log")
    if space.get(beta, {}).get("log"):
        fig.update_yaxes(type="log")
    section.notes.append(
        "L = gamma·L_contrast + (1 − gamma)·(beta·L_struct + (1 − beta)·L_behav). Colour: the "
        "objective (last reported; diamonds were stopped early, so theirs is a truncated run's)."
    )
    section.figures["weighting"] = _style(fig)
    return section


def _importance(runs: pd.DataFrame, space: dict) -> Section:
    import plotly.graph_objects as go

    section = Section("importance", "Parameter importance for the objective")
    finished = _finite(runs[runs["status"].isin(FINISHED)], "objective")
    params = [p for p in _searched(runs, space) if finished[p].dropna().astype(str).nunique() > 1]
    if len(finished) < 2 or not params:
        section.notes.append(
            f"Parameter importance needs at least 2 trials that ran to max_t with differing "
            f"searched parameters; this sweep has {len(finished)} such trial(s)"
            f"{'' if params else ' and no parameter that varies among them'}."
        )
        return section
    importances = parameter_importances(finished, params, space)
    fig = go.Figure()
    order = sorted(params, key=lambda p: importances["fANOVA"].get(p, 0.0))
    for evaluator, values in importances.items():
        fig.add_trace(
            go.Bar(
                y=[_label(p) for p in order],
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
    section.figures["importance"] = _style(fig, height=max(300, 120 + 60 * len(params)))
    return section


def parameter_importances(finished: pd.DataFrame, params: list[str], space: dict) -> dict[str, dict[str, float]]:
    """Build an Optuna study from finished rows and evaluate importances (deterministic: seeded evaluators)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.importance import FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator

    params = sorted(params)  # optuna 5.0's mean-decrease-impurity evaluator mislabels params given in another order
    distributions = {}
    for p in params:
        values = finished[p].dropna()
        spec = space.get(p, {})
        if spec.get("choices") is not None or not pd.api.types.is_numeric_dtype(values) or values.dtype == bool:
            choices = spec.get("choices") or sorted(values.unique().tolist(), key=str)
            distributions[p] = CategoricalDistribution([_plain(c) for c in choices])
        else:
            low, high = float(values.min()), float(values.max())
            if spec.get("low") is not None:
                low, high = min(low, float(spec["low"])), max(high, float(spec["high"]))
            log = bool(spec.get("log")) and low > 0
            if spec.get("integer") or pd.api.types.is_integer_dtype(values):
                distributions[p] = IntDistribution(int(math.floor(low)), int(math.ceil(high)), log=log)
            else:
                distributions[p] = FloatDistribution(low, high, log=log)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize")
        for _, row in finished.iterrows():
            present = {p: _plain(row[p]) for p in params if pd.notna(row[p])}
            study.add_trial(
                optuna.trial.create_trial(
                    params=present,
                    distributions={p: distributions[p] for p in present},
                    value=float(row["objective"]),
                )
            )
        evaluators = {
            "fANOVA": FanovaImportanceEvaluator(seed=0),
            "mean decrease impurity": MeanDecreaseImpurityImportanceEvaluator(seed=0),
        }
        return {
            name: dict(optuna.importance.get_param_importances(study, evaluator=ev, params=params))
            for name, ev in evaluators.items()
        }
    finally:
        optuna.logging.set_verbosity(verbosity)


def _plain(value):
    """numpy scalars -> Python scalars (Optuna checks choices by equality and JSON-serialises them)."""
    return value.item() if isinstance(value, np.generic) else value


def _curves(runs: pd.DataFrame, epochs: pd.DataFrame | None, sweep: dict) -> Section:
    import plotly.graph_objects as go

    section = Section("curves", "Learning curves of the objective")
    if epochs is None or epochs.empty or not {"trial_id", "epoch", "objective"} <= set(epochs.columns):
        section.notes.append("No per-epoch results (epochs.parquet) yet.")
        return section
    epochs = _finite(epochs.assign(trial_id=epochs["trial_id"].astype(str)), "epoch", "objective")
    status = dict(zip(runs["trial_id"], runs["status"], strict=False))
    fig = go.Figure()
    stops_x, stops_y, stops_text = [], [], []
    palette = {"TERMINATED": "#1f77b4", "STOPPED": "#ff7f0e", "RUNNING": "#2ca02c", "ERROR": "#d62728"}
    shown: set[str] = set()
    for trial_id, curve in epochs.sort_values(["trial_id", "epoch"]).groupby("trial_id", sort=True):
        kind = status.get(trial_id, "RUNNING")
        fig.add_trace(
            go.Scatter(
                x=curve["epoch"],
                y=curve["objective"],
                mode="lines+markers",
                name=_status_name(kind),
                legendgroup=kind,
                showlegend=kind not in shown,
                line=dict(color=palette.get(kind, "#7f7f7f"), width=1.5),
                marker=dict(size=4),
                hovertemplate=f"{html.escape(trial_id)}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
        shown.add(kind)
        if kind == "STOPPED":
            stops_x.append(curve["epoch"].iloc[-1])
            stops_y.append(curve["objective"].iloc[-1])
            stops_text.append(trial_id)
    if stops_x:
        fig.add_trace(
            go.Scatter(
                x=stops_x,
                y=stops_y,
                mode="markers",
                name="stopped by ASHA",
                text=stops_text,
                marker=dict(symbol="x", size=11, color="black"),
                hovertemplate="%{text} stopped at epoch %{x}<extra></extra>",
            )
        )
    scheduler = sweep.get("scheduler") or {}
    for rung in _rungs(scheduler):
        fig.add_vline(x=rung, line=dict(color="#bbb", dash="dot", width=1))
    fig.update_layout(xaxis_title="epoch", yaxis_title="objective")
    if scheduler.get("kind", "asha") == "asha" and _rungs(scheduler):
        section.notes.append("Dotted lines: ASHA's rungs (grace period × reduction factorᵏ).")
    section.figures["curves"] = _style(fig)
    return section


def _rungs(scheduler: dict) -> list[int]:
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


def _promoted(directory: Path, promoted: pd.DataFrame) -> list[Section]:
    import plotly.graph_objects as go

    if promoted.empty:
        section = Section("promoted", "Promoted run")
        section.notes.append("This sweep has no promoted run yet (`wsl promote` adds one); section skipped.")
        return [section]
    sections = []
    for i, (_, row) in enumerate(promoted.iterrows()):
        source = str(row["source_trial"]) if pd.notna(row.get("source_trial")) else str(row["trial_id"])
        key = "promoted" if i == 0 else f"promoted-{i}"
        section = Section(key, f"Promoted run: trial {source}")
        section.html = _metrics_table(row)
        candidates = [
            directory / "promoted" / source / "models.parquet",
            directory / "promoted" / str(row["trial_id"]) / "models.parquet",
        ]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            section.notes.append(f"No per-model results at {candidates[0]}; figures skipped.")
            sections.append(section)
            continue
        models = read_table(path)
        stem = _safe(source)
        seed = models["seed"].astype(str) if "seed" in models.columns else pd.Series("", index=models.index)
        hover = [f"model {m} (seed {s})" for m, s in zip(models.get("model", models.index), seed, strict=False)]
        pts = _finite(models, "test_acc", "rec_acc")
        if not pts.empty:
            low = float(min(pts["test_acc"].min(), pts["rec_acc"].min()))
            high = float(max(pts["test_acc"].max(), pts["rec_acc"].max()))
            fig = go.Figure(
                go.Scatter(
                    x=pts["test_acc"],
                    y=pts["rec_acc"],
                    mode="markers",
                    name="held-out model",
                    text=[hover[models.index.get_loc(j)] for j in pts.index],
                    marker=dict(
                        size=8,
                        color=pts.get("agreement"),
                        colorscale="Cividis",
                        colorbar=dict(title="agreement") if "agreement" in pts else None,
                    ),
                    hovertemplate="%{text}<br>original %{x:.3f}<br>reconstructed %{y:.3f}<extra></extra>",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=[low, high],
                    y=[low, high],
                    mode="lines",
                    name="reconstructed = original",
                    line=dict(color="#888", dash="dash"),
                )
            )
            fig.update_layout(xaxis_title="original test accuracy", yaxis_title="reconstructed test accuracy")
            section.figures[f"promoted-{stem}-accuracy"] = _style(fig).update_layout(legend=dict(x=0.01, y=0.99))
        agreement = _finite(models, "agreement")
        if not agreement.empty:
            fig = go.Figure(go.Histogram(x=agreement["agreement"], nbinsx=20, marker=dict(color="#4c78a8")))
            fig.update_layout(
                xaxis_title="agreement (fraction of test inputs predicted the same)",
                yaxis_title="held-out models",
                bargap=0.05,
            )
            section.notes.append(
                f"Mean agreement {agreement['agreement'].mean():.3f} over {len(agreement)} held-out model(s) and seeds."
            )
            section.figures[f"promoted-{stem}-agreement"] = _style(fig, height=400)
        emb = _finite(models, "emb_x", "emb_y", "test_acc")
        if not emb.empty:
            fig = go.Figure(
                go.Scatter(
                    x=emb["emb_x"],
                    y=emb["emb_y"],
                    mode="markers",
                    text=[hover[models.index.get_loc(j)] for j in emb.index],
                    marker=dict(size=9, color=emb["test_acc"], colorscale="Viridis", colorbar=dict(title="test acc")),
                    hovertemplate="%{text}<br>test acc %{marker.color:.3f}<extra></extra>",
                )
            )
            fig.update_layout(xaxis_title="PC 1 of the embedding", yaxis_title="PC 2 of the embedding")
            section.figures[f"promoted-{stem}-embedding"] = _style(fig)
        if not section.figures:
            section.notes.append(f"{path} has no usable rows.")
        sections.append(section)
    return sections


def _metrics_table(row: pd.Series) -> str:
    names = [*METRIC_COLUMNS, "probe_r2_epoch", "probe_r2_gap", "gen_acc", "gen_novelty", "baseline_r2", "baseline_tau"]
    cells = []
    for metric in names:
        value = row.get(metric)
        if value is None or not _is_number(value) or not math.isfinite(float(value)):
            continue
        std = row.get(f"{metric}_std")
        spread = f" ± {float(std):.3f}" if std is not None and _is_number(std) and math.isfinite(float(std)) else ""
        cells.append(f"<tr><th>{html.escape(metric)}</th><td>{float(value):.3f}{spread}</td></tr>")
    seeds = row.get("seeds")
    caption = f"mean ± std over {int(seeds)} seeds" if _is_number(seeds) and math.isfinite(float(seeds)) else "metrics"
    if not cells:
        return ""
    return f'<table class="metrics"><caption>{caption}</caption>{"".join(cells)}</table>'


def _top(runs: pd.DataFrame, promoted: pd.DataFrame, space: dict, top: int) -> Section:
    section = Section("top", f"Top {top} trials by objective")
    ranked = _finite(runs, "objective").sort_values("objective", ascending=False, kind="stable").head(top)
    if ranked.empty:
        section.notes.append("No trial has reported an objective yet.")
        return section
    sources = set(_promoted_sources(promoted))
    metrics = [m for m in METRIC_COLUMNS if m in ranked.columns]
    others = [c for c in ("epochs", "stopped_early", "wall_time_s") if c in ranked.columns]
    config = sorted(c for c in ranked.columns if "." in c or c == "seed")
    searched = _searched(runs, space)
    config = searched + [c for c in config if c not in searched]
    columns = ["trial_id", "status", *metrics, *others, *config]
    table = ranked[columns].copy()
    table.insert(0, "rank", range(1, len(table) + 1))
    table["trial_id"] = [f"{t} ★ promoted" if t in sources else t for t in table["trial_id"]]
    head = "".join(
        f'<th class="{"searched" if c in searched else ""}">{html.escape(str(c))}</th>' for c in table.columns
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in table.itertuples(index=False)
    )
    section.html = (
        f'<div class="scroll"><table class="top"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )
    section.notes.append(
        "Last reported metrics; shaded columns were searched. STOPPED trials' values are from a run "
        "that ASHA cut short."
    )
    return section


# ---------------------------------------------------------------- page and files


def _page(name: str, trials: pd.DataFrame, sweep: dict, sections: list[Section]) -> str:
    import plotly.io as pio

    counts = trials["status"].value_counts()
    summary = ", ".join(f"{n} {html.escape(str(s)).lower()}" for s, n in counts.items())
    objective = sweep.get("objective") or "objective"
    first = True
    parts = []
    for section in sections:
        body = [f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>']
        body += [f'<p class="note">{html.escape(note)}</p>' for note in section.notes]
        body.append(section.html)
        for stem, fig in section.figures.items():
            body.append(
                pio.to_html(
                    fig,
                    full_html=False,
                    include_plotlyjs=first,
                    div_id=f"fig-{stem}",
                    config={"displaylogo": False, "responsive": True},
                )
            )
            first = False
        body.append("</section>")
        parts.append("\n".join(body))
    nav = " · ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>wsl report: {html.escape(name)}</title>
<style>{CSS}</style></head>
<body>
<h1>Sweep {html.escape(name)}</h1>
<p class="summary">{len(trials)} rows: {summary}. Objective (maximised): <code>{html.escape(str(objective))}</code>.</p>
<!--PNG-->
<nav>{nav}</nav>
{chr(10).join(parts)}
</body></html>
"""


CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
nav { margin: 1em 0; font-size: .95em; } nav a { color: #1f5fa8; }
.note { color: #555; font-size: .92em; margin: .3em 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85em; margin: .6em 0; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } th.searched { background: #e3ecf7; }
table.metrics th { text-align: left; } caption { caption-side: top; text-align: left; color: #555; }
"""


def _write_pngs(out: Path, sections: list[Section]) -> str:
    """Export every figure as ``<stem>.png``; return a note for the page if that was not possible."""
    figures = [(stem, fig) for section in sections for stem, fig in section.figures.items()]
    if not figures:
        return ""
    import kaleido
    from choreographer.errors import ChromeNotFoundError

    kopts: dict = {"mathjax": False}  # kaleido's default MathJax comes from a CDN; we use no LaTeX
    browser = os.environ.get("BROWSER_PATH") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser:
        kopts["path"] = browser
    jobs = [
        {
            "fig": fig,
            "path": str(out / f"{stem}.png"),
            "opts": {"format": "png", "width": WIDTH, "height": fig.layout.height or HEIGHT},
        }
        for stem, fig in figures
    ]
    try:
        kaleido.write_fig_from_object_sync(jobs, kopts=kopts, cancel_on_error=True)
    except ChromeNotFoundError:
        message = (
            "PNG export skipped: no Chrome/Chromium found (install chromium, or set BROWSER_PATH); "
            "the interactive page is complete."
        )
        warnings.warn(message, stacklevel=3)
        return message
    missing = [stem for stem, _ in figures if not (out / f"{stem}.png").is_file()]
    if missing:
        raise RuntimeError(f"kaleido wrote no PNG for {missing}")
    return ""


def _swap_in(new: Path, target: Path) -> None:
    """Replace directory ``target`` by ``new``: two renames, the old one removed after."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- small helpers


def _style(fig, height: int = HEIGHT):
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin=dict(l=70, r=30, t=30, b=100),
        legend=dict(orientation="h", x=0, y=-0.14, yanchor="top"),
    )
    return fig


def _status_name(status: str) -> str:
    return {"TERMINATED": "ran to max_t", "STOPPED": "stopped early (ASHA)", "RUNNING": "running"}.get(status, status)


def _hover(frame: pd.DataFrame, beta: str | None) -> list[str]:
    keys = [c for c in (_column(frame, "gamma"), beta or _column(frame, "beta")) if c]
    lines = []
    for _, row in frame.iterrows():
        parts = [f"<b>{html.escape(str(row['trial_id']))}</b> ({row['status'].lower()})"]
        parts += [f"{_label(k)} = {_cell(row[k])}" for k in keys]
        parts += [f"{m} = {_cell(row[m])}" for m in ("objective", "rec_acc_ratio", "probe_r2") if m in row]
        lines.append("<br>".join(parts))
    return lines


def _shared_scale(values: pd.Series, everything: pd.Series, scale: str, title: str, first: bool) -> dict:
    """One colour scale over several traces, the colour bar drawn once.

    Not a layout ``coloraxis``: plotly.js 4.1 logs "Invalid color specifier" for the legend of every trace
    that uses one (the browser test fails on console warnings).
    """
    return dict(
        color=values,
        colorscale=scale,
        cmin=float(everything.min()),
        cmax=float(everything.max()),
        showscale=first,
        colorbar=dict(title=title) if first else None,
    )


def _error(frame: pd.DataFrame, metric: str) -> dict | None:
    std = f"{metric}_std"
    if std not in frame.columns or frame[std].isna().all():
        return None
    return dict(type="data", array=frame[std].fillna(0.0).tolist(), visible=True)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:80] or "trial"
