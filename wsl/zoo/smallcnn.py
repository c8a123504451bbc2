"""Convert the Small CNN Zoo (Unterthiner et al. 2020, google-research ``dnn_predict_accuracy``) into a wsl zoo.

Each of its datasets is a folder of three files:

- ``weights.npy``: ``[rows, P]`` float32, one row per checkpoint, every
  parameter flattened (P = 4,970);
- ``metrics.csv.gz``: one row per checkpoint, same order: ``config.*``
  hyper-parameters, ``modeldir`` (the training run), ``step`` (the
  checkpoint's epoch: 0, 1, 2, 3, 20, 40, 60, 80, 86), train/test accuracy
  and loss; with or without a leading index column
  (``<modeldir>/permanent_ckpt-<epoch>``, as the paper's notebook reads it);
- ``layout.csv``: ``varname,start_idx,end_idx,shape``: where each Keras
  variable (``sequential/conv2d/kernel:0``, ...) sits in a row (read by
  ``wsl.zoo.smallcnn_layout``, which also makes the network of it).

The network is Conv2D(16, 3x3, stride 2, valid, activation) x 3,
GlobalAveragePooling2D, Dense(10) on one-channel images (28x28 for MNIST and
Fashion-MNIST, 32x32 for CIFAR-10 and SVHN in greyscale). Widths and kernel
sizes are read from ``layout.csv``; padding and the pooling are the zoo's
design, and its stride (``config.cnn_stride`` where the table has it) must
be 2. Keras keeps conv kernels ``[kh, kw, in, out]`` and dense kernels
``[in, out]``; wsl keeps ``[out, in, kh, kw]`` and ``[out, in]``.

A file holds up to 270,000 checkpoints (5.4 GB): a seeded subset of runs
(``max_models``) at chosen ``steps`` is imported in memory that grows with
what is written, not with the input. ``weights.npy`` is memory-mapped and
only the selected rows are read, one window of the file at a time, straight
into the output tensors; the pages read are handed back after each window.
"""

from __future__ import annotations

import mmap
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from wsl.errors import WslError
from wsl.zoo import smallcnn_layout as layout
from wsl.zoo.arch import ACTIVATIONS, Arch
from wsl.zoo.dataset_names import check_dataset, dataset_name
from wsl.zoo.importer import GIVEN, check_originals, given_task
from wsl.zoo.smallcnn_layout import STRIDE, Variable
from wsl.zoo.splits import assign_splits
from wsl.zoo.store import NONFINITE, Zoo, save_zoo
from wsl.zoo.tasks import Task

WEIGHTS, METRICS, LAYOUT = "weights.npy", "metrics.csv.gz", "layout.csv"
COLUMNS = {  # wsl column -> metrics.csv.gz column
    "epoch": "step",
    "activation": "config.activation",
    "train_acc": "train_accuracy",
    "test_acc": "test_accuracy",
    "train_loss": "train_loss",
    "test_loss": "test_loss",
    "source": "modeldir",
}
HYPERS = {"learning_rate": "lr", "l2reg": "wd", "w_init": "init"}  # config.<key> renamed; other keys stay <key>
IN_SIZES = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32, "svhn": 32}  # config.dataset -> input side
CHUNK_BYTES = 16 << 20  # bytes of weights.npy read at a time
CHECK_MODELS = 100  # models re-run on the task data (their last checkpoint): a seeded sample of larger zoos


def is_small_cnn_zoo(src) -> bool:
    """Whether ``src`` holds any of a Small CNN Zoo folder's three files (the importer names a missing one)."""
    return any((Path(src) / f).is_file() for f in (WEIGHTS, METRICS, LAYOUT))


def import_small_cnn_zoo(
    src,
    out,
    task: str | None = None,
    name: str | None = None,
    max_models: int | None = None,
    steps: Sequence[int] | None = None,
    seed: int = 0,
    nonfinite: str = "skip",
    task_data: Task | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the checkpoints of the Small CNN Zoo folder ``src`` as one zoo at ``out``.

    ``max_models``: keep that many training runs (``modeldir``), drawn with
    ``seed`` among those with a checkpoint at ``steps`` (None: all steps). Splits
    are by run, seeded with ``seed``. Rows with NaN/inf weights follow
    ``nonfinite`` (``skip`` with a warning, or ``fail``). ``task`` names the zoo's
    task (None: ``config.dataset``). ``task_data`` (images ``[N, 1, H, W]`` as the
    models saw them) is stored in the zoo and fixes the input size; a sample of
    the runs is re-run on its test set against the recorded ``test_accuracy``
    (``extra["task_check"]``), refusing data the models never saw. ``progress``
    is called with (rows read, rows to read) after each window. Any bad input
    raises a ``WslError`` naming the file before anything is written.
    """
    if nonfinite not in NONFINITE:
        raise WslError(f"nonfinite={nonfinite!r} is invalid: expected one of {', '.join(NONFINITE)}")
    src, out = Path(src), Path(out)
    if out.exists():
        raise WslError(f"zoo directory {out} exists already; choose another --out or delete it")
    _check_files(src)
    weights = _open_weights(src / WEIGHTS)
    variables = layout.read_layout(src / LAYOUT, weights.shape[1], src / WEIGHTS)
    layers = layout.layers(variables, src / LAYOUT)
    index = _read_index(src / METRICS, len(weights), src / WEIGHTS)
    rows = _select(index, max_models, steps, seed, src / METRICS)
    models = _read_metrics(src / METRICS, rows, index["model_id"].to_numpy()[rows])
    del index  # from here on memory holds the selected rows alone: it grows with what is written
    _check_activations(models, src / METRICS)
    _check_stride(models, src / METRICS)
    named = "dataset" in models.columns or task_data is None  # config.dataset names the task, else the data's identity
    task = task or (_dataset(models, src / METRICS) if named else task_data.name)
    arch = layout.arch(layers, _in_side(models, task_data, src / METRICS))
    if task_data is not None:
        task_data = _given(task_data, arch, task, models)
    params, finite = _gather(weights, rows, layout.slots(layers), arch, nonfinite, models, src / WEIGHTS, progress)
    models = models[finite].reset_index(drop=True)
    if models.empty:
        raise WslError(f"{src / WEIGHTS}: every selected row holds NaN/inf weights; nothing to import")
    models["split"] = models["model_id"].map(assign_splits(models["model_id"], seed=seed))
    selection = {"max_models": max_models, "steps": None if steps is None else sorted(map(int, steps)), "seed": seed}
    extra = {"source": str(src.resolve()), "importer": "small-cnn-zoo", "selection": selection}
    zoo = Zoo(None, name or src.name, task, arch, models, params, extra, task_data)
    if task_data is not None:
        zoo.extra["task_check"] = check_originals(_sample(zoo, seed), GIVEN)
    return save_zoo(out, zoo)


def _check_files(src: Path) -> None:
    if not src.is_dir():
        raise WslError(f"source zoo {src} does not exist or is not a directory")
    missing = [f for f in (WEIGHTS, METRICS, LAYOUT) if not (src / f).is_file()]
    if missing:
        raise WslError(
            f"{src / missing[0]} is missing; a Small CNN Zoo folder holds {WEIGHTS}, {METRICS} and {LAYOUT} "
            "(one folder per dataset of the zoo's download)"
        )


def _open_weights(file: Path) -> np.ndarray:
    """``weights.npy`` memory-mapped: ``[rows, P]`` floats, none read yet."""
    try:
        weights = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise WslError(f"{file} is not a readable .npy file ({e})") from None
    if weights.ndim != 2 or weights.dtype.kind != "f":
        raise WslError(f"{file} holds {weights.dtype} {list(weights.shape)}; expected floats [rows, parameters]")
    return weights


def _read_index(file: Path, rows: int, weights_file: Path) -> pd.DataFrame:
    """``model_id`` (the run, from ``modeldir``) and ``epoch`` (``step``) of every checkpoint: what selection reads.

    Only these two columns of every input row are held, so that memory grows
    with the rows kept, not with the file (270,000 rows in the real zoo).
    """
    needed = [COLUMNS["source"], COLUMNS["epoch"]]
    table = _csv(file, usecols=lambda column: column in needed)
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise WslError(f"{file}: column {missing[0]!r} is missing (needed: {', '.join(COLUMNS.values())})")
    if len(table) != rows:
        raise WslError(
            f"{file} has {len(table)} rows but {weights_file} has {rows}; they must describe the same checkpoints "
            "in the same order"
        )
    model_id = np.unique(table[COLUMNS["source"]].astype(str).to_numpy(), return_inverse=True)[1]
    return pd.DataFrame({"model_id": model_id, "epoch": _numbers(table[COLUMNS["epoch"]], file, integer=True)})


def _csv(file: Path, **options):
    try:
        return pd.read_csv(file, **options)
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise WslError(f"{file} is not a readable gzipped CSV file ({e})") from None


def _read_metrics(file: Path, rows: np.ndarray, model_id: np.ndarray) -> pd.DataFrame:
    """The checkpoints ``rows`` (sorted): ``model_id``, the ``COLUMNS`` and the hyper-parameters.

    The file is read in chunks, keeping only ``rows`` of each.
    """
    kept = [chunk.loc[chunk.index.intersection(rows)] for chunk in _csv(file, chunksize=20_000)]
    table = pd.concat(kept).reset_index(drop=True)
    if len(table.columns) and str(table.columns[0]).startswith("Unnamed: 0"):
        table = table.iloc[:, 1:]  # the index column: <modeldir>/permanent_ckpt-<epoch>, told by modeldir and step
    missing = [c for c in COLUMNS.values() if c not in table.columns]
    if missing:
        raise WslError(f"{file}: column {missing[0]!r} is missing (needed: {', '.join(COLUMNS.values())})")
    models = pd.DataFrame({col: table[key] for col, key in COLUMNS.items()})
    for col in ("epoch", "train_acc", "test_acc", "train_loss", "test_loss"):
        models[col] = _numbers(table[COLUMNS[col]], file, integer=col == "epoch")
    models["activation"] = models["activation"].astype(str).str.lower()
    models["source"] = models["source"].astype(str)
    models["model_id"] = model_id
    for column in table.columns:
        key = column.removeprefix("config.")
        if key != column and column != COLUMNS["activation"]:
            name = HYPERS.get(key, key)
            models[column if name in models.columns else name] = table[column].to_numpy()
    return models


def _numbers(column: pd.Series, file: Path, integer: bool) -> np.ndarray:
    """``column`` as float64 (empty cells NaN), or int64 with ``integer``; anything else is refused, naming it."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & column.notna().to_numpy()
    if integer:
        bad |= np.mod(values, 1) != 0  # NaN and inf too
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a number"
        raise WslError(f"{file}: column {column.name!r} holds {column.iloc[i]!r} at row {i}, expected {kind}")
    return values.astype(np.int64) if integer else values


def _select(metrics: pd.DataFrame, max_models: int | None, steps, seed: int, file: Path) -> np.ndarray:
    """Sorted indices of the rows to import: at ``steps``, of ``max_models`` runs drawn with ``seed``."""
    keep = np.ones(len(metrics), dtype=bool)
    if steps is not None:
        present = sorted(int(s) for s in metrics["epoch"].unique())
        absent = sorted(set(steps) - set(present))
        if not steps or absent:
            what = f"no checkpoint at step {absent[0]}" if absent else "no steps were asked for"
            raise WslError(f"{file}: {what}; its steps are {present}")
        keep &= metrics["epoch"].isin(steps).to_numpy()
    keep &= _reach_the_last(metrics, max(steps) if steps else int(metrics["epoch"].max()), file)
    if max_models is not None:
        if max_models < 1:
            raise WslError(f"max_models={max_models} is invalid: expected a positive number of runs")
        runs = np.unique(metrics["model_id"].to_numpy()[keep])
        chosen = np.random.default_rng(seed).choice(runs, min(max_models, len(runs)), replace=False)
        keep &= metrics["model_id"].isin(chosen).to_numpy()
    return np.flatnonzero(keep)


def _reach_the_last(metrics: pd.DataFrame, last: int, file: Path) -> np.ndarray:
    """[rows] whether a row's run has a checkpoint at ``last``, the zoo's last step: the reconstruction metrics
    judge every model there, and a run without it would drop out of them unseen. Those left out are counted."""
    reach = metrics["model_id"].isin(metrics.loc[metrics["epoch"] == last, "model_id"]).to_numpy()
    short = metrics.loc[~reach, "model_id"].nunique()
    if short:
        warnings.warn(f"{file}: left out {short} runs without a checkpoint at step {last}, the last", stacklevel=3)
    return reach


def _check_activations(models: pd.DataFrame, file: Path) -> None:
    unknown = sorted(set(models["activation"].unique()) - set(ACTIVATIONS))
    if unknown:
        raise WslError(
            f"{file}: config.activation {unknown[0]!r} is not an activation wsl knows ({', '.join(ACTIVATIONS)}); "
            "models using it cannot be run, so the zoo cannot be imported"
        )


def _check_stride(models: pd.DataFrame, file: Path) -> None:
    """The zoo's runs all used stride 2; a row that records another would run wrongly, so it is refused."""
    if "cnn_stride" not in models.columns:
        return
    other = sorted({int(s) for s in pd.to_numeric(models["cnn_stride"], errors="coerce").dropna()} - {STRIDE})
    if other:
        raise WslError(f"{file}: config.cnn_stride {other[0]} is not the zoo's stride {STRIDE}; wsl runs stride 2 only")


def _dataset(models: pd.DataFrame, file: Path) -> str:
    """The one ``config.dataset`` of the selected rows: the zoo's task name."""
    names = sorted(models["dataset"].astype(str).unique()) if "dataset" in models.columns else []
    if len(names) != 1:
        what = f"holds several datasets {names}" if names else "has no config.dataset column"
        raise WslError(f"{file} {what}; name the task (--task) and give its data (--data)")
    return names[0]


def _in_side(models: pd.DataFrame, task_data: Task | None, file: Path) -> int:
    """The input images' side: the task data's, else the one ``config.dataset`` implies (28 or 32)."""
    if task_data is not None:
        return task_data.in_shape[-1]
    dataset = _dataset(models, file)
    side = IN_SIZES.get(dataset_name(dataset) or "")
    if side is None:
        raise WslError(
            f"{file}: config.dataset {dataset!r} has no known input size (known: mnist, fashion_mnist, cifar10, "
            "svhn); give its data (--data), whose images tell it"
        )
    return side


def _given(task_data: Task, arch: Arch, task: str, models: pd.DataFrame) -> Task:
    """The task data the models run on, named ``task``; refused unless ``arch`` runs on it and it is their dataset."""
    if "dataset" in models.columns:
        for claimed in sorted(models["dataset"].astype(str).unique()):
            check_dataset(task_data.name, claimed, GIVEN)
    return given_task(task_data, arch, task)


def _gather(
    weights: np.ndarray,
    rows: np.ndarray,
    slots: dict[str, tuple[Variable, tuple[int, ...]]],
    arch: Arch,
    nonfinite: str,
    models: pd.DataFrame,
    file: Path,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, Tensor], np.ndarray]:
    """The selected ``rows`` of ``weights`` as wsl parameters ``name -> [kept, *shape]``, and which rows were kept.

    Rows are read window by window of the file (``CHUNK_BYTES`` each: the kernel
    maps more than the rows touched, so a sparse selection is bounded by the
    span read, not by its rows) and written straight into tensors sized for all
    of them; NaN/inf rows are left out (``skip``) or refused (``fail``).
    """
    params = {name: np.empty((len(rows), *shape), dtype=np.float32) for name, shape in arch.param_shapes.items()}
    finite = np.ones(len(rows), dtype=bool)
    window = max(1, CHUNK_BYTES // (weights.shape[1] * weights.itemsize))  # rows of the file
    bounds = [0, *(np.flatnonzero(np.diff(rows // window)) + 1), len(rows)]  # the selected rows of each window
    kept = 0
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        block = np.asarray(weights[rows[s:e]], dtype=np.float32)  # [n, P]: a copy of these rows only
        ok = finite[s:e] = np.isfinite(block).all(1)
        if not ok.all():
            if nonfinite == "fail":
                raise WslError(
                    f"{file}: {_where(rows, models, s + int(np.argmin(ok)))} holds NaN/inf weights; "
                    "import with nonfinite='skip' (--nonfinite skip) to leave such rows out"
                )
            block = block[ok]
        for name, (v, order) in slots.items():  # numpy: its strided copies run twice as fast as torch's here
            keras = block[:, v.start : v.end].reshape(len(block), *v.shape)
            params[name][kept : kept + len(block)] = keras.transpose(0, *(a + 1 for a in order))
        kept += len(block)
        _release(weights)
        if progress is not None:
            progress(e, len(rows))
    if not finite.all():
        warnings.warn(
            f"{file}: skipped {int((~finite).sum())} of {len(rows)} selected rows with NaN/inf weights, "
            f"e.g. {_where(rows, models, int(np.argmin(finite)))}",
            stacklevel=3,
        )
    return {name: torch.from_numpy(p[:kept]) for name, p in params.items()}, finite


def _where(rows: np.ndarray, models: pd.DataFrame, i: int) -> str:
    """The ``i``-th selected row, as a user finds it: its row in weights.npy, its run and step."""
    return f"row {rows[i]} ({models['source'].iloc[i]}, step {models['epoch'].iloc[i]})"


def _release(weights: np.ndarray) -> None:
    """Unmap the pages of ``weights.npy`` read so far (the page cache keeps them): this process's resident
    memory then grows with the rows written, not with the file's size."""
    weights._mmap.madvise(mmap.MADV_DONTNEED)


def _sample(zoo: Zoo, seed: int) -> Zoo:
    """``zoo`` cut to ``CHECK_MODELS`` runs drawn with ``seed`` when it has more: re-running all would take long."""
    runs = zoo.models["model_id"].unique()
    if len(runs) <= CHECK_MODELS:
        return zoo
    chosen = np.random.default_rng(seed).choice(runs, CHECK_MODELS, replace=False)
    return zoo.select(zoo.models["model_id"].isin(chosen).to_numpy())
