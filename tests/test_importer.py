"""A zoo in the public model-zoo layout imports into the same networks, with their metadata."""

import json
import re
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from wsl.errors import WslError
from wsl.zoo import Arch, Conv, forward, load_zoo, summary
from wsl.zoo.importer import import_public_zoo
from wsl.zoo.tasks import load_task

CNN_S = Arch("cnn", (1, 28, 28), 10, (Conv(8, 5, 0, True), Conv(6, 5, 0, True), Conv(4, 2, 0, False)), (20,))
ACTS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
HYPERS = [  # (model::nlin as the zoos spell it, dropout, init, optimizer)
    ("tanh", 0.0, "uniform", "adam"),
    ("ReLU", 0.5, "normal", "sgd"),
    ("sigmoid", 0.5, "kaiming_uniform", "adam"),
    ("gelu", 0.0, "kaiming_normal", "sgd"),
]


class PublicNet(nn.Module):
    """Models as the public zoos define them: modules in ``module_list``, dropout only when p > 0."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.module_list = nn.ModuleList(layers)

    def forward(self, x):
        for module in self.module_list:
            x = module(x)
        return x


def cnn_s(act: str, p: float, last: int = 10) -> PublicNet:
    a, drop = ACTS[act.lower()], [nn.Dropout(p)] if p else []
    return PublicNet(
        [nn.Conv2d(1, 8, 5), nn.MaxPool2d(2), a(), *drop, nn.Conv2d(8, 6, 5), nn.MaxPool2d(2), a(), *drop]
        + [nn.Conv2d(6, 4, 2), a(), nn.Flatten(), nn.Linear(36, 20), a(), *drop, nn.Linear(20, last)]
    )


def write_folder(folder: Path, params: dict, results: dict[int, dict], checkpoints: dict[str, dict]) -> None:
    """One trial folder: ``results`` maps N -> its result.json metrics, ``checkpoints`` folder name -> state dict."""
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(params))
    lines = [
        json.dumps({**metrics, "training_iteration": n, "time_this_iter_s": 0.5, "config": params})
        for n, metrics in sorted(results.items())
    ]
    (folder / "result.json").write_text("\n".join(lines) + "\n")
    for name, state in checkpoints.items():
        (folder / name).mkdir()
        torch.save(state, folder / name / "checkpoints")


def write_model(folder: Path, net: nn.Module, params: dict, checkpoints: dict[str, int], results=None) -> dict:
    """One trial folder of ``net`` perturbed per checkpoint, made-up metrics; ``checkpoints`` maps folder name -> N.

    Returns ``N -> state dict``.
    """
    metrics = {
        n: {"train_acc": 0.1 * n, "test_acc": 0.1 * n + 0.01, "train_loss": 2.0 - n, "test_loss": 2.1 - n}
        for n in (sorted(set(checkpoints.values())) if results is None else results)
    }
    states = {}
    for n in checkpoints.values():
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
        states[n] = {k: v.clone() for k, v in net.state_dict().items()}
    write_folder(folder, params, metrics, {name: states[n] for name, n in checkpoints.items()})
    return states


def params_json(i: int) -> dict:
    act, p, init, opt = HYPERS[i]
    return {
        "model::type": "CNN",
        "model::nlin": act,
        "model::dropout": p,
        "model::init_type": init,
        "optim::optimizer": opt,
        "optim::lr": 10.0**-i,
        "optim::wd": 0.5 * i,
        "seed": 100 + i,
    }


@pytest.fixture(scope="module")
def public(tmp_path_factory) -> tuple[Path, dict]:
    """4 CNN-s models, checkpoints 0, 1, 2 (model 0's last one spelled ``checkpoint_2``)."""
    torch.manual_seed(0)
    src = tmp_path_factory.mktemp("public") / "tune_zoo"
    originals = {}
    for i, (act, p, _, _) in enumerate(HYPERS):
        folder = src / f"NN_tune_trainable_{i:05d}_seed={100 + i}_2021-07-01_12-00-00"
        names = {"checkpoint_000000": 0, "checkpoint_000001": 1, "checkpoint_2" if i == 0 else "checkpoint_000002": 2}
        net = cnn_s(act, p).eval()
        originals[i] = (net, write_model(folder, net, params_json(i), names))
    return src, originals


@pytest.fixture(scope="module")
def imported(public, tmp_path_factory):
    src, _ = public
    return load_zoo(import_public_zoo(src, tmp_path_factory.mktemp("out") / "zoo", task="mnist"))


def test_the_cnn_s_architecture_is_inferred(imported):
    assert imported.arch == CNN_S


def test_every_checkpoint_becomes_one_row(imported):
    assert len(imported) == 12
    assert sorted(zip(imported.models["model_id"], imported.models["epoch"], strict=True)) == [
        (m, e) for m in range(4) for e in range(3)
    ]


def test_weights_are_the_saved_state_dict_values(public, imported):
    _, originals = public
    for row, (m, epoch) in enumerate(zip(imported.models["model_id"], imported.models["epoch"], strict=True)):
        state = originals[m][1][epoch]
        ours = [imported.weights[k][row] for k in CNN_S.param_shapes]
        assert all(torch.equal(a, b) for a, b in zip(ours, state.values(), strict=True))


def test_imported_models_compute_what_the_originals_compute(public, imported):
    _, originals = public
    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    final = imported.select(imported.models["epoch"] == 2)
    logits = forward(final.arch, final.weights, x, list(final.models["activation"]))
    for out, m in zip(logits, final.models["model_id"], strict=True):
        with torch.no_grad():
            assert torch.allclose(out, originals[m][0](x), rtol=1e-4, atol=1e-5)


def test_hyper_parameters_and_metrics_fill_the_columns(imported):
    row = imported.models.set_index(["model_id", "epoch"]).loc[(1, 2)]
    assert (row["activation"], row["dropout"], row["init"], row["optimizer"]) == ("relu", 0.5, "normal", "sgd")
    assert (row["lr"], row["wd"], row["seed"]) == (0.1, 0.5, 101)
    assert (row["train_acc"], row["test_acc"], row["train_loss"], row["test_loss"]) == pytest.approx(
        (0.2, 0.21, 0, 0.1)
    )
    assert row["source"].startswith("NN_tune_trainable_00001_")
    assert (imported.name, imported.task) == ("tune_zoo", "mnist")


def test_each_model_sits_in_one_split(imported):
    assert (imported.models.groupby("model_id")["split"].nunique() == 1).all()
    assert set(imported.models["split"]) == {"train", "val", "test"}


def test_a_missing_source_is_refused(tmp_path):
    with pytest.raises(WslError, match="nowhere.*does not exist"):
        import_public_zoo(tmp_path / "nowhere", tmp_path / "out")


def test_a_source_without_model_folders_is_refused(tmp_path):
    (tmp_path / "src" / "not_a_model").mkdir(parents=True)
    with pytest.raises(WslError, match="no model folders"):
        import_public_zoo(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_existing_destination_is_refused_before_reading(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(WslError, match="exists already"):
        import_public_zoo(tmp_path / "nowhere", tmp_path / "out")


def small_zoo(src: Path, bad: nn.Module | None = None) -> Path:
    """Two CNN-s models with checkpoints 1 and 2; ``bad`` replaces model 1's checkpoint 2."""
    for i in range(2):
        folder = src / f"model_{i}"
        write_model(folder, cnn_s("tanh", 0.0), params_json(i), {"checkpoint_000001": 1, "checkpoint_000002": 2})
    if bad is not None:
        torch.save(bad.state_dict(), src / "model_1" / "checkpoint_000002" / "checkpoints")
    return src / "model_1" / "checkpoint_000002" / "checkpoints"


def test_a_checkpoint_of_another_shape_is_refused_naming_it(tmp_path):
    file = small_zoo(tmp_path / "src", bad=cnn_s("tanh", 0.0, last=7))
    with pytest.raises(WslError, match=re.escape(str(file)) + ".*differ"):
        import_public_zoo(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def nan_net() -> nn.Module:
    net = cnn_s("tanh", 0.0)
    with torch.no_grad():
        net.module_list[0].bias[3] = float("nan")
    return net


def test_a_nan_checkpoint_is_skipped_with_a_warning(tmp_path):
    file = small_zoo(tmp_path / "src", bad=nan_net())
    with pytest.warns(UserWarning, match=re.escape(f"1 checkpoints with NaN/inf weights, e.g. {file}")):
        zoo = load_zoo(import_public_zoo(tmp_path / "src", tmp_path / "out", nonfinite="skip"))
    assert sorted(zip(zoo.models["model_id"], zoo.models["epoch"], strict=True)) == [(0, 1), (0, 2), (1, 1)]


def test_a_nan_checkpoint_fails_naming_it_when_asked(tmp_path):
    file = small_zoo(tmp_path / "src", bad=nan_net())
    with pytest.raises(WslError, match=re.escape(f"{file} holds NaN/inf")):
        import_public_zoo(tmp_path / "src", tmp_path / "out", nonfinite="fail")
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_without_a_result_line_is_skipped_with_a_warning(tmp_path):
    names = {"checkpoint_000000": 0, "checkpoint_000001": 1, "checkpoint_000002": 2}
    write_model(tmp_path / "src" / "m", cnn_s("relu", 0.0), params_json(0), names, results=[1, 2])
    with pytest.warns(UserWarning, match="1 checkpoints with no result.json line.*checkpoint_000000"):
        zoo = load_zoo(import_public_zoo(tmp_path / "src", tmp_path / "out"))
    assert list(zoo.models["epoch"]) == [1, 2]


def test_cnn_l_pools_after_its_last_conv_and_reads_32x32(tmp_path):
    a = nn.LeakyReLU
    net = PublicNet(
        [nn.Conv2d(3, 16, 3), nn.MaxPool2d(2), a(), nn.Conv2d(16, 32, 3), nn.MaxPool2d(2), a()]
        + [nn.Conv2d(32, 15, 3), nn.MaxPool2d(2), a(), nn.Flatten(), nn.Linear(60, 20), a(), nn.Linear(20, 10)]
    ).eval()
    write_model(tmp_path / "src" / "m", net, {"model::nlin": "leakyrelu"}, {"checkpoint_000001": 1})
    zoo = load_zoo(import_public_zoo(tmp_path / "src", tmp_path / "out"))
    assert zoo.arch == Arch("cnn", (3, 32, 32), 10, (Conv(16, 3), Conv(32, 3), Conv(15, 3)), (20,))
    assert zoo.arch.num_params == 10_853
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(forward(zoo.arch, zoo.weights, x, "leakyrelu")[0], net(x), rtol=1e-4, atol=1e-5)


def test_an_mlp_reads_a_square_input(tmp_path):
    net = PublicNet([nn.Linear(16, 5), nn.Tanh(), nn.Dropout(0.2), nn.Linear(5, 3)])
    write_model(tmp_path / "src" / "m", net, {"model::nlin": "tanh"}, {"checkpoint_000001": 1})
    zoo = load_zoo(import_public_zoo(tmp_path / "src", tmp_path / "out"))
    assert zoo.arch == Arch("mlp", (1, 4, 4), 3, (), (5,))


def test_an_mlp_with_a_non_square_input_is_refused(tmp_path):
    net = PublicNet([nn.Linear(14, 5), nn.Tanh(), nn.Linear(5, 3)])
    write_model(tmp_path / "src" / "m", net, {"model::nlin": "tanh"}, {"checkpoint_000001": 1})
    with pytest.raises(WslError, match="checkpoints: an MLP with 14 inputs has no square input size"):
        import_public_zoo(tmp_path / "src", tmp_path / "out")


# A public zoo of trained networks with its dataset.pt, built with plain torch (independent of the importer).

DIGITS_CNN = Arch("cnn", (1, 8, 8), 10, (Conv(8, 3, 0, True), Conv(6, 2, 0, False)), (20,))
TRAINED = [("tanh", 0.0), ("ReLU", 0.1), ("sigmoid", 0.0), ("gelu", 0.0)]  # (model::nlin, dropout)
EPOCHS, CHECKPOINTS = 4, (0, 2, 4)


def digits_cnn(act: str, p: float) -> PublicNet:
    """The CNN-s pattern on 8x8 digits: Conv(1,8,3) MaxPool act [Dropout] Conv(8,6,2) act Flatten Linear(24,20) ..."""
    a, drop = ACTS[act.lower()], [nn.Dropout(p)] if p else []
    return PublicNet(
        [nn.Conv2d(1, 8, 3), nn.MaxPool2d(2), a(), *drop, nn.Conv2d(8, 6, 2), a(), *drop, nn.Flatten()]
        + [nn.Linear(24, 20), a(), *drop, nn.Linear(20, 10)]
    )


@torch.no_grad()
def measure(net: nn.Module, data: dict[str, TensorDataset]) -> dict[str, float]:
    """What the public zoos record per epoch: train/test accuracy and loss (in eval mode)."""
    net.eval()
    out = {}
    for part in ("train", "test"):
        x, y = data[f"{part}set"].tensors
        logits = net(x)
        out[f"{part}_acc"] = float((logits.argmax(1) == y).double().mean())
        out[f"{part}_loss"] = float(nn.functional.cross_entropy(logits, y))
    return out


def train(net: nn.Module, data: dict[str, TensorDataset], seed: int) -> tuple[dict[int, dict], dict[str, dict]]:
    """Adam on ``trainset`` for EPOCHS epochs: result.json metrics per epoch 0..EPOCHS, states at CHECKPOINTS."""
    x, y = data["trainset"].tensors
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    gen = torch.Generator().manual_seed(seed)
    results, states = {0: measure(net, data)}, {}
    for epoch in range(1, EPOCHS + 1):
        if epoch - 1 in CHECKPOINTS:
            states[f"checkpoint_{epoch - 1:06d}"] = {k: v.clone() for k, v in net.state_dict().items()}
        net.train()
        for batch in torch.randperm(len(x), generator=gen).split(50):
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        results[epoch] = measure(net, data)
    states[f"checkpoint_{EPOCHS:06d}"] = {k: v.clone() for k, v in net.state_dict().items()}
    return results, states


def digits_dataset() -> dict:
    """dataset.pt's content: digits' first 1,000 training images as trainset, the rest as valset."""
    task = load_task("digits")
    return {
        "trainset": TensorDataset(task.x_train[:1000], task.y_train[:1000]),
        "valset": TensorDataset(task.x_train[1000:], task.y_train[1000:]),
        "testset": TensorDataset(task.x_test, task.y_test),
        "dataset_seed": 42,
    }


@pytest.fixture(scope="session")
def trained_public(tmp_path_factory) -> tuple[Path, dict, dict[int, dict]]:
    """4 digits CNNs trained for 4 epochs (about 2 s), their dataset.pt, and each model's last metrics."""
    src = tmp_path_factory.mktemp("trained") / "digits_zoo"
    data, last = digits_dataset(), {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # networks this small train several times faster on one thread
    try:
        for i, (act, p) in enumerate(TRAINED):
            torch.manual_seed(i)
            results, states = train(digits_cnn(act, p), data, seed=i)
            params = {**params_json(i), "model::nlin": act, "model::dropout": p}
            write_folder(src / f"NN_tune_trainable_{i:05d}_seed={i}_2021-07-01_12-00-00", params, results, states)
            last[i] = results[EPOCHS]
    finally:
        torch.set_num_threads(threads)
    torch.save(data, src / "dataset.pt")
    return src, data, last


def with_dataset(trained_public, dst: Path, data) -> Path:
    """A copy of the trained zoo whose dataset.pt holds ``data`` instead."""
    src = trained_public[0]
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("dataset.pt"))
    torch.save(data, dst / "dataset.pt")
    return dst


@pytest.fixture(scope="module")
def imported_trained(trained_public, tmp_path_factory):
    return load_zoo(import_public_zoo(trained_public[0], tmp_path_factory.mktemp("out") / "zoo", task="digits8"))


def test_the_fixture_models_learned(trained_public):
    accs = [m["test_acc"] for m in trained_public[2].values()]
    assert sum(a >= 0.5 for a in accs) >= 3 and max(accs) > 0.85


def test_dataset_pt_becomes_the_zoos_task_data(trained_public, imported_trained):
    data, task = trained_public[1], imported_trained.task_data
    assert imported_trained.arch == DIGITS_CNN
    assert torch.equal(task.x_train, data["trainset"].tensors[0]) and torch.equal(
        task.y_train, data["trainset"].tensors[1]
    )
    assert torch.equal(task.x_test, data["testset"].tensors[0]) and torch.equal(task.y_test, data["testset"].tensors[1])
    assert (task.name, task.num_classes, imported_trained.task) == ("digits8", 10, "digits8")


def test_the_originals_rerun_on_it_match_their_recorded_accuracy(trained_public, imported_trained):
    check = imported_trained.extra["task_check"]
    assert check["models"] == len(TRAINED)
    assert check["largest_abs_diff"] < 0.02
    assert f"largest |test_acc - recorded| {check['largest_abs_diff']:.4f}" in summary(imported_trained)["task_data"]


def test_transposed_images_are_refused_by_the_check(trained_public, tmp_path):
    data = digits_dataset()
    data["testset"] = TensorDataset(data["testset"].tensors[0].transpose(-1, -2), data["testset"].tensors[1])
    src = with_dataset(trained_public, tmp_path / "src", data)
    with pytest.raises(WslError, match=re.escape(str(src / "dataset.pt")) + ".*near chance.*transposed"):
        import_public_zoo(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


class Provenance(OrderedDict):
    """An innocent-looking class: dataset.pt may still hold none but TensorDataset."""


def test_a_dataset_pt_needing_another_class_is_refused_naming_it(trained_public, tmp_path):
    src = with_dataset(trained_public, tmp_path / "src", {**digits_dataset(), "meta": Provenance(seed=1)})
    with pytest.raises(WslError, match=re.escape(str(src / "dataset.pt")) + r" is refused.*class \S*Provenance"):
        import_public_zoo(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_images_that_do_not_fit_the_architecture_are_refused(trained_public, tmp_path):
    data = digits_dataset()
    data["trainset"] = TensorDataset(torch.zeros(5, 1, 12, 12), torch.zeros(5, dtype=torch.int64))
    src = with_dataset(trained_public, tmp_path / "src", data)
    with pytest.raises(WslError, match=r"dataset\.pt: trainset images have shape \(5, 1, 12, 12\).*\[N, 1, 8, 8\]"):
        import_public_zoo(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_dataset_pt_without_a_testset_is_refused(trained_public, tmp_path):
    data = digits_dataset()
    del data["testset"]
    src = with_dataset(trained_public, tmp_path / "src", data)
    with pytest.raises(WslError, match=r"dataset\.pt: key 'testset' is missing"):
        import_public_zoo(src, tmp_path / "out")


def test_the_summary_prints_the_largest_difference_the_check_found(trained_public, tmp_path):
    """One model's recorded accuracy moved by 0.0125: the check finds it and the summary prints that figure."""
    src = shutil.copytree(trained_public[0], tmp_path / "src")
    result = sorted(src.glob("NN_*"))[0] / "result.json"
    lines = [json.loads(line) for line in result.read_text().splitlines()]
    lines[-1]["test_acc"] += 0.0125
    result.write_text("\n".join(map(json.dumps, lines)) + "\n")
    zoo = load_zoo(import_public_zoo(src, tmp_path / "zoo", task="digits8"))
    assert zoo.extra["task_check"]["largest_abs_diff"] == pytest.approx(0.0125, abs=1e-6)
    assert "largest |test_acc - recorded| 0.0125" in summary(zoo)["task_data"]
