"""The Small CNN Zoo format imports into the same networks, built here from trained torch.nn models.

The fixture writes what the zoo's download holds (weights.npy, metrics.csv.gz,
layout.csv) from torch.nn networks trained on 28x28 digits, exported to the
Keras layouts (conv kernels [kh, kw, in, out], dense kernels [in, out]) by
code of its own, with the accuracies the networks really reached.
"""

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wsl.augment import permute_neurons
from wsl.cli import main
from wsl.errors import WslError
from wsl.tokens import ROW, detokenize, layout, tokenize
from wsl.zoo import Arch, Conv, as_module, forward, load_zoo, smallcnn_layout
from wsl.zoo.smallcnn import import_small_cnn_zoo
from wsl.zoo.tasks import Task, load_task

ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh}
KERAS = {  # Keras variable -> (index of its module in small_cnn()'s Sequential, torch parameter)
    "sequential/conv2d/kernel:0": (0, "weight"),
    "sequential/conv2d/bias:0": (0, "bias"),
    "sequential/conv2d_1/kernel:0": (2, "weight"),
    "sequential/conv2d_1/bias:0": (2, "bias"),
    "sequential/conv2d_2/kernel:0": (4, "weight"),
    "sequential/conv2d_2/bias:0": (4, "bias"),
    "sequential/dense/kernel:0": (8, "weight"),
    "sequential/dense/bias:0": (8, "bias"),
}
ORDER = sorted(KERAS)  # alphabetical, as the zoo's layout.csv: each layer's bias before its kernel
ARCH = Arch("cnn", (1, 28, 28), 10, tuple(Conv(16, 3, 0, False, 2) for _ in range(3)), (), True)
TRAINED = [("relu", 2e-2), ("tanh", 2e-2), ("relu", 1e-2), ("tanh", 3e-2)]  # (config.activation, learning rate)
STEPS = (0, 1, 2, 3)  # epochs with a checkpoint (step 0: the initialisation)


def small_cnn(act: str) -> nn.Sequential:
    """Conv2D(16, 3, strides=2, valid) x 3, GlobalAveragePooling2D, Dense(10), written with torch.nn."""
    a = ACTS[act]
    convs = [nn.Conv2d(1, 16, 3, stride=2), a(), nn.Conv2d(16, 16, 3, stride=2), a(), nn.Conv2d(16, 16, 3, stride=2)]
    return nn.Sequential(*convs, a(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def keras_values(net: nn.Sequential) -> dict[str, np.ndarray]:
    """Each Keras variable's value: conv [out, in, kh, kw] -> [kh, kw, in, out], dense [out, in] -> [in, out]."""
    out = {}
    for name, (module, kind) in KERAS.items():
        value = getattr(net[module], kind).detach()
        if kind == "weight":
            value = value.permute(2, 3, 1, 0) if value.dim() == 4 else value.T
        out[name] = value.numpy().astype(np.float32)
    return out


def write_format(folder: Path, checkpoints: list[dict], order=ORDER, index: bool = True) -> Path:
    """The three files of one dataset of the zoo, one row per checkpoint.

    ``checkpoints``: dicts with ``values`` (``keras_values``), ``modeldir``, ``step``,
    the ``config.*`` keys and the four metrics; ``order`` is where the variables sit
    in a row; ``index`` writes the leading ``<modeldir>/permanent_ckpt-<step>`` column.
    """
    folder.mkdir(parents=True)
    shapes = [checkpoints[0]["values"][name].shape for name in order]
    ends = np.cumsum([int(np.prod(s)) for s in shapes])
    starts = ends - [int(np.prod(s)) for s in shapes]
    layout_rows = {"varname": order, "start_idx": starts, "end_idx": ends, "shape": [str(tuple(s)) for s in shapes]}
    pd.DataFrame(layout_rows).to_csv(folder / "layout.csv", index=False)
    weights = np.stack([np.concatenate([c["values"][n].ravel() for n in order]) for c in checkpoints])
    np.save(folder / "weights.npy", weights)
    metrics = pd.DataFrame([{k: v for k, v in c.items() if k != "values"} for c in checkpoints])
    metrics = metrics[sorted(metrics.columns)]  # config.*, modeldir, step, test_*, train_*: the zoo's order
    metrics.index = [f"{c['modeldir']}/permanent_ckpt-{c['step']}" for c in checkpoints]
    metrics.to_csv(folder / "metrics.csv.gz", index=index)
    return folder


def config(act: str, lr: float, run: int) -> dict:
    return {
        "config.activation": act,
        "config.b_init": "zeros",
        "config.dataset": "mnist",
        "config.dropout": 0.0 if run % 2 else 0.05,
        "config.init_std": 0.1,
        "config.l2reg": 1e-4 * run,
        "config.learning_rate": lr,
        "config.optimizer": "adam",
        "config.train_fraction": 1.0,
        "config.w_init": "he_normal" if run % 2 else "glorot_uniform",
    }


def digits28() -> Task:
    """The shipped digits upsampled to the zoo's 28x28 input."""
    t = load_task("digits")
    up = lambda x: F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)  # noqa: E731
    return Task("digits28", up(t.x_train), t.y_train, up(t.x_test), t.y_test, 10)


@torch.no_grad()
def measure(net: nn.Module, task: Task) -> dict[str, float]:
    out = {}
    for part in ("train", "test"):
        x, y = getattr(task, f"x_{part}"), getattr(task, f"y_{part}")
        logits = net(x)
        out[f"{part}_accuracy"] = float((logits.argmax(1) == y).double().mean())
        out[f"{part}_loss"] = float(F.cross_entropy(logits, y))
    return out


def train_run(run: int, act: str, lr: float, task: Task) -> list[dict]:
    """One run trained with Adam for max(STEPS) epochs; a checkpoint (values and metrics) at each of STEPS."""
    torch.manual_seed(run)
    net, gen = small_cnn(act), torch.Generator().manual_seed(run)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    checkpoints = []
    for epoch in range(max(STEPS) + 1):
        if epoch in STEPS:
            modeldir = f"/tmp/zoo/mnist/{run:05d}-{act}"
            checkpoints.append(
                {"values": keras_values(net), "modeldir": modeldir, "step": epoch, **config(act, lr, run)}
            )
            checkpoints[-1].update(measure(net, task))
        for batch in torch.randperm(len(task.x_train), generator=gen).split(128):
            loss = F.cross_entropy(net(task.x_train[batch]), task.y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return checkpoints


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[list[dict], Task]:
    """4 runs trained 3 epochs on 28x28 digits (about 3 s), checkpoints at STEPS: 16 rows."""
    task, threads = digits28(), torch.get_num_threads()
    torch.set_num_threads(1)  # networks this small train several times faster on one thread
    try:
        checkpoints = [c for run, (act, lr) in enumerate(TRAINED) for c in train_run(run, act, lr, task)]
    finally:
        torch.set_num_threads(threads)
    return checkpoints, task


@pytest.fixture(scope="session")
def source(trained, tmp_path_factory) -> Path:
    return write_format(tmp_path_factory.mktemp("smallcnn") / "mnist", trained[0])


@pytest.fixture(scope="session")
def imported(trained, source, tmp_path_factory):
    return load_zoo(import_small_cnn_zoo(source, tmp_path_factory.mktemp("out") / "zoo", task_data=trained[1]))


@torch.no_grad()
def test_accuracies(zoo, task: Task) -> np.ndarray:
    logits = forward(zoo.arch, zoo.weights, task.x_test, list(zoo.models["activation"]))
    return (logits.argmax(-1) == task.y_test).double().mean(1).numpy()


test_accuracies.__test__ = False  # a helper, not a test


def test_the_fixture_models_learned(trained):
    final = [c["test_accuracy"] for c in trained[0] if c["step"] == max(STEPS)]
    assert min(final) > 0.6 and max(final) > 0.75


def test_the_imported_originals_reach_their_recorded_test_accuracy(trained, imported):
    reached = test_accuracies(imported, trained[1])
    one_image = 1 / len(trained[1].x_test)
    assert np.abs(reached - imported.models["test_acc"].to_numpy()).max() <= one_image + 1e-9
    assert imported.extra["task_check"]["models"] == len(TRAINED)
    assert imported.extra["task_check"]["largest_abs_diff"] <= one_image + 1e-9


def test_a_kernel_read_with_kh_and_kw_swapped_would_be_caught(trained, source, tmp_path, monkeypatch):
    monkeypatch.setattr(smallcnn_layout, "_to_wsl", lambda rank: (3, 2, 1, 0) if rank == 4 else (1, 0))
    zoo = load_zoo(import_small_cnn_zoo(source, tmp_path / "zoo"))
    trained_rows = (zoo.models["epoch"] == max(STEPS)).to_numpy()
    drop = zoo.models["test_acc"].to_numpy() - test_accuracies(zoo, trained[1])
    assert drop[trained_rows].min() > 0.3  # the trained runs fall to near chance


def test_the_weights_are_the_torch_parameters_in_wsl_layout(trained, imported):
    for row, c in enumerate(trained[0]):
        for i, conv in enumerate(("conv2d", "conv2d_1", "conv2d_2")):
            kernel = torch.from_numpy(c["values"][f"sequential/{conv}/kernel:0"])
            assert torch.equal(imported.weights[f"layers.{i}.weight"][row], kernel.permute(3, 2, 0, 1))
            assert torch.equal(
                imported.weights[f"layers.{i}.bias"][row], torch.from_numpy(c["values"][f"sequential/{conv}/bias:0"])
            )
        dense = torch.from_numpy(c["values"]["sequential/dense/kernel:0"])
        assert torch.equal(imported.weights["layers.3.weight"][row], dense.T)


def test_the_architecture_and_the_task_data(trained, imported):
    assert imported.arch == ARCH and imported.arch.num_params == 4970
    assert (imported.task, imported.task_data.name) == ("mnist", "mnist")  # config.dataset names the task
    assert torch.equal(imported.task_data.x_test, trained[1].x_test)


def test_hyper_parameters_metrics_and_runs_fill_the_columns(trained, imported):
    models = imported.models
    assert sorted(zip(models["model_id"], models["epoch"], strict=True)) == [(m, s) for m in range(4) for s in STEPS]
    row = models.set_index(["model_id", "epoch"]).loc[(1, 2)]
    c = next(c for c in trained[0] if c["modeldir"].endswith("00001-tanh") and c["step"] == 2)
    assert (row["activation"], row["lr"], row["wd"], row["init"]) == ("tanh", 2e-2, 1e-4, "he_normal")
    assert (row["optimizer"], row["dropout"], row["dataset"], row["b_init"]) == ("adam", 0.0, "mnist", "zeros")
    assert (row["init_std"], row["train_fraction"], row["source"]) == (0.1, 1.0, c["modeldir"])
    assert (row["train_acc"], row["test_acc"], row["train_loss"], row["test_loss"]) == pytest.approx(
        (c["train_accuracy"], c["test_accuracy"], c["train_loss"], c["test_loss"])
    )
    assert (models.groupby("model_id")["split"].nunique() == 1).all()
    assert imported.extra["importer"] == "small-cnn-zoo"


def test_metrics_without_the_index_column_import_the_same(trained, imported, tmp_path):
    src = write_format(tmp_path / "mnist", trained[0], index=False)
    with gzip.open(src / "metrics.csv.gz", "rt") as f:
        assert f.readline().startswith("config.activation,")
    zoo = load_zoo(import_small_cnn_zoo(src, tmp_path / "zoo", task_data=trained[1]))
    pd.testing.assert_frame_equal(zoo.models, imported.models)


def test_the_variables_order_is_read_from_the_layout(trained, imported, tmp_path):
    shuffled = [ORDER[i] for i in np.random.default_rng(0).permutation(len(ORDER))]
    zoo = load_zoo(import_small_cnn_zoo(write_format(tmp_path / "mnist", trained[0], order=shuffled), tmp_path / "zoo"))
    assert all(torch.equal(zoo.weights[k], imported.weights[k]) for k in ARCH.param_shapes)


@pytest.mark.parametrize("width", [1, 7, 64, ROW])
def test_tokens_round_trip_exactly(imported, width):
    lay = layout(imported.arch, width)
    back = detokenize(tokenize(imported.weights, lay), lay)
    assert all(torch.equal(back[k], imported.weights[k]) for k in ARCH.param_shapes)


def test_permuted_hidden_units_compute_the_same_through_the_global_pool(trained, imported):
    views = permute_neurons(imported.arch, imported.weights, torch.Generator().manual_seed(0))
    assert not torch.equal(views["layers.3.weight"], imported.weights["layers.3.weight"])
    acts = list(imported.models["activation"])
    x = trained[1].x_test[:32]
    before, after = forward(ARCH, imported.weights, x, acts), forward(ARCH, views, x, acts)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


# Selection, bad input and the command line, on untrained networks (no training needed).

RUNS = 10


def random_checkpoints(runs: int = RUNS, steps=(0, 1, 20, 86), acts=("relu", "tanh")) -> list[dict]:
    torch.manual_seed(0)
    metrics = {"test_accuracy": 0.5, "test_loss": 1.0, "train_accuracy": 0.6, "train_loss": 0.9}
    return [
        {
            "values": keras_values(small_cnn("relu")),
            "modeldir": f"run{r}",
            "step": s,
            **config(acts[r % len(acts)], 0.1, r),
            **metrics,
        }
        for r in range(runs)
        for s in steps
    ]


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    return write_format(tmp_path_factory.mktemp("untrained") / "zoo", random_checkpoints())


def runs_and_steps(zoo) -> tuple[set[str], set[int]]:
    return set(zoo.models["source"]), set(zoo.models["epoch"])


def test_max_models_keeps_whole_runs_drawn_with_the_seed(untrained, tmp_path):
    picked = {}
    for seed in (0, 0, 1):
        out = tmp_path / f"zoo{len(picked)}-{seed}"
        zoo = load_zoo(import_small_cnn_zoo(untrained, out, max_models=3, seed=seed))
        assert zoo.models.groupby("source").size().tolist() == [4, 4, 4]
        picked.setdefault(seed, []).append(runs_and_steps(zoo)[0])
    assert picked[0][0] == picked[0][1] != picked[1][0]


def test_steps_keep_those_checkpoints_and_progress_reports_them(untrained, tmp_path):
    seen = []
    path = import_small_cnn_zoo(untrained, tmp_path / "zoo", steps=[86, 0], progress=lambda d, t: seen.append((d, t)))
    zoo = load_zoo(path)
    assert runs_and_steps(zoo) == ({f"run{r}" for r in range(RUNS)}, {0, 86})
    assert seen[-1] == (2 * RUNS, 2 * RUNS)
    assert zoo.extra["selection"] == {"max_models": None, "steps": [0, 86], "seed": 0}


def test_a_step_the_zoo_lacks_is_refused(untrained, tmp_path):
    with pytest.raises(WslError, match=r"metrics\.csv\.gz: no checkpoint at step 5; its steps are \[0, 1, 20, 86\]"):
        import_small_cnn_zoo(untrained, tmp_path / "zoo", steps=[0, 5])
    assert not (tmp_path / "zoo").exists()


def test_without_task_data_the_input_size_comes_from_the_dataset(untrained, tmp_path):
    zoo = load_zoo(import_small_cnn_zoo(untrained, tmp_path / "zoo", max_models=1))
    assert (zoo.arch, zoo.task, zoo.task_data) == (ARCH, "mnist", None)


def corrupt(untrained: Path, dst: Path, file: str, edit) -> Path:
    """A copy of ``untrained`` whose ``file`` is replaced by ``edit(dst / file)``'s writing."""
    dst.mkdir()
    for f in untrained.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    edit(dst / file)
    return dst


def edit_csv(change):
    def edit(file: Path):
        change(pd.read_csv(file)).to_csv(file, index=False)

    return edit


def drop_row(table: pd.DataFrame) -> pd.DataFrame:
    return table.iloc[:-1]


def shift_end(table: pd.DataFrame) -> pd.DataFrame:
    table.loc[table.index[-1], "end_idx"] += 1
    return table


def chain_broken(table: pd.DataFrame) -> pd.DataFrame:  # (3, 3, 8, 32) holds as many values as (3, 3, 16, 16)
    table.loc[table["varname"] == "sequential/conv2d_1/kernel:0", "shape"] = "(3, 3, 8, 32)"
    return table


def unknown_activation(table: pd.DataFrame) -> pd.DataFrame:
    table.loc[5, "config.activation"] = "swish"
    return table


BAD = {
    "missing weights": ("weights.npy", lambda f: f.unlink(), r"weights\.npy is missing"),
    "missing metrics": ("metrics.csv.gz", lambda f: f.unlink(), r"metrics\.csv\.gz is missing"),
    "missing layout": ("layout.csv", lambda f: f.unlink(), r"layout\.csv is missing"),
    "short layout": (
        "layout.csv",
        edit_csv(drop_row),
        r"layout\.csv: the variables cover 4810 values of a row, but .*weights\.npy rows hold 4970",
    ),
    "layout span": (
        "layout.csv",
        edit_csv(shift_end),
        r"layout\.csv: variable sequential/dense/kernel:0 spans \[4810, 4971\) \(161 values\), but its shape "
        r"\(16, 10\) holds 160",
    ),
    "layout chain": (
        "layout.csv",
        edit_csv(chain_broken),
        r"layout\.csv: variable sequential/conv2d_1/kernel:0 has shape \(3, 3, 8, 32\), "
        r"expected a square conv kernel \[k, k, 16, out\]",
    ),
    "metrics rows": ("metrics.csv.gz", edit_csv(drop_row), r"metrics\.csv\.gz has 39 rows but .*weights\.npy has 40"),
    "activation": (
        "metrics.csv.gz",
        edit_csv(unknown_activation),
        r"metrics\.csv\.gz: config\.activation 'swish' is not an activation wsl knows",
    ),
    "not npy": ("weights.npy", lambda f: f.write_bytes(b"not numpy"), r"weights\.npy is not a readable \.npy file"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_refused_naming_the_file_and_nothing_is_written(untrained, tmp_path, case):
    file, edit, message = BAD[case]
    src = corrupt(untrained, tmp_path / "src", file, edit)
    with pytest.raises(WslError, match=message):
        import_small_cnn_zoo(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def nan_row(file: Path) -> None:
    weights = np.load(file)
    weights[6, 100] = np.nan
    np.save(file, weights)


def test_nan_rows_are_skipped_with_a_warning(untrained, tmp_path):
    src = corrupt(untrained, tmp_path / "src", "weights.npy", nan_row)
    with pytest.warns(
        UserWarning,
        match=r"weights\.npy: skipped 1 of 40 selected rows with NaN/inf weights, e\.g\. row 6 \(run1, step 20\)",
    ):
        zoo = load_zoo(import_small_cnn_zoo(src, tmp_path / "out"))
    assert len(zoo) == 39 and not ((zoo.models["source"] == "run1") & (zoo.models["epoch"] == 20)).any()


def test_nan_rows_fail_naming_the_row_when_asked(untrained, tmp_path):
    src = corrupt(untrained, tmp_path / "src", "weights.npy", nan_row)
    with pytest.raises(WslError, match=r"weights\.npy: row 6 \(run1, step 20\) holds NaN/inf weights"):
        import_small_cnn_zoo(src, tmp_path / "out", nonfinite="fail")
    assert not (tmp_path / "out").exists()


def test_the_cli_detects_the_format_and_selects(untrained, tmp_path):
    argv = ["zoo", "import", str(untrained), "--out", str(tmp_path / "zoo"), "--max-models", "2", "--steps", "0", "86"]
    assert main([*argv, "--seed", "3"]) == 0
    zoo = load_zoo(tmp_path / "zoo")
    assert len(zoo) == 4 and runs_and_steps(zoo)[1] == {0, 86}
    assert zoo.extra["selection"] == {"max_models": 2, "steps": [0, 86], "seed": 3}
    direct = import_small_cnn_zoo(untrained, tmp_path / "direct", max_models=2, steps=[0, 86], seed=3)
    assert runs_and_steps(zoo) == runs_and_steps(load_zoo(direct))  # the runs the library draws with seed 3


def test_the_cli_names_a_missing_file_of_the_format(untrained, tmp_path, capsys):
    src = corrupt(untrained, tmp_path / "src", "metrics.csv.gz", lambda f: f.unlink())
    assert main(["zoo", "import", str(src), "--out", str(tmp_path / "zoo")]) == 2
    assert re.search(r"metrics\.csv\.gz is missing", capsys.readouterr().err)


def test_task_data_of_another_dataset_than_config_dataset_is_refused(trained, source, tmp_path):
    other = Task("cifar10", *(getattr(trained[1], k) for k in ("x_train", "y_train", "x_test", "y_test")), 10)
    with pytest.raises(WslError, match=r"holds cifar10 data, but the zoo names 'mnist'"):
        import_small_cnn_zoo(source, tmp_path / "zoo", task_data=other)
    assert not (tmp_path / "zoo").exists()


def test_the_cli_reads_data_for_the_format_and_rechecks_the_originals(trained, source, tmp_path):
    task = trained[1]
    np.savez(
        tmp_path / "digits28.npz", **{k: getattr(task, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")}
    )
    argv = ["zoo", "import", str(source), "--out", str(tmp_path / "zoo"), "--steps", "3"]
    assert main([*argv, "--data", str(tmp_path / "digits28.npz"), "--preprocess", "none"]) == 0
    zoo = load_zoo(tmp_path / "zoo")
    assert len(zoo) == len(TRAINED) and zoo.extra["task_check"]["largest_abs_diff"] <= 1 / len(task.x_test) + 1e-9


def test_the_cli_refuses_selection_options_for_the_model_zoos_layout(tmp_path, capsys):
    (tmp_path / "public" / "model_0").mkdir(parents=True)
    assert main(["zoo", "import", str(tmp_path / "public"), "--out", str(tmp_path / "zoo"), "--max-models", "3"]) == 2
    assert "--max-models and --steps select from a Small CNN Zoo" in capsys.readouterr().err


def test_a_run_of_another_stride_is_refused(trained, tmp_path):
    checkpoints = [{**c, "config.cnn_stride": 1 if i == 3 else 2} for i, c in enumerate(trained[0])]
    src = write_format(tmp_path / "src", checkpoints)
    with pytest.raises(WslError, match="config.cnn_stride 1 is not the zoo's stride 2"):
        import_small_cnn_zoo(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "selu"])  # what train_network.py accepts
def test_every_activation_the_zoos_training_code_accepts_imports_and_runs_as_the_reference(tmp_path, act):
    zoo = load_zoo(
        import_small_cnn_zoo(write_format(tmp_path / "src", random_checkpoints(2, (0,), (act,))), tmp_path / "z")
    )
    x = torch.randn(3, 1, 28, 28)
    one = {k: v[:1] for k, v in zoo.weights.items()}
    reference = as_module(zoo.arch, {k: v[0] for k, v in zoo.weights.items()}, act).eval()
    assert set(zoo.models["activation"]) == {act}
    torch.testing.assert_close(forward(zoo.arch, one, x, [act])[0], reference(x), rtol=1e-4, atol=1e-5)


def test_a_run_without_the_last_checkpoint_is_left_out_and_counted(tmp_path):
    """The reconstruction metrics judge every model at the zoo's last step: a run that stops short would drop
    out of them unseen."""
    checkpoints = [c for c in random_checkpoints(3, (0, 86)) if not (c["modeldir"] == "run1" and c["step"] == 86)]
    src = write_format(tmp_path / "src", checkpoints)
    with pytest.warns(UserWarning, match="left out 1 runs without a checkpoint at step 86"):
        zoo = load_zoo(import_small_cnn_zoo(src, tmp_path / "zoo"))
    assert sorted(set(zoo.models["source"])) == ["run0", "run2"] and len(zoo) == 4
