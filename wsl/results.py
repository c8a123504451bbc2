"""Metric tables on disk: parquet files written atomically, readable at any moment.

A reader never sees a half-written file: each write goes to a temporary
file in the same directory and is renamed over the old one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd


def write_parquet(path: Path, rows: list[dict] | pd.DataFrame) -> None:
    """Replace ``path`` with a table of ``rows``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
