"""The zoo on disk: one directory, three files (four with task data), written atomically, validated on load.

- ``zoo.json``: format tag, version, name, task, architecture spec, row count,
  whether the zoo carries its task data, ``extra``.
- ``models.parquet``: one row per checkpoint (model id, epoch, split, activation,
  train/test loss and accuracy, any hyper-parameter columns).
- ``weights.safetensors``: per parameter name of ``arch.param_shapes`` one float32
  tensor ``[rows, *shape]``; row i belongs to row i of the table.
- ``task.safetensors`` (optional): the task's data exactly as the zoo's models
  saw it, so a zoo from elsewhere (e.g. a public one) trains and evaluates like
  wsl's own: ``x_train`` ``[N, C, H, W]`` float32 with ``(C, H, W)`` the
  architecture's input, ``y_train`` ``[N]`` int64 in ``[0, classes)``, and
  ``x_test`` / ``y_test`` alike. An importer that re-ran the originals on it
  records what it found in ``extra["task_check"]``.

No pickle anywhere, so a zoo from a stranger can be loaded safely. ``save_zoo``
writes into a temp directory next to the destination and renames it into place,
so a crash never leaves half a zoo; ``load_zoo`` checks every file against the
others and names the one that is wrong.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from wsl.atomic import new_dir
from wsl.errors import WslError
from wsl.zoo.arch import Arch
from wsl.zoo.pickling import arrays, tensors
from wsl.zoo.splits import SPLITS
from wsl.zoo.tasks import TASKS, Task

FORMAT, VERSION = "wsl-zoo", 1
META, MODELS, WEIGHTS, TASK = "zoo.json", "models.parquet", "weights.safetensors", "task.safetensors"
TASK_TENSORS = {"x_train": torch.float32, "y_train": torch.int64, "x_test": torch.float32, "y_test": torch.int64}
REQUIRED = {
    "model_id": "int64",
    "epoch": "int64",
    "split": "str",
    "activation": "str",
    "train_loss": "float64",
    "train_acc": "float64",
    "test_loss": "float64",
    "test_acc": "float64",
}
NONFINITE = ("skip", "fail")


@dataclass
class Zoo:
    """A population of checkpoints: ``models`` row i <-> ``weights[name][i]`` (``[R, *shape]``).

    ``path`` is where the zoo was loaded from, or None for one built in memory or
    cut from another (a subset's size on disk would be a lie). ``task_data`` is
    the task's data when the zoo carries it (None: ``task`` names a shipped
    task); ``wsl.data.task_of`` picks the right one.
    """

    path: Path | None
    name: str
    task: str
    arch: Arch
    models: pd.DataFrame
    weights: dict[str, Tensor]
    extra: dict
    task_data: Task | None = None

    def __len__(self) -> int:
        return len(self.models)

    def split(self, name: str) -> Zoo:
        """The rows of one split (``train``/``val``/``test``), renumbered from 0."""
        if name not in SPLITS:
            raise WslError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
        return self.select(self.models["split"].to_numpy() == name)

    def select(self, mask) -> Zoo:
        """The rows where the boolean ``mask`` (numpy, pandas or torch, length R) is true."""
        keep = np.asarray(mask.cpu() if isinstance(mask, Tensor) else mask)
        if keep.dtype != bool or keep.shape != (len(self),):
            raise ValueError(f"select needs a boolean mask of shape ({len(self)},), got {keep.dtype} {keep.shape}")
        rows = torch.from_numpy(np.flatnonzero(keep))
        models = self.models.iloc[rows.numpy()].reset_index(drop=True)
        weights = {k: v.index_select(0, rows.to(v.device)) for k, v in self.weights.items()}
        return Zoo(None, self.name, self.task, self.arch, models, weights, self.extra, self.task_data)

    def __reduce__(self):
        """Pickled with its weights as numpy arrays, shared by a node's Ray workers (``wsl.zoo.pickling``)."""
        fields = (self.path, self.name, self.task, self.arch, self.models, arrays(self.weights), self.extra)
        return _unpickle_zoo, (*fields, self.task_data)


def _unpickle_zoo(path, name, task, arch, models, weights, extra, task_data) -> Zoo:
    return Zoo(path, name, task, arch, models, tensors(weights), extra, task_data)


def save_zoo(path, zoo: Zoo) -> Path:
    """Write ``zoo`` to the new directory ``path``; all of it or, on any error, nothing."""
    path = Path(path)
    if path.exists():
        raise WslError(f"zoo directory {path} exists already; choose another path or delete it")
    with new_dir(path) as tmp:
        _write(tmp, zoo)
    return path


def _write(directory: Path, zoo: Zoo) -> None:
    models = _check_models(zoo.models.reset_index(drop=True), directory / MODELS)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "name": zoo.name,
        "task": zoo.task,
        "arch": zoo.arch.to_dict(),
        "rows": len(models),
        "task_data": zoo.task_data is not None,
        "extra": zoo.extra,
    }
    try:
        text = json.dumps(meta, indent=2)
    except (TypeError, ValueError) as e:
        raise WslError(f"zoo {zoo.name!r}: extra is not JSON-serialisable ({e}); keep it to plain values") from None
    (directory / META).write_text(text)
    pq.write_table(pa.Table.from_pandas(models, preserve_index=False), directory / MODELS)
    weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in zoo.weights.items()}
    _check_weights(weights, zoo.arch, len(models), directory / WEIGHTS)
    save_file(weights, directory / WEIGHTS)
    if zoo.task_data is not None:
        check_task(zoo.task_data, zoo.arch, directory / TASK)
        save_file({k: v.cpu().contiguous() for k, v in _task_tensors(zoo.task_data).items()}, directory / TASK)


def load_zoo(path, nonfinite: str = "skip") -> Zoo:
    """Read and validate the zoo at ``path``.

    ``nonfinite`` decides what rows with NaN/inf weights do: ``skip`` drops them
    with a warning, ``fail`` raises naming the tensor and the row.
    """
    if nonfinite not in NONFINITE:
        raise WslError(f"nonfinite={nonfinite!r} is invalid: expected one of {', '.join(NONFINITE)}")
    path = Path(path)
    if not path.is_dir():
        raise WslError(f"zoo directory {path} does not exist; build one with `wsl zoo make` or `wsl zoo import`")
    meta, arch = _read_meta(path / META)
    models = _check_models(_read_models(path / MODELS), path / MODELS)
    if meta["rows"] != len(models):
        raise WslError(
            f"{path / META}: rows={meta['rows']} but {path / MODELS} has {len(models)} rows; the zoo is corrupt"
        )
    weights = _read_weights(path / WEIGHTS)
    _check_weights(weights, arch, len(models), path / WEIGHTS)
    task_data = _read_task(path / TASK, meta["task"], arch) if meta.get("task_data") else None
    zoo = Zoo(path, meta["name"], meta["task"], arch, models, weights, meta.get("extra", {}), task_data)
    bad = _nonfinite_rows(weights, len(models))
    if not bad.any():
        return zoo
    if nonfinite == "fail":
        raise WslError(_nonfinite_message(weights, models, path / WEIGHTS))
    warnings.warn(
        f"{path / WEIGHTS}: skipped {int(bad.sum())} of {len(models)} rows with NaN/inf weights", stacklevel=2
    )
    kept = zoo.select(~bad)
    kept.path = path
    return kept


def _read_meta(file: Path) -> tuple[dict, Arch]:
    try:
        meta = json.loads(file.read_text())
    except FileNotFoundError:
        raise WslError(f"{file} is missing; this is not a wsl zoo directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WslError(f"{file} is not valid JSON ({e}); the zoo is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WslError(f"{file}: format is not {FORMAT!r}; this is not a wsl zoo")
    if meta.get("version") != VERSION:
        raise WslError(f"{file}: version {meta.get('version')!r} is not supported (this wsl reads version {VERSION})")
    missing = [k for k in ("name", "task", "arch", "rows") if k not in meta]
    if missing:
        raise WslError(f"{file}: key {missing[0]!r} is missing; the zoo is corrupt")
    try:
        arch = Arch.from_dict(meta["arch"])
    except (WslError, TypeError, ValueError, AttributeError) as e:
        raise WslError(f"{file}: arch is not usable: {e}") from None
    return meta, arch


def _read_models(file: Path) -> pd.DataFrame:
    if not file.is_file():
        raise WslError(f"{file} is missing; the zoo is incomplete")
    try:
        return pq.read_table(file).to_pandas()
    except (pa.ArrowException, OSError) as e:
        raise WslError(f"{file} is not a readable parquet file ({e}); the zoo is corrupt") from None


def _check_models(models: pd.DataFrame, file: Path) -> pd.DataFrame:
    """``models`` with the required columns in their dtypes; splits known and one per model."""
    missing = [c for c in REQUIRED if c not in models.columns]
    if missing:
        raise WslError(f"{file}: required column {missing[0]!r} is missing (required: {', '.join(REQUIRED)})")
    try:
        models = models.astype(REQUIRED)
    except (TypeError, ValueError) as e:
        raise WslError(f"{file}: a required column has the wrong type ({e}); expected {REQUIRED}") from None
    unknown = sorted(set(models["split"]) - set(SPLITS))
    if unknown:
        raise WslError(f"{file}: split {unknown[0]!r} is unknown; splits are {', '.join(SPLITS)}")
    for column in ("train_acc", "test_acc"):  # what probes predict and reconstructions are judged by
        bad = ~np.isfinite(models[column].to_numpy())
        if bad.any():
            row = models[bad].iloc[0]
            raise WslError(
                f"{file}: {column} is not a finite number in {bad.sum()} rows (first: model_id {row['model_id']}, "
                f"epoch {row['epoch']}); probes and reconstruction metrics need every checkpoint's accuracy: "
                "fix or leave out those rows"
            )
    per_model = models.groupby("model_id")["split"].nunique()
    mixed = per_model.index[per_model > 1]
    if len(mixed):
        splits = sorted(set(models.loc[models["model_id"] == mixed[0], "split"]))
        raise WslError(f"{file}: model_id {mixed[0]} sits in several splits {splits}; split by model")
    return models


def _read_weights(file: Path) -> dict[str, Tensor]:
    weights = _load_safetensors(file, f"{file} is missing; the zoo is incomplete")
    return {k: v.to(torch.float32) for k, v in weights.items()}


def _load_safetensors(file: Path, missing: str) -> dict[str, Tensor]:
    """The tensors of one of the zoo's safetensors files; ``missing``: the error when it is not there."""
    if not file.is_file():
        raise WslError(missing)
    try:
        return load_file(file)
    except (SafetensorError, OSError, ValueError) as e:
        raise WslError(f"{file} is not a readable safetensors file ({e}); the zoo is corrupt") from None


def _check_weights(weights: dict[str, Tensor], arch: Arch, rows: int, file: Path) -> None:
    """One ``[rows, *shape]`` tensor per parameter of ``arch``, nothing else."""
    shapes = arch.param_shapes
    missing = [k for k in shapes if k not in weights]
    extra = [k for k in weights if k not in shapes]
    if missing or extra:
        what = f"tensor {missing[0]!r} is missing" if missing else f"tensor {extra[0]!r} is not a parameter"
        raise WslError(f"{file}: {what} of the architecture (expected {', '.join(shapes)})")
    for name, shape in shapes.items():
        if tuple(weights[name].shape) != (rows, *shape):
            raise WslError(
                f"{file}: tensor {name!r} has shape {tuple(weights[name].shape)}, expected {(rows, *shape)} "
                f"({rows} rows of the architecture's {shape})"
            )


def _read_task(file: Path, name: str, arch: Arch) -> Task:
    """The zoo's own task data, validated against ``arch``; its classes are the architecture's."""
    missing = f"{file} is missing but zoo.json says the zoo carries its task data; the zoo is incomplete"
    tensors = _load_safetensors(file, missing)
    unknown = sorted(set(tensors) - set(TASK_TENSORS))
    missing = [k for k in TASK_TENSORS if k not in tensors]
    if missing or unknown:
        what = f"tensor {missing[0]!r} is missing" if missing else f"tensor {unknown[0]!r} is unknown"
        raise WslError(f"{file}: {what} (expected exactly {', '.join(TASK_TENSORS)})")
    _check_task_tensors(tensors, arch, file)
    return Task(name, tensors["x_train"], tensors["y_train"], tensors["x_test"], tensors["y_test"], arch.num_classes)


def check_task(task: Task, arch: Arch, file) -> None:
    """Refuse, naming ``file``, task data that ``arch``'s models cannot run on or be scored with.

    Images ``[N, C, H, W]`` float32, finite, with ``(C, H, W) == arch.in_shape``;
    labels ``[N]`` int64 in ``[0, arch.num_classes)``; train and test both non-empty.
    """
    if task.num_classes != arch.num_classes:
        raise WslError(
            f"{file}: the task has {task.num_classes} classes but the zoo's architecture {arch.num_classes}; "
            "they must agree"
        )
    _check_task_tensors(_task_tensors(task), arch, file)


def _task_tensors(task: Task) -> dict[str, Tensor]:
    return {"x_train": task.x_train, "y_train": task.y_train, "x_test": task.x_test, "y_test": task.y_test}


def _check_task_tensors(tensors: dict[str, Tensor], arch: Arch, file: Path) -> None:
    """``tensors`` holds every name of ``TASK_TENSORS`` in its dtype; each split passes ``_check_split``."""
    for name, dtype in TASK_TENSORS.items():
        if tensors[name].dtype != dtype:
            raise WslError(f"{file}: tensor {name!r} is {tensors[name].dtype}, expected {dtype}")
    for part in ("train", "test"):
        _check_split(tensors[f"x_{part}"], tensors[f"y_{part}"], part, arch, file)


def _check_split(x: Tensor, y: Tensor, part: str, arch: Arch, file: Path) -> None:
    """Images ``x`` ``[N >= 1, *arch.in_shape]`` finite, labels ``y`` ``[N]`` in ``[0, arch.num_classes)``."""
    if x.ndim != 4 or tuple(x.shape[1:]) != arch.in_shape or len(x) == 0:
        c, h, w = arch.in_shape
        raise WslError(
            f"{file}: tensor 'x_{part}' has shape {tuple(x.shape)}, expected [N >= 1, {c}, {h}, {w}] "
            "(images in the zoo architecture's input shape)"
        )
    if tuple(y.shape) != (len(x),):
        raise WslError(
            f"{file}: tensor 'y_{part}' has shape {tuple(y.shape)}, expected ({len(x)},): one label per image"
        )
    bad = ~torch.isfinite(x).flatten(1).all(1)
    if bad.any():
        raise WslError(
            f"{file}: tensor 'x_{part}' holds NaN/inf (image {int(bad.nonzero()[0])}); images must be finite"
        )
    out = (y < 0) | (y >= arch.num_classes)
    if out.any():
        i = int(out.nonzero()[0])
        raise WslError(
            f"{file}: tensor 'y_{part}' holds label {int(y[i])} at index {i}, outside [0, {arch.num_classes}) "
            "(the architecture's classes)"
        )


def _nonfinite_rows(weights: dict[str, Tensor], rows: int) -> np.ndarray:
    """Boolean ``[rows]``: which rows hold a NaN or inf in any tensor."""
    bad = torch.zeros(rows, dtype=torch.bool)
    for tensor in weights.values():
        bad |= ~torch.isfinite(tensor).flatten(1).all(1)
    return bad.numpy()


def _nonfinite_message(weights: dict[str, Tensor], models: pd.DataFrame, file: Path) -> str:
    for name, tensor in weights.items():
        rows = np.flatnonzero(~torch.isfinite(tensor).flatten(1).all(1).numpy())
        if len(rows):
            row = models.iloc[rows[0]]
            return (
                f"{file}: tensor {name!r} holds NaN/inf at row {rows[0]} (model_id {row['model_id']}, "
                f"epoch {row['epoch']}); load with nonfinite='skip' to drop such rows"
            )
    raise AssertionError("unreachable: called only when a row is non-finite")


def summary(zoo: Zoo) -> dict:
    """What a researcher checks first: size, epochs, splits, accuracy spread, parameters.

    ``test_acc`` quantiles are over each model's last recorded epoch.
    """
    models = zoo.models
    last = models.loc[models.groupby("model_id")["epoch"].idxmax()] if len(models) else models
    quantiles = last["test_acc"].quantile([0, 0.25, 0.5, 0.75, 1]).to_numpy()
    per_split = models.groupby("split")["model_id"].nunique()
    out = {
        "name": zoo.name,
        "task": zoo.task,
        "arch": zoo.arch.family,
        "models": int(models["model_id"].nunique()),
        "checkpoints": len(models),
        "epochs": sorted(int(e) for e in models["epoch"].unique()),
        "splits": {s: int(per_split.get(s, 0)) for s in SPLITS},
        "test_acc": dict(zip(("min", "25%", "50%", "75%", "max"), (float(q) for q in quantiles), strict=True)),
        "params_per_model": zoo.arch.num_params,
        "task_data": _task_data_summary(zoo),
    }
    if zoo.path is not None:
        out["bytes_on_disk"] = sum(f.stat().st_size for f in Path(zoo.path).iterdir() if f.is_file())
    return out


def _task_data_summary(zoo: Zoo) -> str:
    """Where the zoo's task data comes from, and what an importer's re-check of it found."""
    if zoo.task_data is None:
        shipped = zoo.task in TASKS
        return f"shipped task {zoo.task!r}" if shipped else f"none: task {zoo.task!r} does not ship with wsl"
    data = zoo.task_data
    text = f"in the zoo: {len(data.x_train)} train, {len(data.x_test)} test images"
    check = zoo.extra.get("task_check")
    if isinstance(check, dict) and "largest_abs_diff" in check:
        text += f"; originals re-run: largest |test_acc - recorded| {check['largest_abs_diff']:.4f}"
    return text
