"""Standard image datasets read from the files a user has on disk, for public zoos that ship no data.

A public zoo without bundled data (the Small CNN Zoo; a model-zoos root
without ``dataset.pt``) was trained on a standard dataset. ``read_dataset``
reads it from the files that the dataset's own site or torchvision's download
folder holds (nothing is downloaded) and preprocesses it the way that zoo
family's models saw it. Formats, by what ``path`` holds:

- IDX (MNIST, Fashion-MNIST): ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, raw or ``.gz``, flat in ``path`` or in
  torchvision's ``path/MNIST/raw/`` or ``path/FashionMNIST/raw/`` (or
  ``path/raw/``). Both datasets share the format and 28x28 shape: the folder
  names tell them apart (``MNIST``, ``FashionMNIST``, ``fashion``, ...);
  when they do not, the data is named ``EITHER_MNIST``.
- CIFAR-10 binary version: ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
  ``test_batch.bin``, flat or in ``path/cifar-10-batches-bin/`` (not the
  python pickles of torchvision's ``cifar-10-batches-py``: wsl unpickles none).
- SVHN cropped digits: ``train_32x32.mat`` and ``test_32x32.mat`` (flat, as in
  torchvision's SVHN root); the label 10 stands for digit 0 and becomes 0.
- ``.npz`` (``path`` is the file): ``x_train``, ``y_train``, ``x_test``,
  ``y_test``; images ``[N, H, W]`` (one channel), ``[N, H, W, C]`` or
  ``[N, C, H, W]`` with C 1 or 3, uint8 pixels or floats already preprocessed;
  labels ``[N]`` integers >= 0. Its dataset is not told (``UNKNOWN``).

Preprocessing (``PREPROCESS``), the same for every format of uint8 pixels:

- ``small-cnn`` (the Small CNN Zoo of Unterthiner et al. 2020): pixels / 255,
  scaled to [-1, 1], then the mean over the colour channels (not luma
  greyscale): one channel. Needs uint8 pixels.
- ``none``: pixels / 255, channels kept. Float images of an ``.npz`` are kept
  exactly as given: the user preprocessed them already.
"""

from __future__ import annotations

import gzip
import math
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from wsl.errors import WslError
from wsl.zoo.dataset_names import CLASSES, EITHER_MNIST, UNKNOWN, check_dataset, dataset_name
from wsl.zoo.tasks import Task

PREPROCESS = ("small-cnn", "none")
IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IDX_DIRS = (".", "raw", "MNIST/raw", "FashionMNIST/raw")
CIFAR = (*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin")
CIFAR_DIRS = (".", "cifar-10-batches-bin")
CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then the red, green and blue 32x32 planes
SVHN = ("train_32x32.mat", "test_32x32.mat")
NPZ = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Stored:
    """A dataset as its files hold it: images ``[N, C, H, W]`` (uint8 pixels, or an npz's floats), labels ``[N]``.

    ``name`` is what ``read_dataset``'s task is named; labels are int64 in ``[0, num_classes)``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def read_dataset(path, preprocess: str = "none", expect: str | None = None) -> Task:
    """The dataset at ``path`` (a folder, or an ``.npz`` file) as its zoo's models saw it.

    Returns a ``Task``: images ``[N, C, H, W]`` float32 preprocessed as
    ``preprocess`` names (``PREPROCESS``), labels ``[N]`` int64; its ``name``
    is the dataset the files are (one of ``DATASETS``, ``EITHER_MNIST`` or
    ``UNKNOWN``). With ``expect`` (the dataset a zoo names, in any usual
    spelling) data of another dataset is refused, see ``check_dataset``.
    """
    if preprocess not in PREPROCESS:
        raise WslError(f"preprocess {preprocess!r} is unknown; choose one of {', '.join(PREPROCESS)}")
    path = Path(path)
    stored = _read(path)
    if expect is not None:
        check_dataset(stored.name, expect, path)
    if stored.name == EITHER_MNIST:
        warnings.warn(
            f"{path}: IDX files do not tell MNIST from Fashion-MNIST (put them under MNIST/raw or FashionMNIST/raw "
            "to say which); re-running the zoo's models on them will show a wrong one",
            stacklevel=2,
        )
    x_train, x_test = (_preprocess(x, preprocess, path) for x in (stored.x_train, stored.x_test))
    y_train, y_test = torch.from_numpy(stored.y_train), torch.from_numpy(stored.y_test)
    return Task(stored.name, x_train, y_train, x_test, y_test, stored.num_classes)


def _read(path: Path) -> Stored:
    """The ``Stored`` dataset at ``path``, in whichever format its files are."""
    if path.is_file() and path.suffix == ".npz":
        return _read_npz(path)
    if not path.is_dir():
        what = "is not a directory or an .npz file" if path.exists() else "does not exist"
        raise WslError(f"dataset path {path} {what}; pass a folder of dataset files or an .npz (see README, Zoos)")
    found = [(fmt, folder) for fmt, (where, _) in FORMATS.items() for folder in where(path)]
    if not found:
        raise WslError(f"{path}: no dataset found; looked for {_looked_for(path)}")
    if len(found) > 1:
        places = ", ".join(f"{fmt} in {folder}" for fmt, folder in found)
        raise WslError(f"{path} holds several datasets ({places}); pass the folder of one")
    fmt, folder = found[0]
    return FORMATS[fmt][1](folder)


def _looked_for(path: Path) -> str:
    return (
        f"IDX files {', '.join(IDX)} (raw or .gz) in {_places(path, IDX_DIRS)}; "
        f"CIFAR-10 binary batches {', '.join(CIFAR)} in {_places(path, CIFAR_DIRS)}; "
        f"SVHN {', '.join(SVHN)} in {path}; or pass an .npz file with {', '.join(NPZ)}"
    )


def _places(path: Path, subdirs: Iterable[str]) -> str:
    return ", ".join(str(path / s) for s in subdirs)


def _holding(path: Path, subdirs: Iterable[str], names: Iterable[str], gz: bool = False) -> list[Path]:
    """The folders ``path/<subdir>`` that hold any of ``names`` (or, with ``gz``, ``<name>.gz``)."""
    return [path / s for s in subdirs if any(_file(path / s, n, gz) for n in names)]


def _file(folder: Path, name: str, gz: bool = False) -> Path | None:
    """``folder/name``, else with ``gz`` ``folder/name.gz``, if it is a file."""
    for candidate in (folder / name, folder / f"{name}.gz") if gz else (folder / name,):
        if candidate.is_file():
            return candidate
    return None


def _require(folder: Path, names: Iterable[str], what: str, gz: bool = False) -> list[Path]:
    """The files ``names`` in ``folder`` (raw or ``.gz`` with ``gz``), in order; refuses listing the missing ones."""
    files = {n: _file(folder, n, gz) for n in names}
    missing = [n for n, f in files.items() if f is None]
    if missing:
        raise WslError(
            f"{folder}: {what} files missing: {', '.join(missing)}{' (raw or .gz)' if gz else ''}; "
            f"looked for {', '.join(files)} there"
        )
    return list(files.values())


def _split(x: np.ndarray, y: np.ndarray, images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """One split, refusing unequal counts: images ``[N, ...]``, labels ``[N]`` int64."""
    if len(x) != len(y):
        labelled = "" if images == labels else f", {labels}"
        raise WslError(
            f"{images}{labelled}: {len(x)} images but {len(y)} labels; the counts must be equal (a truncated download?)"
        )
    return x, y.astype(np.int64)


def _check_labels(y: np.ndarray, low: int, high: int, file: Path, meaning: str = "classes") -> None:
    """Refuse, naming ``file``, the index and the value, a label outside ``[low, high]``."""
    out = np.flatnonzero((y < low) | (y > high))
    if len(out):
        raise WslError(
            f"{file}: label {y[out[0]]} at index {out[0]} is outside {low}..{high} ({meaning}); "
            "the file is corrupt or not of this dataset"
        )


def _stored(name: str, train, test, source: Path, num_classes: int = CLASSES) -> Stored:
    """``Stored`` from (images, labels) of train and test, refusing empty splits and images of two shapes."""
    (x_train, y_train), (x_test, y_test) = train, test
    if not len(x_train) or not len(x_test):
        raise WslError(f"{source}: the {'train' if not len(x_train) else 'test'} split holds no images")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise WslError(
            f"{source}: train images are [N, C, H, W] = {list(x_train.shape)} but test images "
            f"{list(x_test.shape)}; they must have one shape"
        )
    return Stored(name, x_train, y_train, x_test, y_test, num_classes)


# IDX: MNIST and Fashion-MNIST.


def _idx_folders(path: Path) -> list[Path]:
    return _holding(path, IDX_DIRS, IDX, gz=True)


def _read_idx_dataset(folder: Path) -> Stored:
    """MNIST or Fashion-MNIST from the 4 IDX files in ``folder``: images ``[N, 1, H, W]`` uint8, labels 0..9."""
    x_train, y_train, x_test, y_test = _require(folder, IDX, "MNIST / Fashion-MNIST IDX", gz=True)
    train = _idx_split(x_train, y_train)
    test = _idx_split(x_test, y_test)
    return _stored(_idx_identity(folder), train, test, folder)


def _idx_split(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = _split(_read_idx(images, ndim=3)[:, None], _read_idx(labels, ndim=1), images, labels)
    _check_labels(y, 0, CLASSES - 1, labels)
    return x, y


def _idx_identity(folder: Path) -> str:
    """MNIST or Fashion-MNIST as the folder (or, for ``raw``, its parent) is named; ``EITHER_MNIST`` otherwise."""
    folder = folder.resolve()
    for name in (folder.name, folder.parent.name):
        if dataset_name(name) in ("mnist", "fashion_mnist"):
            return dataset_name(name)
    return EITHER_MNIST


def _read_idx(file: Path, ndim: int) -> np.ndarray:
    """An IDX array of unsigned bytes: magic ``00 00 08 <ndim>``, ``ndim`` big-endian uint32 sizes, the data."""
    data = _bytes(file)
    if data[:4] != bytes((0, 0, 8, ndim)):
        raise WslError(
            f"{file}: IDX magic number {data[:4].hex() or 'absent'} is not {bytes((0, 0, 8, ndim)).hex()} "
            f"(unsigned bytes, {ndim} dims); is this the right file, and whole?"
        )
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(data[4:header], ">u4")) if len(data) >= header else None
    size = header + math.prod(dims) if dims else None
    if len(data) != size:
        shape = f"its header's {list(dims)} needs {size:,}" if dims else f"the header needs {header}"
        raise WslError(f"{file}: {len(data):,} bytes, but {shape}; the file is truncated or corrupt, download it again")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _bytes(file: Path) -> bytes:
    """The content of ``file``, gunzipped for ``.gz``."""
    if file.suffix != ".gz":
        return file.read_bytes()
    try:
        with gzip.open(file) as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise WslError(f"{file} is not a readable gzip file ({e}); download it again") from None


# CIFAR-10, binary version.


def _cifar_folders(path: Path) -> list[Path]:
    return _holding(path, CIFAR_DIRS, CIFAR)


def _read_cifar(folder: Path) -> Stored:
    """CIFAR-10 from its 6 binary batches in ``folder``: images ``[N, 3, 32, 32]`` uint8 (RGB), labels 0..9."""
    files = _require(folder, CIFAR, "CIFAR-10 binary")
    train = [_cifar_batch(f) for f in files[:-1]]
    x_train, y_train = (np.concatenate(parts) for parts in zip(*train))
    return _stored("cifar10", (x_train, y_train), _cifar_batch(files[-1]), folder)


def _cifar_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch of 3,073-byte records: a label byte, then the red, green and blue 32x32 planes row by row."""
    data = np.fromfile(file, np.uint8)
    if not len(data) or len(data) % CIFAR_RECORD:
        raise WslError(
            f"{file}: {len(data):,} bytes is not a whole number of {CIFAR_RECORD:,}-byte records (1 label byte, "
            "3,072 pixel bytes); the file is truncated or not a CIFAR-10 binary batch"
        )
    records = data.reshape(-1, CIFAR_RECORD)
    y = records[:, 0].astype(np.int64)
    _check_labels(y, 0, CLASSES - 1, file)
    return records[:, 1:].reshape(-1, 3, 32, 32), y


# SVHN, cropped digits.


def _svhn_folders(path: Path) -> list[Path]:
    return _holding(path, (".",), SVHN)


def _read_svhn(folder: Path) -> Stored:
    """SVHN from ``train_32x32.mat`` and ``test_32x32.mat``: images ``[N, 3, 32, 32]`` uint8, labels 0..9."""
    train, test = _require(folder, SVHN, "SVHN")
    return _stored("svhn", _svhn_split(train), _svhn_split(test), folder)


def _svhn_split(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` ``[32, 32, 3, N]`` -> ``[N, 3, 32, 32]``; ``y`` ``[N, 1]`` in 1..10, where 10 is digit 0, -> ``[N]``."""
    try:
        mat = loadmat(file, variable_names=("X", "y"))
    except (MatReadError, ValueError, NotImplementedError, OSError) as e:
        raise WslError(f"{file} is not a readable MATLAB file ({e}); download it again") from None
    missing = [k for k in ("X", "y") if k not in mat]
    if missing:
        raise WslError(f"{file}: variable {missing[0]!r} is missing; an SVHN file holds X and y")
    x, y = mat["X"], mat["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3:
        raise WslError(f"{file}: X is {x.dtype} {list(x.shape)}, expected uint8 [32, 32, 3, N] (SVHN's layout)")
    x, y = _split(x.transpose(3, 2, 0, 1), y.reshape(-1), file, file)
    _check_labels(y, 1, CLASSES, file, "SVHN's digits, 10 for 0")
    return x, y % CLASSES


# .npz, any dataset.


def _read_npz(file: Path) -> Stored:
    """Images and labels of an ``.npz`` (layouts in the module docstring); classes: the largest label + 1."""
    arrays = _npz_arrays(file)
    missing = [k for k in NPZ if k not in arrays]
    if missing:
        found = ", ".join(arrays) or "nothing"
        raise WslError(f"{file}: key {missing[0]!r} is missing (found {found}); an .npz needs {', '.join(NPZ)}")
    train, test = (_npz_split(arrays, part, file) for part in ("train", "test"))
    return _stored(UNKNOWN, train, test, file, int(max(train[1].max(initial=0), test[1].max(initial=0))) + 1)


def _npz_split(arrays: dict[str, np.ndarray], part: str, file: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = f"x_{part}", f"y_{part}"
    return _split(_npz_images(arrays[x], x, file), _npz_labels(arrays[y], y, file), file, file)


def _npz_arrays(file: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(file, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as e:
        raise WslError(f"{file}: {e}; store plain numeric arrays (wsl unpickles nothing)") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise WslError(f"{file} is not a readable .npz file ({e})") from None


def _npz_images(x: np.ndarray, key: str, file: Path) -> np.ndarray:
    """``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` (C 1 or 3) -> ``[N, C, H, W]``; uint8 or float."""
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise WslError(f"{file}: {key} is {x.dtype}; expected uint8 pixels (0..255) or float images")
    if x.ndim == 3:
        return x[:, None]
    first, last = x.ndim == 4 and x.shape[1] in (1, 3), x.ndim == 4 and x.shape[3] in (1, 3)
    if first != last:
        return x if first else x.transpose(0, 3, 1, 2)
    raise WslError(
        f"{file}: {key} has shape {list(x.shape)}; expected [N, H, W], [N, H, W, C] or [N, C, H, W] "
        "with C 1 or 3 (and H, W other than 1 and 3, so that the channel axis is clear)"
    )


def _npz_labels(y: np.ndarray, key: str, file: Path) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise WslError(f"{file}: {key} is {y.dtype} {list(y.shape)}; expected integer class indices [N]")
    negative = np.flatnonzero(y < 0)
    if len(negative):
        raise WslError(f"{file}: {key} holds label {y[negative[0]]} at index {negative[0]}; class indices are >= 0")
    return y


def _preprocess(x: np.ndarray, preprocess: str, source: Path) -> torch.Tensor:
    """Images ``[N, C, H, W]`` as ``preprocess`` names: float32 ``[N, C, H, W]`` (``[N, 1, H, W]`` for small-cnn)."""
    if x.dtype != np.uint8:
        if preprocess == "small-cnn":
            raise WslError(
                f"{source}: images are {x.dtype}; small-cnn preprocesses uint8 pixels (0..255): store those, "
                "or pass --preprocess none to keep images you preprocessed yourself"
            )
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    x = x.astype(np.float32) / np.float32(255)
    if preprocess == "small-cnn":
        x = (x * 2 - 1).mean(axis=1, keepdims=True, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x))


FORMATS = {  # name -> (folders under a path holding its files, reader of one such folder)
    "MNIST / Fashion-MNIST IDX": (_idx_folders, _read_idx_dataset),
    "CIFAR-10 binary": (_cifar_folders, _read_cifar),
    "SVHN": (_svhn_folders, _read_svhn),
}
