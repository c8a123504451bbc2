"""Convert a zoo in the public model-zoo layout (modelzoos.cc) into a wsl zoo.

The public zoos are Ray Tune experiment folders: one folder per model with
``params.json`` (flat config), ``result.json`` (one JSON line per epoch) and
``checkpoint_<N>/checkpoints`` (a ``torch.save``d state dict whose modules sit in
``module_list``, with pooling, activation and dropout modules taking indices
between the weight layers). The input size is not stored anywhere, so the
architecture is inferred from the first checkpoint's shapes and the zoos'
conventions (padding 0, a 2x2 max-pool after each conv, except after the
last one in CNN-s).
"""

from __future__ import annotations

import json
import math
import pickle
import re
import warnings
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from wsl.errors import WslError
from wsl.zoo.arch import Arch, Conv
from wsl.zoo.store import NONFINITE, Zoo, assign_splits, save_zoo

CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)")
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")
HYPERS = {  # our column -> params.json key
    "dropout": "model::dropout",
    "init": "model::init_type",
    "optimizer": "optim::optimizer",
    "lr": "optim::lr",
    "wd": "optim::wd",
    "seed": "seed",
}
SIZES = (28, 32, *(s for s in range(4, 129) if s not in (28, 32)))  # input sizes tried, preferred first


def import_public_zoo(
    src: Path,
    out: Path,
    task: str = "unknown",
    name: str | None = None,
    nonfinite: str = "skip",
    split_seed: int = 0,
) -> Path:
    """Read every model folder under ``src`` and write them as one zoo at ``out``.

    Checkpoints without a matching ``result.json`` line are skipped with a
    warning; NaN/inf checkpoints follow ``nonfinite`` (``skip`` or ``fail``).
    Splits are assigned by model with ``split_seed``.
    """
    if nonfinite not in NONFINITE:
        raise WslError(f"nonfinite={nonfinite!r} is invalid: expected one of {', '.join(NONFINITE)}")
    src, out = Path(src), Path(out)
    if out.exists():
        raise WslError(f"zoo directory {out} exists already; choose another --out or delete it")
    arch, rows, snapshots, skipped = None, [], [], {}
    for model_id, folder in enumerate(_model_folders(src)):
        hypers = _hypers(folder / "params.json")
        results = _results(folder / "result.json")
        for n, file in _checkpoints(folder):
            params = _params(file)
            arch = arch or _infer_arch(params, file)
            _check_shapes(params, arch, file)
            reason = _skip_reason(params, results.get(n), file, nonfinite)
            if reason:
                skipped.setdefault(reason, []).append(file)
                continue
            rows.append({"model_id": model_id, "epoch": n, **results[n], **hypers, "source": folder.name})
            snapshots.append(params)
    for reason, files in skipped.items():
        warnings.warn(f"skipped {len(files)} checkpoints with {reason}, e.g. {files[0]}", stacklevel=2)
    if not rows:
        raise WslError(f"{src}: no usable checkpoint (with a result.json line and finite weights) was found")
    models = pd.DataFrame(rows)
    models["split"] = models["model_id"].map(assign_splits(models["model_id"], seed=split_seed))
    weights = {k: torch.stack([s[k] for s in snapshots]) for k in arch.param_shapes}
    extra = {"source": str(src.resolve()), "importer": "public-model-zoo"}
    return save_zoo(out, Zoo(None, name or src.name, task, arch, models, weights, extra))


def _skip_reason(params: dict[str, Tensor], result: dict | None, file: Path, nonfinite: str) -> str | None:
    """Why a checkpoint is left out (None: it is kept); raises for NaN/inf under ``fail``."""
    if result is None:
        return "no result.json line for their training_iteration"
    if all(torch.isfinite(p).all() for p in params.values()):
        return None
    if nonfinite == "fail":
        raise WslError(f"{file} holds NaN/inf weights; import with nonfinite='skip' to leave it out")
    return "NaN/inf weights"


def _model_folders(src: Path) -> list[Path]:
    """The model folders (those with a ``params.json``), sorted by name: the order is the model id."""
    if not src.is_dir():
        raise WslError(f"source zoo {src} does not exist or is not a directory")
    folders = sorted(p for p in src.iterdir() if p.is_dir() and (p / "params.json").is_file())
    if not folders:
        raise WslError(f"source zoo {src} holds no model folders (folders with a params.json)")
    return folders


def _read_json(file: Path):
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise WslError(f"{file} is missing; every model folder needs params.json and result.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WslError(f"{file} is not valid JSON ({e})") from None


def _hypers(file: Path) -> dict:
    """Hyper-parameter columns from ``params.json``; only the activation is required."""
    params = _read_json(file)
    if not isinstance(params, dict) or not isinstance(params.get("model::nlin"), str):
        raise WslError(f"{file}: key 'model::nlin' (the activation) is missing or not a string")
    hypers = {"activation": params["model::nlin"].lower()}
    hypers.update({col: params[key] for col, key in HYPERS.items() if key in params})
    return hypers


def _results(file: Path) -> dict[int, dict[str, float]]:
    """``training_iteration -> {train_loss, train_acc, test_loss, test_acc}`` from ``result.json``."""
    if not file.is_file():
        raise WslError(f"{file} is missing; every model folder needs params.json and result.json")
    results = {}
    for number, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            results[int(record["training_iteration"])] = {m: float(record[m]) for m in METRICS}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise WslError(f"{file} line {number}: not a result with training_iteration and {METRICS} ({e})") from None
    return results


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(N, checkpoint file)`` of ``checkpoint_<N>`` or ``checkpoint_<N:06d>``, by N."""
    found = []
    for p in folder.iterdir():
        match = CHECKPOINT_DIR.fullmatch(p.name)
        if match and p.is_dir():
            found.append((int(match.group(1)), p / "checkpoints"))
    return sorted(found)


def _params(file: Path) -> dict[str, Tensor]:
    """A public checkpoint's state dict under our names ``layers.<i>.weight`` / ``.bias``.

    Weight-carrying modules are ordered by their index in ``module_list``; the
    i-th of them becomes ``layers.<i>``.
    """
    try:
        state = torch.load(file, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise WslError(f"{file} is missing; each checkpoint_<N> folder needs its 'checkpoints' file") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise WslError(f"{file} is not a readable state dict ({e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WslError(f"{file} is not a state dict of tensors")
    modules = {}
    for key, value in state.items():
        prefix, _, kind = key.rpartition(".")
        index = prefix.rpartition(".")[2]
        if kind not in ("weight", "bias") or not index.isdigit():
            raise WslError(f"{file}: key {key!r} is not a module_list.<i>.weight/bias parameter")
        modules.setdefault(int(index), {})[kind] = value.to(torch.float32)
    params = {}
    for i, index in enumerate(sorted(modules)):
        if set(modules[index]) != {"weight", "bias"}:
            raise WslError(f"{file}: module {index} needs both a weight and a bias")
        params[f"layers.{i}.weight"] = modules[index]["weight"]
        params[f"layers.{i}.bias"] = modules[index]["bias"]
    return params


def _infer_arch(params: dict[str, Tensor], file: Path) -> Arch:
    """The ``Arch`` whose parameter shapes are those of ``params``.

    4-D weights are convs (padding 0, each followed by a 2x2 max-pool), 2-D ones
    linear layers. The last conv is pooled in CNN-l but not in CNN-s, and the
    input size is not stored: the first square size (28 and 32 tried first) and
    last-pool choice under which the convs flatten to the first linear layer's
    inputs wins.
    """
    weights = [tuple(w.shape) for k, w in params.items() if k.endswith("weight")]
    dims = [len(s) for s in weights]
    n_convs = dims.count(4)
    if dims != [4] * n_convs + [2] * (len(dims) - n_convs) or n_convs == len(dims):
        raise WslError(f"{file}: weight ranks {dims} are not convs (4-D) followed by linear layers (2-D)")
    linears = weights[n_convs:]
    hidden, classes = tuple(s[0] for s in linears[:-1]), linears[-1][0]
    if n_convs == 0:
        side = math.isqrt(linears[0][1])
        if side * side != linears[0][1]:
            raise WslError(f"{file}: an MLP with {linears[0][1]} inputs has no square input size")
        return Arch("mlp", (1, side, side), classes, (), hidden)
    for size in SIZES:
        for last_pool in (False, True):
            convs = tuple(Conv(s[0], s[-1], 0, i < n_convs - 1 or last_pool) for i, s in enumerate(weights[:n_convs]))
            arch = _try_arch((weights[0][1], size, size), classes, convs, hidden)
            if arch and arch.layers[n_convs].weight_shape == linears[0]:
                return arch
    raise WslError(
        f"{file}: no square input size in 4..128 makes the convs {weights[:n_convs]} "
        f"flatten to the {linears[0][1]} inputs of the first linear layer"
    )


def _try_arch(in_shape, classes, convs, hidden) -> Arch | None:
    try:
        return Arch("cnn", in_shape, classes, convs, hidden)
    except WslError:
        return None


def _check_shapes(params: dict[str, Tensor], arch: Arch, file: Path) -> None:
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    if shapes != arch.param_shapes:
        raise WslError(f"{file}: parameter shapes {list(shapes.values())} differ from the zoo's {arch}")
