"""What every figure of the report shares: statuses' symbols and colours, the common look, hover text and the
small frame helpers the sections and the promoted-runs figures draw with."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from wsl import table
from wsl.columns import resolve
from wsl.errors import WslError
from wsl.metrics import OBJECTIVE
from wsl.results import cell_text
from wsl.sweep.config import Param

X, Y = "rec_agreement", "probe_r2"  # the Pareto front's axes, both maximised: faithful and predictive
# filled symbols only: plotly.js mis-handles open symbols coloured through a colour axis (console warnings)
SYMBOLS = {table.TERMINATED: "circle", table.STOPPED: "diamond", table.RUNNING: "triangle-up"}
PLOTTED = tuple(SYMBOLS)  # the statuses with a symbol; failed or interrupted trials stay out of the scatter plots
STATUS_NAMES = {table.TERMINATED: "ran to max_t", table.STOPPED: "stopped early (ASHA)", table.RUNNING: "running"}
COLOURS = {table.TERMINATED: "#1f77b4", table.STOPPED: "#ff7f0e", table.RUNNING: "#2ca02c", table.ERROR: "#d62728"}
HEIGHT = 560  # figure height in pixels, on the page and in the PNGs


def by_status(points: pd.DataFrame, x: str, y: str, colour: str | None, scale: str, size: int) -> list:
    """One marker trace per status (its own symbol and legend entry), all coloured on one scale of ``colour``."""
    import plotly.graph_objects as go

    traces = []
    for status, symbol in SYMBOLS.items():
        group = points[points["status"] == status]
        if group.empty:
            continue
        marker = dict(symbol=symbol, size=size, line=dict(width=1, color="#333"))
        if colour:
            marker.update(shared_scale(group[colour], points[colour], scale, label(colour), first=not traces))
        traces.append(
            go.Scatter(
                x=group[x],
                y=group[y],
                mode="markers",
                name=STATUS_NAMES[status],
                marker=marker,
                text=hover(group),
                hovertemplate="%{text}<extra></extra>",
            )
        )
    return traces


def style(fig, height: int = HEIGHT):
    """The look every figure shares, legend below the plot so it never covers points."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin=dict(l=70, r=30, t=30, b=100),
        legend=dict(orientation="h", x=0, y=-0.14, yanchor="top"),
    )
    return fig


def finite(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The rows with a finite number in every one of ``columns`` (none if a column is missing)."""
    if any(c not in frame.columns for c in columns):
        return frame.iloc[0:0]
    values = frame[list(columns)].apply(pd.to_numeric, errors="coerce")
    return frame[np.isfinite(values.to_numpy(dtype=float)).all(axis=1)]


def column(frame: pd.DataFrame, short: str) -> str | None:
    """``beta`` -> ``loss.beta``, as ``wsl results`` resolves it; None where the sweep has no such column (or
    several: a figure coloured by an ambiguous name would mislead)."""
    try:
        return resolve(frame, short)
    except WslError:
        return None


def searched(frame: pd.DataFrame, space: dict[str, Param]) -> list[str]:
    """The columns of the sweep's searched keys (``space``). A table copied without its ``sweep.yaml`` has no
    space: its dotted columns that vary across trials stand in for it."""
    if space:
        return [k for k in space if k in frame.columns]
    out = []
    for name in frame.columns:
        if "." not in name:
            continue
        values = frame[name].dropna()
        if len(values) and values.astype(str).nunique() > 1:
            out.append(name)
    return out


def label(name: str) -> str:
    """``loss.beta`` -> ``beta``: axis and bar labels stay short."""
    return name.rsplit(".", 1)[-1]


def promoted_sources(promoted: pd.DataFrame) -> list[str]:
    """The trial ids that the promoted runs were promoted from."""
    if "source_trial" not in promoted.columns:
        return []
    return [str(s) for s in promoted["source_trial"].dropna().unique()]


def hover(frame: pd.DataFrame) -> list[str]:
    """Per point: trial, status, loss weights and the metrics the figures plot."""
    keys = [c for c in (column(frame, "gamma"), column(frame, "beta")) if c]
    lines = []
    for _, row in frame.iterrows():
        parts = [f"<b>{html.escape(str(row['trial_id']))}</b> ({row['status'].lower()})"]
        parts += [f"{label(k)} = {cell_text(row[k], missing='')}" for k in keys]
        parts += [f"{m} = {cell_text(row[m], missing='')}" for m in (OBJECTIVE, X, Y) if m in row]
        lines.append("<br>".join(parts))
    return lines


def shared_scale(values: pd.Series, everything: pd.Series, scale: str, title: str, first: bool) -> dict:
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


def error_bars(frame: pd.DataFrame, metric: str) -> dict | None:
    """Error bars from ``<metric>_std`` (the spread over a promoted run's seeds), if it has one."""
    std = f"{metric}_std"
    if std not in frame.columns or frame[std].isna().all():
        return None
    return dict(type="data", array=frame[std].fillna(0.0).tolist(), visible=True)
