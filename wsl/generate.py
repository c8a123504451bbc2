"""Generation: new models decoded from KDE samples of the embeddings, and whether they are new.

- ``generation``: fit a Gaussian KDE on the embeddings of the best training
  models, decode samples, run them; beside two baselines (a training model
  plus noise at the same distance, and the average of the best models).
- ``nearest_distance`` and ``nearest_distance_aligned`` (up to the order of
  hidden units) measure novelty: generative weight models tend to return
  near-copies of their training data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.neighbors import KernelDensity
from torch import Tensor

from wsl.augment import reorder_units
from wsl.data import Data
from wsl.evaluate import positions_of, run_models
from wsl.model import Autoencoder
from wsl.tokens import detokenize
from wsl.zoo.arch import Arch


def generation_population(models: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """The best 30% (at least 2) of ``rows`` that share the best model's activation function; that function.

    A network is its weights *and* its activation function, and the weights do
    not say which: a tanh network run with GELU is broken. So generation (the
    KDE, the anchors, both baselines) stays within one activation, the best model's.
    """
    acc = models["test_acc"].to_numpy()
    act = models["activation"].to_numpy()
    best = act[rows[np.argmax(acc[rows])]]
    same = rows[act[rows] == best]
    return same[np.argsort(-acc[same])][: max(2, int(0.3 * len(same)))], str(best)


@torch.no_grad()
def generation(model: Autoencoder, data: Data, n: int, seed: int) -> dict[str, float]:
    """Decode KDE samples of the best training models' embeddings; accuracy and novelty beside two baselines.

    The best models: those of ``generation_population`` at the last epoch.

    Baselines: a random top training model plus Gaussian noise of the same
    per-tensor scale as the generated models' distance, and the mean of the top
    training models. Novelty = L2 distance to the nearest training model, up
    to the order of hidden units (a shuffled copy is still a copy).
    """
    models = data.zoo.models
    train = data.rows["train"]
    last = train[models["epoch"].to_numpy()[train] == models["epoch"].max()]
    top, act = generation_population(models, last)
    acts = [act] * n
    model.eval()
    positions = positions_of(data)
    z = model.encode(data.tokens[top], positions)  # [k, T, latent]
    emb = z.mean(1).cpu().numpy()
    samples = torch.as_tensor(kde_sample(emb, n, seed), dtype=z.dtype, device=z.device)
    # The decoder reads per-token latents: shift each top model's tokens to the sampled mean.
    anchor = z[torch.randint(len(top), (n,), generator=torch.Generator().manual_seed(seed))]
    latents = anchor - anchor.mean(1, keepdim=True) + samples[:, None, :]
    gen_params = detokenize(data.norm.denormalize(model.decode(latents, positions), data.lay), data.lay)
    arch = data.lay.arch
    pool = {k: v[last].to(z.device) for k, v in data.zoo.weights.items()}  # moved once, read three times

    def novelty(params) -> float:
        return float(nearest_distance_aligned(arch, params, pool).mean())

    gen_novelty = novelty(gen_params)
    top_params = {k: v[top].to(z.device) for k, v in data.zoo.weights.items()}
    picks = torch.randint(len(top), (n,), generator=torch.Generator().manual_seed(seed + 1))
    scale = gen_novelty / np.sqrt(arch.num_params)
    noisy = {k: v[picks] + scale * torch.randn_like(v[picks]) for k, v in top_params.items()}
    mean = {k: v.mean(0, keepdim=True) for k, v in top_params.items()}
    run = run_models
    return {
        "gen_acc": float(run(arch, gen_params, acts, data.task)["acc"].mean()),
        "gen_novelty": gen_novelty,
        "noise_acc": float(run(arch, noisy, acts, data.task)["acc"].mean()),
        "noise_novelty": novelty(noisy),
        "avg_acc": float(run(arch, mean, acts[:1], data.task)["acc"].mean()),
        "avg_novelty": novelty(mean),
    }


def kde_sample(embeddings: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n samples [n, D] from a Gaussian KDE (Scott's bandwidth on standardised embeddings)."""
    mean, std = embeddings.mean(0), embeddings.std(0) + 1e-12
    z = (embeddings - mean) / std
    bandwidth = len(z) ** (-1.0 / (z.shape[1] + 4))
    kde = KernelDensity(bandwidth=bandwidth).fit(z)
    return kde.sample(n, random_state=seed) * std + mean


def nearest_distance(candidates: Tensor, pool: Tensor) -> np.ndarray:
    """For each flattened weight vector in candidates [n, P], the L2 distance to the nearest in pool [m, P]."""
    return torch.cdist(candidates.double(), pool.double()).min(1).values.cpu().numpy()


def nearest_distance_aligned(arch: Arch, candidates: dict[str, Tensor], pool: dict[str, Tensor]) -> np.ndarray:
    """For each of n candidate models, the L2 distance to the nearest of m pool models up to hidden-unit order.

    Reordering a network's hidden units changes its weights, not its function: a
    training model with its units shuffled is a copy that plain L2 calls far. For
    every (candidate, pool model) pair this matches the candidate's units to the
    pool model's one layer at a time from the input (greedy weight matching: an
    assignment on the inner products of the units' incoming weights and bias, once
    the layer below is matched), then measures. Each pair keeps the smaller of that
    and the plain distance, so the result is never above ``nearest_distance``'s.
    Cheap for the zoo's small layers: n * m * layers assignments of at most 20
    units, one candidate at a time so that memory grows with m only.
    """
    device = next(iter(candidates.values())).device
    pool = {k: pool[k].to(device) for k in candidates}  # same device, same key order
    m = len(next(iter(pool.values())))
    pool_flat = flatten(pool).double()  # [m, P]
    nearest = []
    for c in range(len(next(iter(candidates.values())))):
        cand = {k: v[c : c + 1].expand(m, *v.shape[1:]) for k, v in candidates.items()}  # [m, ...]: one per pair
        for i in range(len(arch.layers) - 1):
            cand = reorder_units(arch, cand, i, _matching(cand, pool, i))
        nearest.append((flatten(cand).double() - pool_flat).norm(dim=1).min().item())
    return np.minimum(nearest, nearest_distance(flatten(candidates), pool_flat))


def _matching(cand: dict[str, Tensor], ref: dict[str, Tensor], i: int) -> Tensor:
    """[P, units]: for each pair, the candidate unit to put at each of the reference's units of layer ``i``."""

    def incoming(params):  # [P, units, inputs + 1]
        return torch.cat([params[f"layers.{i}.weight"].flatten(2), params[f"layers.{i}.bias"].unsqueeze(2)], 2)

    similarity = (incoming(ref) @ incoming(cand).transpose(1, 2)).cpu().numpy()  # [P, ref units, cand units]
    order = [linear_sum_assignment(s, maximize=True)[1] for s in similarity]
    return torch.as_tensor(np.stack(order), device=cand[f"layers.{i}.weight"].device)


def flatten(params: dict[str, Tensor]) -> Tensor:
    """name -> [N, *shape] to one weight vector per model [N, P]."""
    return torch.cat([w.flatten(1) for w in params.values()], 1)
