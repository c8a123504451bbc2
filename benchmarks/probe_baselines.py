"""How strong is the weight-statistics baseline that embedding probes are judged against?

Per-tensor statistics (mean, variance, quantiles; `wsl.probes.weight_statistics`)
are a known strong predictor of a network's accuracy (R² above 0.98 on the
public CNN zoos, with a gradient-boosted regressor). Every run reports the
linear version (`baseline_r2`: the same ridge probe as the embedding's, so
the comparison is like for like). This prints that and a gradient-boosted
regressor on the same features and split, so that the embedding probe's R²
can be read against both: for test accuracy (`probe_r2`) and for the extra
targets every run's final.json reports (`probe_r2_epoch`, `probe_r2_gap`).

With `--run`, it also reads one trained autoencoder's latents and asks where
test accuracy is in them: its embedding (the mean of the latent tokens, what
`probe_r2` reads) under ridge and under boosting (is the information there,
but not linearly?), and wider linear read-outs of the same latents (mean and
spread of the tokens, per-layer means, every latent token). Raw weights under
ridge show what a linear probe gets without any encoder.

With `--train-models`, it refits both baselines on the first N training models
(a seeded shuffle; every checkpoint of each) and scores them on the same
validation and test rows: does the zoo's size limit them? `--write-cuts` saves
each cut as a zoo, to train an autoencoder on the same rows.

    python benchmarks/probe_baselines.py                     # default zoo: about 30 s on 2 cores
    python benchmarks/probe_baselines.py --zoo zoos/shapes-cnn
    wsl train && python benchmarks/probe_baselines.py --run runs/default   # + the run's latents: about 1 min
    wsl zoo make models=1024 name=digits-cnn-1024                          # about 5 min
    python benchmarks/probe_baselines.py --zoo zoos/digits-cnn-1024 --train-models 90 179 358 717 \
        --write-cuts zoos/cuts                                              # about 30 s
    wsl train zoo=zoos/cuts/train-179 name=cut-179                          # about 3 min
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from wsl.generate import flatten
from wsl.probes import boosted_probe, probe_target, ridge_probe, weight_statistics
from wsl.run import CHECKPOINT, load_run
from wsl.zoo.splits import SPLITS
from wsl.zoo.store import Zoo, load_zoo, save_zoo

TARGETS = {"test_acc": "probe_r2", "epoch": "probe_r2_epoch", "gap": "probe_r2_gap"}  # target -> the run's metric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="zoos/digits-cnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", help="a `wsl train` output folder: also probe its latents")
    parser.add_argument("--train-models", type=int, nargs="+", metavar="N", help="also fit on N training models only")
    parser.add_argument("--write-cuts", metavar="DIR", help="with --train-models: write each cut zoo to DIR/train-N")
    args = parser.parse_args()
    if args.run and not (Path(args.run) / CHECKPOINT).is_file():
        sys.exit(f"--run {args.run}: no {CHECKPOINT} there (give the folder `wsl train` wrote, e.g. runs/default)")

    zoo = load_zoo(args.zoo)
    _check_cut_args(args, zoo)
    stats = weight_statistics(zoo.weights)
    split = zoo.models["split"].to_numpy()
    x = {s: stats[split == s] for s in SPLITS}
    print(f"zoo {args.zoo}: {stats.shape[1]} statistics per row; rows " + ", ".join(f"{s} {len(x[s])}" for s in SPLITS))
    print(f"{'target (embedding metric)':<28} {'ridge R²':>9} {'tau':>6} {'boosted R²':>11} {'tau':>6} {'rounds':>7}")
    gain = {}
    for target, metric in TARGETS.items():
        values = probe_target(zoo.models, target)
        y = {s: values[split == s] for s in SPLITS}
        ridge, boosted = ridge_probe(x, y, groups(zoo)), boosted_probe(x, y, groups(zoo), args.seed)
        gain[target] = boosted["test"]["r2"] - ridge["test"]["r2"]
        print(
            f"{target + ' (' + metric + ')':<28} {ridge['test']['r2']:>9.3f} {ridge['test']['tau']:>6.3f}"
            f" {boosted['test']['r2']:>11.3f} {boosted['test']['tau']:>6.3f} {boosted['rounds']:>7}"
        )
    print(f"\nclaim: on test accuracy the nonlinear baseline explains {gain['test_acc']:+.3f} more variance than ridge")
    if args.run:
        representations(zoo, args.run, stats, args.seed)
    if args.train_models:
        learning_curve(zoo, stats, args.train_models, args.seed, args.write_cuts)


def groups(zoo: Zoo) -> np.ndarray:
    """The model of each training row: the probes' cross-validation keeps a model's checkpoints in one fold."""
    return zoo.models["model_id"].to_numpy()[zoo.models["split"].to_numpy() == "train"]


def _check_cut_args(args: argparse.Namespace, zoo: Zoo) -> None:
    """``--train-models`` within the zoo's training models; ``--write-cuts`` only with them, into new folders."""
    n_train = zoo.split("train").models["model_id"].nunique()
    if args.train_models and not all(1 <= n <= n_train for n in args.train_models):
        sys.exit(f"--train-models {args.train_models}: each N must be in 1..{n_train}, the zoo's training models")
    if not args.write_cuts:
        return
    if not args.train_models:
        sys.exit("--write-cuts writes the cuts of --train-models: give both")
    taken = [n for n in args.train_models if (Path(args.write_cuts) / f"train-{n}").exists()]
    if taken:
        sys.exit(f"--write-cuts {args.write_cuts}: train-{taken[0]} exists already; choose another folder or delete it")


def run_latents(zoo: Zoo, run: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``wsl train`` run's latents of every zoo row [R, T, latent] and the layer of each token [T]."""
    trained = load_run(run, "cpu", zoo)
    if Path(trained.cfg.zoo).resolve() != Path(zoo.path).resolve():
        sys.exit(f"--run {run} was trained on {trained.cfg.zoo}, not on --zoo {zoo.path}")
    data = trained.data(zoo)
    positions = data.lay.positions
    with torch.no_grad():
        z = torch.cat(
            [trained.model.encode(data.tokens[i : i + 256], positions) for i in range(0, len(data.tokens), 256)]
        )
    return z.double(), positions[:, 1]


def representations(zoo: Zoo, run: str, stats: np.ndarray, seed: int) -> None:
    """Test accuracy from the weights and from the run's latents, ridge and (where small) boosting."""
    z, layer = run_latents(zoo, run)
    features = {
        "raw weights": flatten(zoo.weights).double().numpy(),
        "weight statistics": stats,
        "embedding: mean of latents": z.mean(1).numpy(),
        "latents: mean and std": torch.cat([z.mean(1), z.std(1)], 1).numpy(),
        "latents: mean per layer": torch.cat([z[:, layer == k].mean(1) for k in layer.unique()], 1).numpy(),
        "latents: all tokens": z.flatten(1).numpy(),
    }
    split = zoo.models["split"].to_numpy()
    values = probe_target(zoo.models, "test_acc")
    y = {s: values[split == s] for s in SPLITS}
    print(f"\ntest accuracy from each representation ({run})")
    print(f"{'representation':<28} {'dims':>6} {'ridge R²':>9} {'tau':>6} {'boosted R²':>11} {'tau':>6}")
    for name, f in features.items():
        x = {s: f[split == s] for s in SPLITS}
        ridge = ridge_probe(x, y, groups(zoo))["test"]
        line = f"{name:<28} {f.shape[1]:>6} {ridge['r2']:>9.3f} {ridge['tau']:>6.3f}"
        if f.shape[1] <= 128:  # boosting on thousands of columns takes minutes and says little more
            boosted = boosted_probe(x, y, groups(zoo), seed)["test"]
            line += f" {boosted['r2']:>11.3f} {boosted['tau']:>6.3f}"
        print(line)


def learning_curve(zoo: Zoo, stats: np.ndarray, sizes: list[int], seed: int, cuts: str | None) -> None:
    """Test-accuracy R² of both baselines fitted on the first N training models, same val/test rows.

    With ``cuts``, also writes each cut zoo to ``<cuts>/train-<N>`` for ``wsl train zoo=...``.
    """
    split = zoo.models["split"].to_numpy()
    ids = zoo.models["model_id"].to_numpy()
    order = np.unique(ids[split == "train"])
    np.random.default_rng(seed).shuffle(order)
    values = probe_target(zoo.models, "test_acc")
    print(f"\ntest accuracy from weight statistics, fitted on N of {len(order)} training models")
    print(f"{'N':>5} {'rows':>6} {'ridge R²':>9} {'boosted R²':>11} {'rounds':>7}")
    for n in sizes:
        keep = (split != "train") | np.isin(ids, order[:n])
        rows = {s: keep & (split == s) for s in SPLITS}
        x, y = {s: stats[r] for s, r in rows.items()}, {s: values[r] for s, r in rows.items()}
        train = ids[rows["train"]]
        ridge, boosted = ridge_probe(x, y, train), boosted_probe(x, y, train, seed)
        r2 = ridge["test"]["r2"], boosted["test"]["r2"]
        print(f"{n:>5} {rows['train'].sum():>6} {r2[0]:>9.3f} {r2[1]:>11.3f} {boosted['rounds']:>7}")
        if cuts:
            save_zoo(Path(cuts) / f"train-{n}", zoo.select(keep))


if __name__ == "__main__":
    main()
