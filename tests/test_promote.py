"""Promotion: a promoted row holds the source trial's config and, per metric the final runs reported, mean and
spread over seeds; bad counts are refused before anything is read."""

from pathlib import Path

import pandas as pd
import pytest

from wsl.config import TrainConfig
from wsl.errors import WslError
from wsl.sweep.config import SweepConfig
from wsl.sweep.promote import aggregate, promote, promoted_config

SOURCE = pd.Series(
    {
        "sweep": "s",
        "trial_id": "t1",
        "zoo": "zoos/digits-cnn",
        "loss.beta": 0.1,
        "objective": 0.7,
        "status": "TERMINATED",
    }
)  # a row of a version-1 sweep: its zoo column named the default, not the zoo the trials ran on
CFG = promoted_config(SOURCE, TrainConfig(zoo="zoos/elsewhere"), epochs=12, out=Path("out"))


def final(seed: int, generate: bool) -> dict:
    """What ``wsl.train.train`` returns at the end of a run (made-up values)."""
    metrics = {
        "epoch": 12,
        "rec_acc": 0.8 + seed / 100,
        "rec_acc_ratio": 0.95 + seed / 100,
        "rec_agreement": 0.5,
        "probe_r2": 0.4,
        "probe_tau": 0.3,
        "val_loss_struct": 0.1,
        "probe_r2_epoch": 0.2,
        "probe_tau_epoch": 0.2,
        "probe_r2_gap": 0.1,
        "probe_tau_gap": 0.1,
        "baseline_r2": 0.6,
        "baseline_tau": 0.5,
    }
    if generate:
        metrics.update(gen_acc=0.7, gen_novelty=3.0, noise_acc=0.6, noise_novelty=3.0, avg_acc=0.1, avg_novelty=1.0)
    return metrics


def test_a_promoted_row_keeps_the_trials_config_and_links_back():
    row = aggregate(SOURCE, CFG, [final(0, True), final(1, True)], Path("out"), Path("promoted.yaml"))
    assert row["loss.beta"] == 0.1 and row["source_trial"] == "t1" and row["status"] == "PROMOTED"
    assert row["trial_id"] == "t1-promoted" and row["seeds"] == 2 and row["epochs"] == 12


def test_a_promoted_row_names_the_zoo_and_budget_it_ran_with():
    row = aggregate(SOURCE, CFG, [final(0, False)], Path("out"), Path("promoted.yaml"))
    assert row["zoo"] == "zoos/elsewhere" and row["optim.epochs"] == 12


def test_a_promoted_row_holds_mean_and_spread_over_seeds():
    row = aggregate(SOURCE, CFG, [final(0, True), final(1, True)], Path("out"), Path("promoted.yaml"))
    assert row["rec_acc_ratio"] == pytest.approx(0.955) and row["rec_acc_ratio_std"] == pytest.approx(0.005)
    assert row["gen_acc"] == pytest.approx(0.7) and row["noise_novelty_std"] == 0.0


def test_runs_that_generate_nothing_promote_without_generation_columns():
    row = aggregate(SOURCE, CFG, [final(0, False), final(1, False)], Path("out"), Path("promoted.yaml"))
    assert "gen_acc" not in row and row["baseline_r2"] == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("option", "flag"), [({"seeds": 0}, "--seeds 0"), ({"top_k": 0}, "--top-k 0"), ({"epochs": -1}, "--epochs -1")]
)
def test_promote_refuses_a_count_below_one_before_reading_anything(tmp_path, option, flag):
    with pytest.raises(WslError, match=flag):
        promote(SweepConfig(), tmp_path / "no-such-sweep", tmp_path / "promoted", **option)


def test_a_token_width_read_back_as_text_promotes_as_a_number():
    row = pd.Series({**SOURCE, "tokens.width": "64"})
    assert promoted_config(row, TrainConfig(), epochs=1, out=Path("out")).tokens.width == 64
