"""A zoo's split by model into train, validation and test: the names, and how models are dealt into them.

Splits are by model, never by checkpoint: a model's checkpoints share their
weights' history, and one seen in training would make its later checkpoints
easy to probe and reconstruct. The validation models decide what a sweep
picks; the test models report on it (``wsl.evaluate``).
"""

from __future__ import annotations

import numpy as np

from wsl.errors import WslError

SPLITS = ("train", "val", "test")


def assign_splits(model_ids, fractions=(0.7, 0.15, 0.15), seed=0) -> dict[int, str]:
    """``model_id -> split``, by model so no model's checkpoints leak across splits.

    The ids are shuffled with ``seed``; split sizes follow ``fractions`` (train,
    val, test), and with 3 or more models every split with a positive fraction
    gets at least one.
    """
    ids = np.unique(np.asarray(model_ids, dtype=np.int64))
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.shape != (3,) or (fractions < 0).any() or fractions.sum() <= 0:
        raise WslError(
            f"split fractions {fractions.tolist()} are invalid: expected 3 non-negative numbers (train, val, test)"
        )
    counts = _split_counts(len(ids), fractions / fractions.sum())
    order = np.random.default_rng(seed).permutation(ids)
    names = np.repeat(SPLITS, counts)
    return {int(i): str(s) for i, s in zip(order, names, strict=True)}


def _split_counts(n: int, fractions: np.ndarray) -> np.ndarray:
    """Largest-remainder split of ``n`` into 3 parts; with ``n >= 3`` none asked for is empty."""
    exact = fractions * n
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact, kind="stable")[: n - counts.sum()]] += 1
    if n < 3:
        return counts
    for empty in np.flatnonzero((counts == 0) & (fractions > 0)):
        counts[np.argmax(counts)] -= 1
        counts[empty] = 1
    return counts
