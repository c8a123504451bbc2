"""The sweep config is checked at the edge: every bad value is one clear error, before anything starts."""

from dataclasses import asdict

import pytest
import yaml

from wsl.compose import load_config, load_yaml
from wsl.config import TrainConfig, flatten, with_values
from wsl.errors import WslError
from wsl.sweep.config import Param, SweepConfig, upgrade


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
        ("scheduler.brackets=0", "scheduler.brackets=0 must be >= 1"),
        ("search.startup=0", "search.startup=0 must be >= 1"),
        ("space.loss.beta.high=1.5", r"sweep space loss.beta=1.5, .* expected in \[0, 1\]"),
        ("+space.model.heads={choices:[4,3]}", "sweep space model.heads=3, .* multiple of model.heads=3"),
        ("search.points_to_evaluate=[{loss.beta: 2.0}]", "search.points_to_evaluate .* loss.beta=2.0 is invalid"),
        ("tracking.kind=tensorboard", "tracking.kind='tensorboard' is unknown; choose from null, mlflow, wandb"),
        ("tracking=tensorboard", "Could not find 'tracking/tensorboard'"),
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


def test_a_fixed_value_is_set_not_searched():
    cfg = sweep("sweep=paper", "+space.optim.epochs={value: 3}")
    assert "optim.epochs" not in cfg.searched() and cfg.fixed() == {"optim.epochs": 3}
    assert set(cfg.searched()) | {"optim.epochs"} == set(cfg.params())


def test_objective_is_a_weighted_sum():
    cfg = sweep("objective=probe_r2 + 0.25*rec_acc_ratio")
    assert cfg.objectives() == {"objective": {"probe_r2": 1.0, "rec_acc_ratio": 0.25}} and not cfg.multi_objective


def test_points_to_evaluate_take_unnamed_knobs_from_the_base_config():
    cfg = sweep("search.points_to_evaluate=[{loss.beta: 1.0}]")
    (point,) = cfg.points()
    assert point["loss.beta"] == 1.0 and point["loss.gamma"] == cfg.train.loss.gamma


def test_with_values_sets_dotted_values_and_revalidates():
    cfg = with_values(TrainConfig(), {"loss.beta": 0.3, "tokens.width": 16})
    assert cfg.loss.beta == 0.3 and cfg.tokens.width == 16
    assert flatten({"a": {"b": 1}, "c": 2}) == {"a.b": 1, "c": 2}
    with pytest.raises(WslError, match="model.heads=3"):
        with_values(TrainConfig(), {"model.heads": 3})


def test_a_sweeps_zoo_is_its_trials_zoo():
    assert sweep("zoo=zoos/elsewhere").train.zoo == "zoos/elsewhere"
    assert SweepConfig(zoo="zoos/elsewhere").train.zoo == "zoos/elsewhere"


def test_a_second_zoo_for_the_trials_is_refused():
    with pytest.raises(WslError, match="train.zoo='zoos/b' differs from the sweep's zoo='zoos/a'"):
        sweep("zoo=zoos/a", "train.zoo=zoos/b")


def test_a_sweep_name_with_a_trailing_newline_is_refused():
    with pytest.raises(WslError, match="plain identifier"):
        SweepConfig(name="paper\n")


def test_a_sweep_yaml_of_the_first_format_loads_with_the_zoo_it_ran_on(tmp_path):
    """Version 1 wrote the default zoo under train.zoo whatever zoo= said; the trials ran on zoo=."""
    old = yaml.safe_dump({"name": "old", "zoo": "zoos/elsewhere", "train": {"zoo": "zoos/digits-cnn"}})
    (tmp_path / "sweep.yaml").write_text(old)
    cfg = load_yaml(tmp_path / "sweep.yaml", SweepConfig, upgrade)
    assert cfg.version == 2 and cfg.train.zoo == "zoos/elsewhere"


@pytest.mark.parametrize("header", ["", "# @package _global_\n"])
def test_a_config_in_a_folder_composes_at_the_top_with_overrides(tmp_path, monkeypatch, header):
    """Promoted YAMLs live in sweeps/promoted/; older ones were written without a package header."""
    (tmp_path / "promoted").mkdir()
    written = with_values(TrainConfig(name="s-t1"), {"loss.beta": 0.3})
    (tmp_path / "promoted" / "s-t1.yaml").write_text(header + yaml.safe_dump(asdict(written)))
    monkeypatch.setenv("WSL_CONFIG_DIR", str(tmp_path))
    cfg = load_config("promoted/s-t1", ["seed=4"], TrainConfig)
    assert (cfg.name, cfg.loss.beta, cfg.seed) == ("s-t1", 0.3, 4)


def test_a_sweep_yaml_of_the_first_format_without_a_zoo_key_takes_the_default():
    assert upgrade({"name": "old"})["train"]["zoo"] == SweepConfig.zoo


def test_a_list_of_objectives_makes_a_multi_objective_sweep_each_a_column():
    cfg = sweep("objective=[rec_agreement, 0.5*probe_r2 + 0.5*probe_tau]")
    assert cfg.multi_objective
    assert cfg.objectives() == {
        "rec_agreement": {"rec_agreement": 1.0},
        "objective_2": {"probe_r2": 0.5, "probe_tau": 0.5},
    }
    metrics = {"rec_agreement": 0.8, "probe_r2": 0.4, "probe_tau": 0.2}
    assert cfg.objective_values(metrics) == pytest.approx({"rec_agreement": 0.8, "objective_2": 0.3})


def test_a_list_of_one_objective_is_that_objective():
    cfg = sweep("objective=[probe_r2]")
    assert (
        cfg.objective == "probe_r2" and not cfg.multi_objective and cfg.objectives() == {"objective": {"probe_r2": 1.0}}
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objective=[probe_r2, 1*probe_r2]", "names probe_r2 twice"),
        ("objective=[probe_r2, test_rec_agreement]", "a figure on the test models"),
        ("objective=[probe_r2, 1]", "give a weighted sum of metrics, or a list of them"),
        ("search.algorithm=nsga2", "nsga2 needs several objectives"),
    ],
)
def test_bad_objective_lists_name_the_value(override, message):
    with pytest.raises(WslError, match=message):
        sweep(override)
