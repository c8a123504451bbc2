"""Where Tune keeps a sweep's state, and the guarantee that a killed driver leaves it whole.

Tune writes its driver state (trial table, searcher, search generator) into
a staging directory, in place, and a background thread copies that directory
into the sweep's storage with pyarrow, in place too. Either can leave a state
file cut short in storage: a driver killed during the copy (SIGKILL, the OOM
killer, a lost node), or a copy that read a file while Tune was rewriting it.
``Tuner.restore`` then logs the error and starts the experiment over on a
half-restored state, which hangs. So:

- storage on a file system (the sweep directory, or a mount every node
  shares) is written through ``AtomicLocalFiles``: each file is filled next to
  its place and renamed over it when closed, so a reader sees the old version
  or the new one; and a state file replaces the old one only if it parses (a
  copy cut short is dropped; the next snapshot, a step later, brings a whole
  one). Object stores (``s3://``, ``gs://``) replace objects whole already and
  are left to Ray.
- ``check_state`` reads the state files whose failure ``Tuner.restore``
  swallows, before it runs, and names a broken one (left by a wsl without
  this guarantee).
"""

from __future__ import annotations

import json
import pickletools
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import ray

from wsl.atomic import ReplacingFile, write_file
from wsl.errors import WslError
from wsl.sweep.config import SweepConfig

# What Tune restores from, the newest file of each pattern (ray.tune: TuneController, SearchGenerator, Searcher
# and CallbackList's CKPT_FILE_TMPL), and how each is written: the search generator's ".json" is a pickle.
STATE_FILES = {
    "experiment_state-*.json": "json",
    "search_gen_state-*.json": "pickle",
    "searcher-state-*.pkl": "pickle",
    "callback-states-*.pkl": "pickle",
}


def experiment_path(cfg: SweepConfig, directory: Path) -> str:
    """Where Tune keeps trial state and checkpoints: shared storage on a cluster, else the sweep directory."""
    return f"{cfg.storage.rstrip('/')}/{cfg.name}" if cfg.storage else str(directory.resolve())


def filesystem(path: str) -> tuple[pafs.FileSystem | None, str]:
    """``(storage_filesystem, storage_path)`` for Tune: files under ``path`` land whole; URIs go to Ray as they are."""
    url = urlparse(path)
    if url.scheme not in ("", "file"):
        return None, path
    return pafs.PyFileSystem(AtomicLocalFiles()), url.path if url.scheme else path


def check_state(name: str, path: str) -> None:
    """Refuse to resume from a Tune state file that does not parse, naming it; ``path`` is Tune's experiment dir."""
    fs, root = filesystem(path)
    if fs is None:
        fs, root = pafs.FileSystem.from_uri(path)
    names = [info.base_name for info in fs.get_file_info(pafs.FileSelector(root)) if info.is_file]
    for pattern, kind in STATE_FILES.items():
        matching = sorted(n for n in names if Path(n).match(pattern))
        if not matching:
            continue
        newest = f"{root}/{matching[-1]}"
        with fs.open_input_stream(newest) as f:
            fault = _fault(f.readall(), kind)
        if fault is not None:
            raise WslError(
                f"cannot resume sweep {name!r}: Tune's state file {newest} is cut short ({fault}); it was being "
                f"written when the driver died. The finished trials are in the results table: start a new sweep "
                f"seeded with them, `wsl sweep name=<new> search.warm_start={name}`"
            )


def _state_kind(path: str) -> str | None:
    """How the Tune state file at ``path`` is encoded ("json" or "pickle"); None for any other file."""
    return next((kind for pattern, kind in STATE_FILES.items() if Path(path).match(pattern)), None)


def _fault(data: bytes, kind: str) -> str | None:
    """Why ``data`` is not one whole JSON document or pickle (read to its STOP, nothing run); None when it is."""
    try:
        if kind == "json":
            json.loads(data)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        else:
            for _ in pickletools.genops(data):  # "pickle exhausted before seeing STOP" when cut short
                pass
    except ValueError as e:
        return str(e)
    return None


class AtomicLocalFiles(pafs.FileSystemHandler):
    """The local file system, except that a file opened for writing replaces its destination when closed.

    Use as ``pyarrow.fs.PyFileSystem(AtomicLocalFiles())``. Everything but
    writing goes to ``pyarrow.fs.LocalFileSystem`` unchanged.
    """

    def __init__(self):
        self.local = pafs.LocalFileSystem()

    def __eq__(self, other) -> bool:
        return isinstance(other, AtomicLocalFiles)

    def __reduce__(self):
        return AtomicLocalFiles, ()

    def open_output_stream(self, path: str, metadata) -> pa.NativeFile:
        kind = _state_kind(path)
        keep = None if kind is None else lambda tmp: _fault(tmp.read_bytes(), kind) is None
        return pa.PythonFile(ReplacingFile(path, keep=keep), mode="w")

    def copy_file(self, src: str, dest: str) -> None:
        write_file(dest, lambda tmp: shutil.copyfile(src, tmp))

    def equals(self, other) -> bool:
        return self == other

    def get_type_name(self) -> str:
        return "wsl-atomic-local"

    def normalize_path(self, path: str) -> str:
        return self.local.normalize_path(path)

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of / (Tune's storage is a sweep directory)")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.local.open_input_file(path)

    def open_append_stream(self, path: str, metadata) -> pa.NativeFile:
        return self.local.open_append_stream(path, metadata=metadata)


def check_storage(cfg: SweepConfig) -> None:
    """On more than one node, trials checkpoint from workers: the head's sweep directory is out of their reach."""
    nodes = sum(1 for node in ray.nodes() if node["Alive"])
    if nodes > 1 and not cfg.storage:
        raise WslError(
            f"this Ray cluster has {nodes} nodes: set storage= to a place every node reaches "
            "(storage=s3://BUCKET/wsl, storage=gs://BUCKET/wsl, or a shared mount); see cluster/README.md"
        )
