"""The promoted runs' sections: per test model, original vs reconstructed accuracy, agreement, embedding.

``wsl promote`` retrains a chosen trial over seeds no trial ran and leaves one
``PROMOTED`` row (seed means, ``<metric>_std`` spreads, validation figures
beside test ones) and, under ``promoted/<trial>/models.parquet``, one row per
test model and seed:
the reconstruction is judged model by model here, not only on average.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from wsl import metrics, table
from wsl.report.figures import finite, style
from wsl.report.page import Section
from wsl.results import interval, is_number, spread


def promoted_sections(directory: Path, promoted: pd.DataFrame) -> list[Section]:
    """One section per promoted run (``promoted``, ``promoted-1``, ...), or one note if there is none."""
    if promoted.empty:
        section = Section("promoted", "Promoted run")
        section.notes.append("This sweep has no promoted run yet (`wsl promote` adds one); section skipped.")
        return [section]
    return [_section(directory, i, row) for i, (_, row) in enumerate(promoted.iterrows())]


def _section(directory: Path, i: int, row: pd.Series) -> Section:
    """The run's metrics table and figures; its per-model table sits under the source trial's id (or its own)."""
    source = str(row["source_trial"]) if pd.notna(row.get("source_trial")) else str(row["trial_id"])
    section = Section("promoted" if i == 0 else f"promoted-{i}", f"Promoted run: trial {source}")
    section.html = _metrics_table(row)
    candidates = [
        directory / table.PROMOTED_DIR / source / "models.parquet",
        directory / table.PROMOTED_DIR / str(row["trial_id"]) / "models.parquet",
    ]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        section.notes.append(f"No per-model results at {candidates[0]}; figures skipped.")
        return section
    models = table.read(path)
    seed = models["seed"].astype(str) if "seed" in models.columns else pd.Series("", index=models.index)
    hover = pd.Series(
        [f"model {m} (seed {s})" for m, s in zip(models.get("model", models.index), seed, strict=False)],
        index=models.index,
    )
    agreement = finite(models, "agreement")
    if not agreement.empty:
        section.notes.append(
            f"Mean agreement {agreement['agreement'].mean():.3f} over {len(agreement)} test model(s) and seeds."
        )
    stem = f"promoted-{_safe(source)}"
    figures = {
        f"{stem}-accuracy": _accuracy(finite(models, "test_acc", "rec_acc"), hover),
        f"{stem}-agreement": _agreement(agreement),
        f"{stem}-embedding": _embedding(finite(models, "emb_x", "emb_y", "test_acc"), hover),
    }
    section.figures = {key: fig for key, fig in figures.items() if fig is not None}
    if not section.figures:
        section.notes.append(f"{path} has no usable rows.")
    return section


def _accuracy(points: pd.DataFrame, hover: pd.Series):
    """Reconstructed vs original test accuracy per model: on the diagonal, the reconstruction works as well."""
    import plotly.graph_objects as go

    if points.empty:
        return None
    low = float(min(points["test_acc"].min(), points["rec_acc"].min()))
    high = float(max(points["test_acc"].max(), points["rec_acc"].max()))
    fig = go.Figure(
        go.Scatter(
            x=points["test_acc"],
            y=points["rec_acc"],
            mode="markers",
            name="test model",
            text=hover[points.index].tolist(),
            marker=dict(
                size=8,
                color=points.get("agreement"),
                colorscale="Cividis",
                colorbar=dict(title="agreement") if "agreement" in points else None,
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
    return style(fig).update_layout(legend=dict(x=0.01, y=0.99))


def _agreement(points: pd.DataFrame):
    """How often a reconstruction predicts what its original does: equal accuracy can hide different mistakes."""
    import plotly.graph_objects as go

    if points.empty:
        return None
    fig = go.Figure(go.Histogram(x=points["agreement"], nbinsx=20, marker=dict(color="#4c78a8")))
    fig.update_layout(
        xaxis_title="agreement (fraction of test inputs predicted the same)", yaxis_title="test models", bargap=0.05
    )
    return style(fig, height=400)


def _embedding(points: pd.DataFrame, hover: pd.Series):
    """The models' embeddings in 2-D, coloured by test accuracy: does the latent space order models by quality?"""
    import plotly.graph_objects as go

    if points.empty:
        return None
    fig = go.Figure(
        go.Scatter(
            x=points["emb_x"],
            y=points["emb_y"],
            mode="markers",
            text=hover[points.index].tolist(),
            marker=dict(size=9, color=points["test_acc"], colorscale="Viridis", colorbar=dict(title="test acc")),
            hovertemplate="%{text}<br>test acc %{marker.color:.3f}<extra></extra>",
        )
    )
    fig.update_layout(xaxis_title="PC 1 of the embedding", yaxis_title="PC 2 of the embedding")
    return style(fig)


def _metrics_table(row: pd.Series) -> str:
    """The run's summary metrics on validation and on test (mean ± std over its seeds, the test figure's 95%
    interval), under the validation figure that picked its trial; metrics it did not report are left out."""
    test = {metric: metrics.TEST_PREFIX + metric for metric in metrics.SUMMARY}
    cells = [
        f"<tr><th>{html.escape(metric)}</th><td>{spread(row, metric)}</td>"
        f"<td>{spread(row, test[metric])}</td><td>{interval(row, test[metric])}</td></tr>"
        for metric in metrics.SUMMARY
        if is_number(row.get(metric)) or is_number(row.get(test[metric]))
    ]
    if not cells:
        return ""
    seeds = row.get("seeds")
    caption = (
        f"mean ± std over {int(seeds)} seeds ({row.get('promoted_seeds', '?')}), none a trial ran"
        if is_number(seeds)
        else "metrics"
    )
    if is_number(row.get("pick_value")):
        caption += f"; picked by {row.get('pick_rule', '?')} {row.get('pick_metric', '?')} {row['pick_value']:.3f}"
        caption += " on validation"
    head = "<tr><th>metric</th><th>validation</th><th>test</th><th>test 95% interval</th></tr>"
    return f'<table class="metrics"><caption>{html.escape(caption)}</caption>{head}{"".join(cells)}</table>'


def _safe(text: str) -> str:
    """A trial id as a file stem for the PNGs."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:80] or "trial"
