"""Convert a zoo in the public model-zoo layout (modelzoos.cc) into a wsl zoo.

The public zoos are Ray Tune experiment folders: one folder per model with
``params.json`` (flat config), ``result.json`` (one JSON line per epoch) and
``checkpoint_<N>/checkpoints`` (a ``torch.save``d state dict whose modules sit in
``module_list``, with pooling, activation and dropout modules taking indices
between the weight layers). The input size is not stored anywhere, so the
architecture is inferred from the first checkpoint's shapes and the zoos'
conventions (padding 0, a 2x2 max-pool after each conv, except after the
last one in CNN-s).

A zoo root may also ship ``dataset.pt``: the task's data exactly as the models
saw it, a ``torch.save``d dict of ``TensorDataset``s (``trainset``, ``valset``,
``testset``) and ``dataset_seed``. It becomes the zoo's task data, and every
model's last checkpoint is re-run on its test set against the ``test_acc``
that ``result.json`` recorded, so images transposed or scaled otherwise than
the models saw them are caught before anything is written. A root without
``dataset.pt`` can be given its task data instead (``task_data``, e.g. read
from the standard dataset's own files by ``wsl.zoo.datasets.read_dataset``),
re-checked the same way.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from wsl.errors import WslError
from wsl.metrics import WORKING_ACC
from wsl.zoo.arch import Arch, Conv, forward
from wsl.zoo.splits import assign_splits
from wsl.zoo.store import NONFINITE, Zoo, check_task, save_zoo
from wsl.zoo.tasks import Task

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
DATASET = "dataset.pt"
# Beyond tensors and plain containers, a torch.save'd dict of TensorDatasets needs exactly this class
# (torch.serialization.get_unsafe_globals_in_checkpoint lists nothing else); dataset.pt may hold no other.
DATASET_CLASSES = (TensorDataset,)
NEAR_CHANCE = 1.5  # working models re-run below NEAR_CHANCE / classes on average: the data is not theirs
GIVEN = "the task data given (--data)"  # how messages name task data passed in rather than read from dataset.pt


def import_public_zoo(
    src: Path,
    out: Path,
    task: str = "unknown",
    name: str | None = None,
    nonfinite: str = "skip",
    split_seed: int = 0,
    task_data: Task | None = None,
) -> Path:
    """Read every model folder under ``src`` and write them as one zoo at ``out``.

    Checkpoints without a matching ``result.json`` line are skipped with a
    warning; NaN/inf checkpoints follow ``nonfinite`` (``skip`` or ``fail``).
    Splits are assigned by model with ``split_seed``. With ``src/dataset.pt``
    the zoo carries its task data (see ``_task_data``) and ``extra["task_check"]``
    records how well the originals' re-run test accuracies match the recorded
    ones (``check_originals``, which refuses data the models never saw).
    ``task_data`` (images ``[N, C, H, W]`` float32 exactly as the models saw
    them) stands in for a missing ``dataset.pt`` and is checked the same way;
    a root with ``dataset.pt`` refuses it.
    """
    if nonfinite not in NONFINITE:
        raise WslError(f"nonfinite={nonfinite!r} is invalid: expected one of {', '.join(NONFINITE)}")
    src, out = Path(src), Path(out)
    if out.exists():
        raise WslError(f"zoo directory {out} exists already; choose another --out or delete it")
    if task_data is not None and (src / DATASET).is_file():
        raise WslError(
            f"{src} ships its task data in {DATASET}, and task data was given too (--data); "
            f"drop --data to use {DATASET}, or import from a copy without it"
        )
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
    if task_data is not None:
        data, source = given_task(task_data, arch, task), GIVEN
    else:
        data, source = _task_data(src / DATASET, arch, task), src / DATASET
    zoo = Zoo(None, name or src.name, task, arch, models, weights, extra, data)
    if zoo.task_data is not None:
        zoo.extra["task_check"] = check_originals(zoo, source)
    return save_zoo(out, zoo)


def given_task(task_data: Task, arch: Arch, task: str) -> Task:
    """Task data passed in, named ``task`` and with ``arch``'s classes; refused unless ``arch`` runs on it."""
    out = replace(task_data, name=task, num_classes=arch.num_classes)
    check_task(out, arch, GIVEN)
    return out


def _task_data(file: Path, arch: Arch, task: str) -> Task | None:
    """The task data in ``dataset.pt`` (None without one): train = ``trainset``, test = ``testset``.

    ``valset`` is left out: the models never trained on it, and what wsl reads
    as ``x_train`` (behavioral probes) should be the inputs the models learned from.
    """
    if not file.is_file():
        return None
    data = _load_dataset(file)
    missing = [k for k in ("trainset", "testset") if not isinstance(data, dict) or k not in data]
    if missing:
        raise WslError(
            f"{file}: key {missing[0]!r} is missing; expected a dict with trainset, valset and testset "
            "(TensorDatasets of images and labels) and dataset_seed"
        )
    x_train, y_train = _images_and_labels(data["trainset"], "trainset", arch, file)
    x_test, y_test = _images_and_labels(data["testset"], "testset", arch, file)
    out = Task(task, x_train, y_train, x_test, y_test, arch.num_classes)
    check_task(out, arch, file)
    return out


def _load_dataset(file: Path):
    """``dataset.pt`` unpickled with ``weights_only=True``, allowing no class but ``DATASET_CLASSES``."""
    with torch.serialization.safe_globals(list(DATASET_CLASSES)):
        try:
            return torch.load(file, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as e:
            allowed = ", ".join(c.__name__ for c in DATASET_CLASSES)
            raise WslError(
                f"{file} is refused: it needs {_refused(e)}, and wsl unpickles no class but {allowed}; "
                "save the data as a dict of TensorDatasets"
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError) as e:
            raise WslError(f"{file} is not a readable torch.save file ({e})") from None


def _refused(error: pickle.UnpicklingError) -> str:
    """What the weights-only unpickler refused: ``class <module.Name>``, else its own words."""
    text = str(error)
    found = re.search(r"GLOBAL (\S+) was not an allowed global", text)
    if found:
        return f"class {found.group(1)}"
    return text.rpartition("WeightsUnpickler error: ")[2].splitlines()[0]


def _images_and_labels(dataset, key: str, arch: Arch, file: Path) -> tuple[Tensor, Tensor]:
    """Images ``[N, C, H, W]`` float32 fitting ``arch`` and labels ``[N]`` int64 of one ``TensorDataset``."""
    if not isinstance(dataset, TensorDataset) or len(dataset.tensors) != 2:
        what = f"a TensorDataset of {len(dataset.tensors)} tensors" if isinstance(dataset, TensorDataset) else None
        raise WslError(f"{file}: {key} is {what or type(dataset).__name__}, expected a TensorDataset (images, labels)")
    x, y = dataset.tensors
    if not x.is_floating_point():
        raise WslError(f"{file}: {key} images are {x.dtype}; expected the preprocessed float images the models saw")
    if x.ndim != 4 or tuple(x.shape[1:]) != arch.in_shape:
        c, h, w = arch.in_shape
        raise WslError(
            f"{file}: {key} images have shape {tuple(x.shape)}, but the architecture inferred from the "
            f"checkpoints reads [N, {c}, {h}, {w}]; is this the zoo's dataset?"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise WslError(f"{file}: {key} labels are {y.dtype}; expected integer class indices")
    return x.to(torch.float32), y.to(torch.int64)


def check_originals(zoo: Zoo, file: Path) -> dict:
    """Re-run each model's last checkpoint on the zoo's test set; compare with the ``test_acc`` it recorded.

    Returns ``models``, ``largest_abs_diff`` and ``mean_abs_diff`` (of re-run minus
    recorded accuracy). Raises, naming ``file``, when the models recorded as
    working (``test_acc >= WORKING_ACC``) land near chance on average: the images
    are not what the models saw (transposed, scaled otherwise, another dataset).
    """
    last = np.array(zoo.models.groupby("model_id")["epoch"].idxmax(), dtype=np.int64)
    recorded = zoo.models["test_acc"].to_numpy()[last]
    params = {k: v[last] for k, v in zoo.weights.items()}
    rerun = _test_accuracy(zoo.arch, params, zoo.models["activation"].to_numpy()[last], zoo.task_data)
    working = recorded >= WORKING_ACC
    chance = 1 / zoo.arch.num_classes
    if working.any() and rerun[working].mean() < NEAR_CHANCE * chance:
        raise WslError(
            f"{file}: the {int(working.sum())} models recorded as working (mean test_acc "
            f"{recorded[working].mean():.3f}) reach {rerun[working].mean():.3f} on its testset, near chance "
            f"({chance:.3f}): its images are not what the models saw (transposed? scaled otherwise? "
            "another dataset?); nothing was written"
        )
    if not working.any():
        warnings.warn(
            f"{file}: no model was recorded as working (test_acc >= {WORKING_ACC}), so the check cannot tell whether "
            "the data is theirs; read the largest difference of re-run and recorded accuracy in the summary",
            stacklevel=3,
        )
    diff = np.abs(rerun - recorded)
    return {"models": len(last), "largest_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}


@torch.no_grad()
def _test_accuracy(
    arch: Arch, params: dict[str, Tensor], activations: np.ndarray, task: Task, chunk: int = 32, batch: int = 256
) -> np.ndarray:
    """Test accuracy ``[M]`` of M models (``params``: name -> ``[M, *shape]``).

    ``chunk`` models x ``batch`` images at a time: memory stays bounded for
    zoos of thousands of models and tens of thousands of test images.
    """
    accs = []
    for s in range(0, len(activations), chunk):
        part = {k: v[s : s + chunk] for k, v in params.items()}
        acts = list(activations[s : s + chunk])
        correct = sum(
            (forward(arch, part, task.x_test[b : b + batch], acts).argmax(-1) == task.y_test[b : b + batch]).sum(1)
            for b in range(0, len(task.x_test), batch)
        )
        accs.append(correct.double() / len(task.x_test))
    return torch.cat(accs).numpy()


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
