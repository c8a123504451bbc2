"""The report as one HTML file: a summary, a table of contents, then each section's notes, tables and figures.

plotly.js is inlined once, with the first figure, so the page opens offline
(a cluster's results copied to a laptop) and stays a single file to mail or archive.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

from wsl.results import cell_text


@dataclass
class Section:
    """One part of the page: what ``wsl.report.sections`` builds and ``render_page`` lays out."""

    key: str
    title: str
    figures: dict = field(default_factory=dict)  # file stem -> plotly Figure
    notes: list[str] = field(default_factory=list)
    html: str = ""  # extra markup before the figures (tables)


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


def render_page(name: str, trials: pd.DataFrame, sweep: dict, sections: list[Section], note: str = "") -> str:
    """The whole page; ``note`` (why PNGs are missing, if they are) goes under the summary."""
    counts = trials["status"].value_counts()
    summary = ", ".join(f"{n} {html.escape(str(s)).lower()}" for s, n in counts.items())
    objective = sweep.get("objective") or "objective"
    parts, inlined = [], False
    for section in sections:
        parts.append(_section(section, inline_js=not inlined))
        inlined = inlined or bool(section.figures)
    nav = " · ".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    png_note = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>wsl report: {html.escape(name)}</title>
<style>{CSS}</style></head>
<body>
<h1>Sweep {html.escape(name)}</h1>
<p class="summary">{len(trials)} rows: {summary}. Objective (maximised): <code>{html.escape(str(objective))}</code>.</p>
{png_note}
<nav>{nav}</nav>
{chr(10).join(parts)}
</body></html>
"""


def _section(section: Section, inline_js: bool) -> str:
    """One ``<section>``; its first figure carries plotly.js when ``inline_js`` (no figure before it did)."""
    import plotly.io as pio

    body = [f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>']
    body += [f'<p class="note">{html.escape(note)}</p>' for note in section.notes]
    body.append(section.html)
    for i, (stem, fig) in enumerate(section.figures.items()):
        body.append(
            pio.to_html(
                fig,
                full_html=False,
                include_plotlyjs=inline_js and i == 0,
                div_id=f"fig-{stem}",
                config={"displaylogo": False, "responsive": True},
            )
        )
    body.append("</section>")
    return "\n".join(body)


def table(frame: pd.DataFrame, shaded: list[str]) -> str:
    """``frame`` as a horizontally scrolling HTML table, the ``shaded`` columns' headers highlighted."""
    head = "".join(f'<th class="{"searched" if c in shaded else ""}">{html.escape(str(c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell_text(v, missing=''))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f'<div class="scroll"><table class="top"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
