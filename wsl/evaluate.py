"""How good a trained autoencoder is: its reconstructions run as networks, its embeddings probed.

- ``run_models``: test accuracy of (decoded) models and their agreement with
  the originals (share of test inputs on which both predict the same class).
- ``evaluate_epoch``: what a run reports every epoch (DESIGN.md's metrics):
  held-out structural loss, reconstruction of the held-out trained models,
  the embedding's ridge probe of test accuracy.
- ``evaluate_final``: what it adds at the end: the weight-statistics baseline
  on the same rows and the probe's extra targets (epoch, generalisation gap).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from wsl import probes
from wsl.data import Data
from wsl.losses import struct_loss
from wsl.model import Autoencoder, encode_all
from wsl.tokens import detokenize
from wsl.zoo.arch import Arch, forward
from wsl.zoo.tasks import Task

EXTRA_TARGETS = ("epoch", "gap")  # probed at the end of a run: probe_r2_epoch, probe_tau_gap, ...


@torch.no_grad()
def run_models(
    arch: Arch, params: dict[str, Tensor], activations, task: Task, reference: dict[str, Tensor] | None = None
) -> dict[str, np.ndarray]:
    """Per-model test ``acc`` and, given reference params, ``agreement`` with the reference's predictions."""
    pred = _predictions(arch, params, activations, task)
    out = {"acc": (pred == task.y_test.to(pred.device)).double().mean(1).cpu().numpy()}
    if reference is not None:
        ref = _predictions(arch, reference, activations, task)
        out["agreement"] = (pred == ref).double().mean(1).cpu().numpy()
    return out


def _predictions(arch: Arch, params: dict[str, Tensor], activations, task: Task, chunk: int = 256) -> Tensor:
    """Predicted classes [N, test inputs]."""
    device = next(iter(params.values())).device
    return torch.cat(
        [
            forward(arch, params, task.x_test[s : s + chunk].to(device), activations).argmax(-1)
            for s in range(0, len(task.x_test), chunk)
        ],
        dim=1,
    )


def positions_of(data: Data) -> Tensor:
    """The layout's position ids ``[T, 3]`` on the tokens' device."""
    return data.lay.positions.to(data.tokens.device)


@torch.no_grad()
def decode_rows(model: Autoencoder, data: Data, rows: np.ndarray) -> dict[str, Tensor]:
    """Weights (``name -> [len(rows), *shape]``) reconstructed from clean tokens."""
    model.eval()
    rec, _ = model(data.tokens[rows], positions_of(data))
    return detokenize(data.norm.denormalize(rec, data.lay), data.lay)


@torch.no_grad()
def evaluate_epoch(model: Autoencoder, data: Data) -> dict[str, float]:
    """Held-out structural loss, reconstruction accuracy/agreement and the embedding probe."""
    model.eval()
    mask = data.lay.mask.to(data.tokens.device)
    val = data.tokens[data.rows["val"]]
    val_struct = float(struct_loss(model(val, positions_of(data))[0], val, mask))
    probe = embedding_probe(model, data)["test_acc"]
    return {
        "val_loss_struct": val_struct,
        **reconstruction(model, data),
        "probe_r2": probe["r2"],
        "probe_tau": probe["tau"],
    }


def final_test_rows(data: Data) -> np.ndarray:
    """Test-split rows at the zoo's last checkpoint: trained models, judged by what they do."""
    models = data.zoo.models
    last = models["epoch"].to_numpy() == models["epoch"].max()
    return np.intersect1d(data.rows["test"], np.flatnonzero(last))


def reconstruction(model: Autoencoder, data: Data) -> dict[str, float]:
    per = reconstruction_per_model(model, data)
    return {
        "rec_acc": float(per["rec_acc"].mean()),
        "rec_acc_ratio": float(per["rec_acc"].mean() / per["test_acc"].mean()),
        "rec_agreement": float(per["agreement"].mean()),
    }


def reconstruction_per_model(model: Autoencoder, data: Data) -> dict[str, np.ndarray]:
    """For each final test model: its row, original and reconstructed test accuracy, agreement."""
    rows = final_test_rows(data)
    original = {k: v[rows].to(data.tokens.device) for k, v in data.zoo.weights.items()}
    acts = list(data.activations[rows])
    rec = run_models(data.lay.arch, decode_rows(model, data, rows), acts, data.task, original)
    test_acc = data.zoo.models["test_acc"].to_numpy()[rows]
    return {"row": rows, "test_acc": test_acc, "rec_acc": rec["acc"], "agreement": rec["agreement"]}


def embedding_probe(model: Autoencoder, data: Data, targets: tuple[str, ...] = ("test_acc",)) -> dict[str, dict]:
    """The ridge probe of the embeddings for each target: ``test_acc``, ``epoch`` or ``gap``.

    ``gap`` is the generalisation gap, train minus test accuracy: with the
    checkpoint's epoch, the field's extra probe targets.
    """
    features = by_split(encode_all(model, data.tokens, positions_of(data)).double().cpu().numpy(), data)
    return {t: probes.ridge_probe(features, by_split(probes.probe_target(data.zoo.models, t), data)) for t in targets}


def by_split(values: np.ndarray, data: Data) -> dict[str, np.ndarray]:
    """values [R, ...] -> split name -> that split's rows, as the probes take them."""
    return {s: values[r] for s, r in data.rows.items()}


def evaluate_final(model: Autoencoder, data: Data) -> dict[str, float]:
    """End-of-run extras: the weight-statistics baseline and the probe's extra targets."""
    stats = by_split(probes.weight_statistics(data.zoo.weights), data)
    base = probes.ridge_probe(stats, by_split(probes.probe_target(data.zoo.models, "test_acc"), data))
    out = {"baseline_r2": base["r2"], "baseline_tau": base["tau"]}
    for target, probe in embedding_probe(model, data, EXTRA_TARGETS).items():
        out[f"probe_r2_{target}"], out[f"probe_tau_{target}"] = probe["r2"], probe["tau"]
    return out
