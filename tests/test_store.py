"""A zoo survives the disk exactly, is written all-or-nothing, and bad files are named."""

import json
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from wsl.errors import WslError
from wsl.zoo import Arch, Conv, cnn, mlp
from wsl.zoo.splits import assign_splits
from wsl.zoo.store import Zoo, load_zoo, save_zoo, summary
from wsl.zoo.tasks import Task

ARCHES = [
    mlp((1, 4, 4), 3, hidden=(5,)),
    mlp((1, 2, 2), 2, hidden=()),
    cnn((1, 8, 8), 10),
    Arch("cnn", (2, 6, 6), 4, (Conv(3, 3, 1, True),), ()),
]


def make_zoo(arch=ARCHES[0], n_models=4, epochs=(0, 5), seed=0, extra=None, name="tiny", task="digits") -> Zoo:
    """``n_models`` models x ``epochs`` checkpoints of random weights and metadata."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_models, dtype=np.int64), len(epochs))
    rows = len(ids)
    splits = assign_splits(range(n_models), seed=seed)
    models = pd.DataFrame(
        {
            "model_id": ids,
            "epoch": np.tile(np.asarray(epochs, dtype=np.int64), n_models),
            "split": [splits[i] for i in ids],
            "activation": rng.choice(["tanh", "relu", "gelu"], rows),
            "train_loss": rng.random(rows),
            "train_acc": rng.random(rows),
            "test_loss": rng.random(rows),
            "test_acc": rng.random(rows),
            "lr": rng.random(rows),
            "init": rng.choice(["uniform", "normal"], rows),
            "seed": ids * 7,
        }
    )
    gen = torch.Generator().manual_seed(seed)
    weights = {k: torch.randn((rows, *s), generator=gen) for k, s in arch.param_shapes.items()}
    return Zoo(None, name, task, arch, models, weights, extra or {"config": {"epochs": list(epochs)}})


def tiny_task(arch=ARCHES[0], sizes=(12, 5), seed=0, name="mnist") -> Task:
    """Random images ``[N, *arch.in_shape]`` and labels in ``[0, arch.num_classes)``: 12 train, 5 test."""
    gen = torch.Generator().manual_seed(seed)
    x = [torch.randn(n, *arch.in_shape, generator=gen) for n in sizes]
    y = [torch.randint(arch.num_classes, (n,), generator=gen) for n in sizes]
    return Task(name, x[0], y[0], x[1], y[1], arch.num_classes)


def assert_same(a: Zoo, b: Zoo) -> None:
    assert (a.name, a.task, a.arch, a.extra) == (b.name, b.task, b.arch, b.extra)
    pd.testing.assert_frame_equal(a.models, b.models)
    assert a.weights.keys() == b.weights.keys()
    for k in a.weights:
        assert torch.equal(a.weights[k], b.weights[k]), k
    assert (a.task_data is None) == (b.task_data is None)
    if a.task_data is not None:
        assert (a.task_data.name, a.task_data.num_classes) == (b.task_data.name, b.task_data.num_classes)
        for k in ("x_train", "y_train", "x_test", "y_test"):
            x, y = getattr(a.task_data, k), getattr(b.task_data, k)
            assert x.dtype == y.dtype and torch.equal(x, y), k


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_zoo(tmp_path / "zoo", make_zoo())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=15, deadline=None)
@given(
    arch=st.sampled_from(ARCHES),
    n_models=st.integers(1, 4),
    epochs=st.lists(st.integers(0, 50), min_size=1, max_size=3, unique=True),
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-20, 1e20),
    extra=st.dictionaries(st.text(), json_values, max_size=4),
    name=st.text(),
    task=st.text(),
)
def test_save_then_load_gives_back_the_same_zoo(arch, n_models, epochs, seed, scale, extra, name, task):
    zoo = make_zoo(arch, n_models, tuple(epochs), seed, extra, name, task)
    zoo.weights = {k: v * scale for k, v in zoo.weights.items()}
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_zoo(save_zoo(Path(tmp) / "zoo", zoo))
    assert_same(loaded, zoo)


def test_the_directory_holds_exactly_the_three_documented_files(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["models.parquet", "weights.safetensors", "zoo.json"]
    meta = json.loads((saved / "zoo.json").read_text())
    assert (meta["format"], meta["version"], meta["rows"]) == ("wsl-zoo", 1, 8)
    assert {k: tuple(v.shape) for k, v in load_file(saved / "weights.safetensors").items()} == {
        k: (8, *s) for k, s in ARCHES[0].param_shapes.items()
    }


def test_save_refuses_an_existing_path(tmp_path):
    (tmp_path / "zoo").mkdir()
    with pytest.raises(WslError, match="exists already"):
        save_zoo(tmp_path / "zoo", make_zoo())


def test_a_failed_save_leaves_no_trace(tmp_path):
    zoo = make_zoo()
    zoo.weights["layers.1.weight"] = torch.zeros(8, 3, 4)
    with pytest.raises(WslError, match="weights.safetensors.*layers.1.weight"):
        save_zoo(tmp_path / "zoo", zoo)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("column", ["test_acc", "train_acc"])
def test_a_checkpoint_without_a_finite_accuracy_is_refused_naming_it_and_nothing_is_written(tmp_path, column):
    """A source table's missing accuracy would make the probes raise at the end of a run, minutes later."""
    zoo = make_zoo()
    zoo.models.loc[3, column] = float("nan")
    model_id, epoch = zoo.models.loc[3, ["model_id", "epoch"]]
    with pytest.raises(
        WslError, match=f"{column} is not a finite number in 1 rows .first: model_id {model_id}, epoch {epoch}"
    ):
        save_zoo(tmp_path / "zoo", zoo)
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_extra_that_is_not_json(tmp_path):
    with pytest.raises(WslError, match="JSON"):
        save_zoo(tmp_path / "zoo", make_zoo(extra={"when": object()}))
    assert list(tmp_path.iterdir()) == []


def rewrite_json(path: Path, **changes) -> None:
    meta = json.loads((path / "zoo.json").read_text())
    (path / "zoo.json").write_text(json.dumps(meta | changes))


def rewrite_models(path: Path, change) -> None:
    models = pq.read_table(path / "models.parquet").to_pandas()
    pq.write_table(pa.Table.from_pandas(change(models), preserve_index=False), path / "models.parquet")


def rewrite_weights(path: Path, change) -> None:
    weights = load_file(path / "weights.safetensors")
    change(weights)
    save_file(weights, path / "weights.safetensors")


def mix_splits(models: pd.DataFrame) -> pd.DataFrame:
    first = models.index[models["model_id"] == 0]
    models.loc[first, "split"] = ["train", "test"]
    return models


CORRUPTIONS = {
    "zoo.json missing": ("zoo.json", lambda p: (p / "zoo.json").unlink()),
    "zoo.json not JSON": ("zoo.json", lambda p: (p / "zoo.json").write_text("{nope")),
    "wrong format": ("zoo.json", lambda p: rewrite_json(p, format="other")),
    "wrong version": ("zoo.json", lambda p: rewrite_json(p, version=99)),
    "unknown arch": ("zoo.json", lambda p: rewrite_json(p, arch={"family": "transformer", "in_shape": [1, 4, 4]})),
    "rows disagree": ("zoo.json", lambda p: rewrite_json(p, rows=3)),
    "parquet missing": ("models.parquet", lambda p: (p / "models.parquet").unlink()),
    "parquet corrupt": ("models.parquet", lambda p: (p / "models.parquet").write_bytes(b"not parquet at all")),
    "column missing": ("models.parquet", lambda p: rewrite_models(p, lambda m: m.drop(columns="test_acc"))),
    "unknown split": ("models.parquet", lambda p: rewrite_models(p, lambda m: m.assign(split="holdout"))),
    "model in two splits": ("models.parquet", lambda p: rewrite_models(p, mix_splits)),
    "weights missing": ("weights.safetensors", lambda p: (p / "weights.safetensors").unlink()),
    "weights corrupt": ("weights.safetensors", lambda p: (p / "weights.safetensors").write_bytes(b"\x08" * 20)),
    "tensor missing": ("weights.safetensors", lambda p: rewrite_weights(p, lambda w: w.pop("layers.0.bias"))),
    "extra tensor": ("weights.safetensors", lambda p: rewrite_weights(p, lambda w: w.update(junk=torch.zeros(8)))),
    "wrong shape": (
        "weights.safetensors",
        lambda p: rewrite_weights(p, lambda w: w.update({"layers.0.weight": torch.zeros(8, 5, 15)})),
    ),
    "wrong rows": (
        "weights.safetensors",
        lambda p: rewrite_weights(p, lambda w: w.update({k: v[:7].clone() for k, v in w.items()})),
    ),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_a_bad_zoo_is_refused_naming_the_file(saved, case):
    file, corrupt = CORRUPTIONS[case]
    corrupt(saved)
    with pytest.raises(WslError, match=file.replace(".", r"\.")):
        load_zoo(saved)


def test_a_missing_directory_is_refused_naming_it(tmp_path):
    with pytest.raises(WslError, match="nowhere.*does not exist"):
        load_zoo(tmp_path / "nowhere")


def test_an_unknown_nonfinite_policy_is_refused(saved):
    with pytest.raises(WslError, match="nonfinite='ignore'"):
        load_zoo(saved, nonfinite="ignore")


def poisoned(tmp_path) -> tuple[Zoo, Path]:
    """A zoo whose rows 1 (NaN) and 6 (inf) are broken."""
    zoo = make_zoo()
    zoo.weights["layers.0.bias"][1, 2] = float("nan")
    zoo.weights["layers.1.weight"][6, 0, 0] = float("inf")
    return zoo, save_zoo(tmp_path / "zoo", zoo)


def test_nonfinite_skip_drops_exactly_the_bad_rows_and_warns(tmp_path):
    zoo, path = poisoned(tmp_path)
    with pytest.warns(UserWarning, match=r"weights\.safetensors.*2 of 8 rows"):
        loaded = load_zoo(path, nonfinite="skip")
    keep = np.ones(8, dtype=bool)
    keep[[1, 6]] = False
    assert_same(loaded, zoo.select(keep))
    assert loaded.path == path


def test_nonfinite_fail_names_the_tensor_and_row(tmp_path):
    _, path = poisoned(tmp_path)
    with pytest.raises(WslError, match=r"weights\.safetensors.*'layers\.0\.bias'.*row 1 \(model_id 0, epoch 5\)"):
        load_zoo(path, nonfinite="fail")


def test_a_finite_zoo_loads_without_warnings(saved):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_zoo(saved)


@settings(max_examples=50, deadline=None)
@given(ids=st.lists(st.integers(-1000, 1000), unique=True, max_size=60), seed=st.integers(0, 2**32 - 1))
def test_splits_put_each_model_in_exactly_one_nonempty_split(ids, seed):
    splits = assign_splits(ids, seed=seed)
    assert sorted(splits) == sorted(ids)
    assert set(splits.values()) <= {"train", "val", "test"}
    if len(ids) >= 3:
        assert set(splits.values()) == {"train", "val", "test"}
    assert assign_splits(ids, seed=seed) == splits


def test_splits_follow_the_fractions():
    counts = pd.Series(assign_splits(range(100), (0.6, 0.3, 0.1))).value_counts()
    assert counts.to_dict() == {"train": 60, "val": 30, "test": 10}


def test_bad_split_fractions_are_refused():
    with pytest.raises(WslError, match="fractions"):
        assign_splits(range(5), (0.5, -0.1, 0.6))


def test_split_takes_whole_models_and_their_weights():
    zoo = make_zoo(n_models=6)
    for name in ("train", "val", "test"):
        part = zoo.split(name)
        rows = np.flatnonzero(zoo.models["split"] == name)
        assert (part.models["split"] == name).all()
        assert list(part.models.index) == list(range(len(rows)))
        assert torch.equal(part.weights["layers.0.weight"], zoo.weights["layers.0.weight"][rows])
    assert sum(len(zoo.split(s)) for s in ("train", "val", "test")) == len(zoo)


def test_select_accepts_numpy_pandas_and_torch_masks():
    zoo = make_zoo()
    mask = np.arange(len(zoo)) % 3 == 0
    for m in (mask, pd.Series(mask), torch.from_numpy(mask)):
        assert_same(zoo.select(m), zoo.select(mask))
    assert len(zoo.select(mask)) == 3


def test_select_refuses_a_mask_of_the_wrong_length():
    with pytest.raises(ValueError, match="boolean mask"):
        make_zoo().select(np.ones(3, dtype=bool))


def test_summary_reports_the_zoo_at_a_glance(saved):
    zoo = load_zoo(saved)
    s = summary(zoo)
    last = zoo.models[zoo.models["epoch"] == 5]["test_acc"]
    assert (s["name"], s["task"], s["arch"]) == ("tiny", "digits", "mlp")
    assert (s["models"], s["checkpoints"], s["epochs"]) == (4, 8, [0, 5])
    assert s["splits"] == {"train": 2, "val": 1, "test": 1}
    assert s["test_acc"]["min"] == last.min() and s["test_acc"]["max"] == last.max()
    assert s["test_acc"]["50%"] == pytest.approx(last.median())
    assert s["params_per_model"] == ARCHES[0].num_params
    assert s["bytes_on_disk"] == sum(f.stat().st_size for f in saved.iterdir())


# Task data carried by the zoo: task.safetensors.


def zoo_with_task(arch=ARCHES[0], **kwargs) -> Zoo:
    zoo = make_zoo(arch, task="mnist", **kwargs)
    zoo.task_data = tiny_task(arch)
    return zoo


@pytest.fixture
def saved_with_task(tmp_path) -> Path:
    return save_zoo(tmp_path / "zoo_with_task", zoo_with_task())


@pytest.mark.parametrize("arch", ARCHES)
def test_a_zoo_with_task_data_round_trips_exactly(tmp_path, arch):
    zoo = zoo_with_task(arch)
    loaded = load_zoo(save_zoo(tmp_path / "zoo", zoo))
    assert_same(loaded, zoo)
    assert_same(loaded.split("train"), zoo.split("train"))


def test_task_data_is_a_fourth_file_and_zoo_json_says_so(saved_with_task):
    names = sorted(p.name for p in saved_with_task.iterdir())
    assert names == ["models.parquet", "task.safetensors", "weights.safetensors", "zoo.json"]
    assert json.loads((saved_with_task / "zoo.json").read_text())["task_data"] is True
    assert {k: (v.dtype, tuple(v.shape)) for k, v in load_file(saved_with_task / "task.safetensors").items()} == {
        "x_train": (torch.float32, (12, 1, 4, 4)),
        "y_train": (torch.int64, (12,)),
        "x_test": (torch.float32, (5, 1, 4, 4)),
        "y_test": (torch.int64, (5,)),
    }


def rewrite_task(path: Path, change) -> None:
    tensors = load_file(path / "task.safetensors")
    change(tensors)
    save_file(tensors, path / "task.safetensors")


def poke(name: str, index: tuple, value) -> callable:
    def change(tensors):
        tensors[name][index] = value

    return change


TASK_CORRUPTIONS = {
    "NaN image": (poke("x_train", (3, 0, 1, 2), float("nan")), "'x_train' holds NaN/inf \\(image 3\\)"),
    "label too large": (poke("y_test", (2,), 3), "'y_test' holds label 3 at index 2, outside \\[0, 3\\)"),
    "negative label": (poke("y_train", (0,), -1), "'y_train' holds label -1 at index 0"),
    "wrong image shape": (
        lambda t: t.update(x_train=torch.zeros(12, 1, 5, 5)),
        "'x_train' has shape \\(12, 1, 5, 5\\), expected \\[N >= 1, 1, 4, 4\\]",
    ),
    "labels for other images": (lambda t: t.update(y_test=torch.zeros(4, dtype=torch.int64)), "'y_test' has shape"),
    "float labels": (lambda t: t.update(y_train=t["y_train"].double()), "'y_train' is torch.float64"),
    "tensor missing": (lambda t: t.pop("x_test"), "'x_test' is missing"),
    "tensor unknown": (lambda t: t.update(x_val=torch.zeros(2, 1, 4, 4)), "'x_val' is unknown"),
}


@pytest.mark.parametrize("case", TASK_CORRUPTIONS)
def test_bad_task_data_is_refused_naming_task_safetensors(saved_with_task, case):
    change, message = TASK_CORRUPTIONS[case]
    rewrite_task(saved_with_task, change)
    with pytest.raises(WslError, match=r"task\.safetensors: .*" + message):
        load_zoo(saved_with_task)


def test_missing_or_corrupt_task_data_is_refused(saved_with_task):
    (saved_with_task / "task.safetensors").write_bytes(b"\x08" * 20)
    with pytest.raises(WslError, match=r"task\.safetensors is not a readable safetensors file"):
        load_zoo(saved_with_task)
    (saved_with_task / "task.safetensors").unlink()
    with pytest.raises(WslError, match=r"task\.safetensors is missing but zoo\.json says"):
        load_zoo(saved_with_task)


def test_saving_bad_task_data_leaves_no_trace(tmp_path):
    zoo = zoo_with_task()
    zoo.task_data.x_test[0, 0, 0, 0] = float("inf")
    with pytest.raises(WslError, match=r"task\.safetensors: tensor 'x_test' holds NaN/inf"):
        save_zoo(tmp_path / "zoo", zoo)
    zoo.task_data = tiny_task(mlp((1, 4, 4), 5, hidden=(5,)))
    with pytest.raises(WslError, match="the task has 5 classes but the zoo's architecture 3"):
        save_zoo(tmp_path / "zoo", zoo)
    assert list(tmp_path.iterdir()) == []


def test_summary_says_where_the_task_data_comes_from(saved, saved_with_task):
    assert summary(load_zoo(saved))["task_data"] == "shipped task 'digits'"
    assert summary(load_zoo(saved_with_task))["task_data"] == "in the zoo: 12 train, 5 test images"
    assert summary(make_zoo(task="mnist"))["task_data"] == "none: task 'mnist' does not ship with wsl"


# How a zoo travels to a sweep's trials: pickled with numpy arrays, which Ray's object store shares.


def test_a_pickled_zoo_with_task_data_comes_back_the_same():
    zoo = zoo_with_task()
    back = pickle.loads(pickle.dumps(zoo, protocol=5))
    assert_same(back, zoo)
    assert back.path == zoo.path and back.extra == zoo.extra


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_ray_workers_see_the_zoo_and_its_task_data_in_the_shared_object_store_not_a_copy(monkeypatch, tmp_path):
    """Every trial on a node views one copy of the weights and images (Ray's plasma store, a shared file
    mapping), where pickled torch tensors would be unpickled onto each worker's own heap."""
    ray = pytest.importorskip("ray")
    from ray._private.authentication_test_utils import reset_auth_token_state

    @ray.remote
    def mappings(zoo: Zoo) -> list[str]:
        """The line of the worker's /proc/self/maps that holds each tensor's memory."""
        lines = Path("/proc/self/maps").read_text().splitlines()
        tensors = [*zoo.weights.values(), zoo.task_data.x_train, zoo.task_data.x_test]
        ranges = [(line, *(int(bound, 16) for bound in line.split()[0].split("-"))) for line in lines]
        return [next(line for line, low, high in ranges if low <= t.data_ptr() < high) for t in tensors]

    monkeypatch.setenv("RAY_ADDRESS", "")
    monkeypatch.setenv("HOME", str(tmp_path))  # the local Ray writes its auth token there
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        seen = ray.get(mappings.remote(ray.put(zoo_with_task(n_models=64))))
    finally:
        ray.shutdown()
        reset_auth_token_state()
    assert all("plasma" in line and line.split()[1].endswith("s") for line in seen), seen
