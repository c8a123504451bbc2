"""The sweep config is checked at the edge: every bad value is one clear error, before anything starts."""

import pytest

from wsl.config import load_config
from wsl.errors import WslError
from wsl.sweep.config import Param, SweepConfig, flatten, trial_config
from wsl.train import TrainConfig


def sweep(*overrides):
    return load_config("sweep", list(overrides), SweepConfig)


def test_the_default_sweep_searches_the_issue_knobs():
    assert {"loss.gamma", "loss.beta", "loss.probe_size", "tokens.width", "optim.lr"} <= set(sweep().params())


def test_named_sweeps_and_overrides_compose():
    cfg = sweep("sweep=paper", "search.num_samples=7")
    assert cfg.name == "paper" and cfg.search.num_samples == 7 and "model.latent_dim" in cfg.params()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("space.loss.beta.high=0.01", "empty or inverted"),
        ("+space.loss.nonsense={low:0,high:1}", "'nonsense' is not a training config field"),
        ("+space.loss.gamma.choices=[1,2]", "exactly one of"),
        ("space.loss.probe_size.choices=[]", "choices is empty"),
        ("objective=0.5*accuracy", "metric 'accuracy' is unknown"),
        ("objective=val_loss_struct", "'val_loss_struct' is a loss .* the objective is maximised"),
        ("scheduler.max_t=0", "must be >= scheduler.grace_period"),
        ("name=../evil", "plain identifier"),
        ("search.algorithm=grid", "search.algorithm='grid' is unknown"),
        ("space.loss.beta.high=1.5", r"sweep space loss.beta=1.5, .* expected in \[0, 1\]"),
        ("+space.model.heads={choices:[4,3]}", "sweep space model.heads=3, .* multiple of model.heads=3"),
        ("search.points_to_evaluate=[{loss.beta: 2.0}]", "search.points_to_evaluate .* loss.beta=2.0 is invalid"),
    ],
)
def test_bad_sweep_configs_name_the_key(override, message):
    with pytest.raises(WslError, match=message):
        sweep(override)


def test_a_log_range_must_be_positive():
    with pytest.raises(WslError, match="log range needs low > 0"):
        Param(low=0.0, high=1.0, log=True).check("optim.lr")


def test_space_keys_are_section_and_field_of_the_training_config():
    with pytest.raises(WslError, match="'optim' is not a training config field"):
        SweepConfig(space={"tokens": {"optim": Param(value=1)}})


def test_objective_is_a_weighted_sum():
    assert sweep("objective=probe_r2 + 0.25*rec_acc_ratio").weights() == {"probe_r2": 1.0, "rec_acc_ratio": 0.25}


def test_points_to_evaluate_take_unnamed_knobs_from_the_base_config():
    cfg = sweep("search.points_to_evaluate=[{loss.beta: 1.0}]")
    (point,) = cfg.points()
    assert point["loss.beta"] == 1.0 and point["loss.gamma"] == cfg.train.loss.gamma


def test_trial_config_sets_dotted_values_and_revalidates():
    cfg = trial_config(TrainConfig(), {"loss.beta": 0.3, "tokens.width": 16})
    assert cfg.loss.beta == 0.3 and cfg.tokens.width == 16
    assert flatten({"a": {"b": 1}, "c": 2}) == {"a.b": 1, "c": 2}
    with pytest.raises(WslError, match="model.heads=3"):
        trial_config(TrainConfig(), {"model.heads": 3})
