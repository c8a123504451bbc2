"""The report's figures as PNG files (for slides and papers), drawn by kaleido with the system Chrome/Chromium.

The PNGs are optional: the page is complete on its own, so a machine without
a browser (a cluster's login node) gets a warning and a note on the page, not
an error.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

from wsl.report.figures import HEIGHT
from wsl.report.page import Section

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WIDTH = 900  # PNG width in pixels; the height is the figure's own
NO_BROWSER = (
    "PNG export skipped: no Chrome/Chromium found (install chromium, or set BROWSER_PATH); "
    "the interactive page is complete."
)


def write_pngs(out: Path, sections: list[Section]) -> str:
    """Export every figure as ``<stem>.png``; return a note for the page if that was not possible."""
    figures = [(stem, fig) for section in sections for stem, fig in section.figures.items()]
    if not figures:
        return ""
    import kaleido
    from choreographer.errors import ChromeNotFoundError

    jobs = [
        {
            "fig": fig,
            "path": str(out / f"{stem}.png"),
            "opts": {"format": "png", "width": WIDTH, "height": fig.layout.height or HEIGHT},
        }
        for stem, fig in figures
    ]
    try:
        kaleido.write_fig_from_object_sync(jobs, kopts=_options(), cancel_on_error=True)
    except ChromeNotFoundError:
        warnings.warn(NO_BROWSER, stacklevel=5)  # at write_report's caller: here <- fill <- swap_dir <- write_report
        return NO_BROWSER
    missing = [stem for stem, _ in figures if not (out / f"{stem}.png").is_file()]
    if missing:
        raise RuntimeError(f"kaleido wrote no PNG for {missing}")
    return ""


def _options() -> dict:
    """Kaleido's options: the browser to drive (``$BROWSER_PATH``, else the first of ``BROWSERS`` found), no MathJax."""
    options: dict = {"mathjax": False}  # kaleido's default MathJax comes from a CDN; we use no LaTeX
    browser = os.environ.get("BROWSER_PATH") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser:
        options["path"] = browser
    return options
