"""Atomic writes: a reader sees the old version or the new one, never half of one, never none.

Every file and directory wsl writes for others to read (results tables,
checkpoints, zoos, configs, reports) goes through here:

- ``write_file(path, write)``: ``write(tmp)`` fills a temporary file next to
  ``path``, which is then renamed over it.
- ``new_dir(path)``: a directory that appears whole under ``path`` or not at all.
- ``swap_dir(path, fill)``: replace a directory that readers may have open;
  ``path`` is a symlink flipped from the old version to the new one in one rename.
- ``ReplacingFile(path)``: a stream for writers that want one (pyarrow's file
  systems); it replaces ``path`` when closed.

Temporary files and directories are created with the usual modes (0666 and
0777 less the umask), so what lands has the permissions of any other file
the user writes, not the private 0600 of ``tempfile.mkstemp``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _sibling(path: Path, tag: str) -> Path:
    """A fresh hidden name next to ``path`` (same file system, so renames are atomic)."""
    return path.parent / f".{path.name}.{tag}-{uuid.uuid4().hex[:12]}"


def write_file(path: Path | str, write: Callable[[Path], object]) -> Path:
    """Replace ``path`` by what ``write(tmp)`` writes to a temporary file; on any error, leave ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, as for any new file
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path | str, text: str) -> Path:
    return write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class ReplacingFile:
    """A binary file written under a hidden sibling name and renamed over ``path`` by ``close()``.

    One never closed (its writer failed, the process was killed) leaves ``path``
    as it was: dropping the object does not close it, unlike Python's file objects.
    ``keep(tmp)``, when given, is asked on close whether what was written may
    replace ``path``; when it says no, the new version is dropped.
    """

    def __init__(self, path: Path | str, keep: Callable[[Path], bool] | None = None):
        self.path = Path(path)
        self.tmp = _sibling(self.path, "tmp")
        self.keep = keep
        self.file = open(self.tmp, "wb")  # noqa: SIM115 (closed by close(), which publishes it)
        self.closed = False

    def write(self, data) -> int:
        return self.file.write(data)

    def close(self) -> None:
        if not self.closed:
            self.file.close()
            if self.keep is None or self.keep(self.tmp):
                os.replace(self.tmp, self.path)
            else:
                self.tmp.unlink()
            self.closed = True


@contextmanager
def new_dir(path: Path | str) -> Iterator[Path]:
    """Yield a temporary directory to fill; renamed to ``path`` (which must not exist) when the block ends.

    An error inside the block removes the temporary directory: ``path`` never exists half-made.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists already")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def swap_dir(path: Path | str, fill: Callable[[Path], object]) -> Path:
    """Replace the directory ``path`` by a new one that ``fill(tmp)`` writes, with no moment of absence.

    ``path`` becomes a symlink to a hidden sibling directory; the new version is
    built in another sibling and the link is flipped with one rename. A real
    directory left at ``path`` by an older wsl is moved aside first (once).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = _sibling(path, "v")
    target.mkdir()
    moved = None  # a real directory of an older wsl, moved aside
    try:
        fill(target)
        old = path.parent / os.readlink(path) if path.is_symlink() else None
        if path.exists() and not path.is_symlink():
            moved = _sibling(path, "old")
            os.rename(path, moved)
        link = _sibling(path, "link")
        link.symlink_to(target.name)
        os.replace(link, path)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        if moved is not None and not path.exists():
            os.rename(moved, path)
        raise
    for done in (old, moved):  # only versions this function made: a link the user pointed elsewhere is theirs
        if done is not None and done.parent == path.parent and done.name.startswith(f".{path.name}."):
            shutil.rmtree(done, ignore_errors=True)
    return path
