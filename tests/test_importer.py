"""A zoo in the public model-zoo layout imports into the same networks, with their metadata."""

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from wsl.errors import WslError
from wsl.zoo import Arch, Conv, forward, load_zoo
from wsl.zoo.importer import import_public_zoo

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


def write_model(folder: Path, net: nn.Module, params: dict, checkpoints: dict[str, int], results=None) -> dict:
    """One trial folder; ``checkpoints`` maps folder name -> N. Returns ``N -> state dict``."""
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(params))
    lines = []
    for n in sorted(set(checkpoints.values()) if results is None else results):
        metrics = {"train_acc": 0.1 * n, "test_acc": 0.1 * n + 0.01, "train_loss": 2.0 - n, "test_loss": 2.1 - n}
        lines.append(json.dumps({**metrics, "training_iteration": n, "time_this_iter_s": 0.5, "config": params}))
    (folder / "result.json").write_text("\n".join(lines) + "\n")
    states = {}
    for name, n in checkpoints.items():
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
        states[n] = {k: v.clone() for k, v in net.state_dict().items()}
        (folder / name).mkdir()
        torch.save(states[n], folder / name / "checkpoints")
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
