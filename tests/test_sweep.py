"""Sweeps end to end, driven through the ``wsl`` command on a real local Ray: Optuna + ASHA, the
results table, a crashing trial, a killed driver and its resume, promotion, joining a cluster, and a trial
that loses its process or its node."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import numpy as np
import optuna
import pandas as pd
import pytest
import ray
import yaml
from mlflow import MlflowClient
from ray._private import ray_constants
from ray._private.authentication_test_utils import reset_auth_token_state
from ray.cluster_utils import Cluster
from test_importer import trained_public  # noqa: F401 (a fixture)

from wsl import table
from wsl.compose import load_yaml
from wsl.run import load_run
from wsl.sweep.config import SweepConfig, upgrade
from wsl.sweep.moasha import rung_decision
from wsl.sweep.promote import pick
from wsl.sweep.replay import Setting, recorded, simulate
from wsl.sweep.rules import RULES
from wsl.sweep.search import study_storage

REPO = Path(__file__).resolve().parents[1]
WSL = [sys.executable, "-m", "wsl.cli"]
RAY = str(Path(sys.executable).parent / "ray")


def tiny(zoo, name, *more):
    """A sweep small enough for a test: 5 trials of <= 3 epochs on the 18-model zoo."""
    return [
        f"zoo={zoo}",
        f"name={name}",
        "search.num_samples=5",
        "scheduler.max_t=3",
        "scheduler.grace_period=1",
        "scheduler.reduction_factor=2",
        "train.model.d_model=32",
        "train.optim.batch_size=16",
        *more,
    ]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment of every `wsl` this module runs: its own results, configs and HOME.

    HOME: a local Ray writes a token to ~/.ray/auth_token when it starts (Ray >= 2.52); a test run
    must leave the user's untouched.
    """
    root = tmp_path_factory.mktemp("sweeps")
    shutil.copytree(REPO / "sweeps", root / "configs")
    (root / "home").mkdir()
    return {
        **os.environ,
        "WSL_RESULTS": str(root / "results"),
        "WSL_CONFIG_DIR": str(root / "configs"),
        "RAY_ADDRESS": "",
        "HOME": str(root / "home"),
    }


@pytest.fixture(scope="module", autouse=True)
def users_ray_token_untouched():
    token = Path.home() / ".ray" / "auth_token"
    before = token.read_bytes() if token.is_file() else None
    yield
    assert (token.read_bytes() if token.is_file() else None) == before, f"a test wrote {token}"


def wsl(env, *args, timeout=600):
    return subprocess.run([*WSL, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def zoo_copy(small_zoo_path, tmp_path_factory):
    """The test zoo at a path of its own: a sweep on it must not fall back to the default zoo anywhere."""
    return shutil.copytree(small_zoo_path, tmp_path_factory.mktemp("elsewhere") / "zoo-copy")


@pytest.fixture(scope="module")
def finished(env, zoo_copy):
    """One real sweep whose space holds a clash no single value shows: 8 heads do not divide d_model=36.

    One trial at a time, so the order trials reach ASHA's rungs does not race. With this seed TPE's
    random start draws d_model 36 with 8 heads for its third trial, after the two seeded points, and
    ASHA stops two of the four others at epoch 1, every run.
    """
    clash = ["+space.model.d_model={choices:[32,36]}", "+space.model.heads={choices:[4,8]}"]
    sequential = ["search.seed=3", "search.max_concurrent=1"]
    result = wsl(env, "sweep", *tiny(zoo_copy, "s1", *clash, *sequential, "tracking=mlflow"))
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(env["WSL_RESULTS"]) / "s1", result


def test_a_sweep_writes_one_row_per_trial_and_per_epoch(finished):
    directory, _ = finished
    trials = pd.read_parquet(directory / "trials.parquet")
    epochs = pd.read_parquet(directory / "epochs.parquet")
    assert len(trials) == 5 and set(trials["status"]) <= {"TERMINATED", "STOPPED", "ERROR"}
    ran = trials[trials["status"] != "ERROR"]
    assert ran["epochs"].sum() == len(epochs) and epochs["objective"].notna().all()
    assert {"loss.beta", "tokens.width", "rec_acc_ratio", "probe_r2", "best_objective"} <= set(trials.columns)


def test_epoch_rows_record_when_they_arrived(finished):
    directory, _ = finished
    epochs = pd.read_parquet(directory / "epochs.parquet").sort_values(["trial_id", "epoch"])
    assert epochs.groupby("trial_id")["reported_at"].apply(lambda t: t.is_monotonic_increasing).all()
    assert epochs["reported_at"].max() - epochs["reported_at"].min() < 600


def test_a_crashing_trial_is_recorded_as_errored_and_the_sweep_goes_on(finished):
    directory, result = finished
    trials = pd.read_parquet(directory / "trials.parquet")
    errored = trials[trials["status"] == "ERROR"]
    assert len(errored) >= 1 and errored["error"].str.contains("model.d_model=36").all()
    assert (errored["failures"] == 2).all()  # max_failures=1: tried, retried once, then recorded
    assert (trials["status"] == "TERMINATED").any()


def mlflow_runs(directory: Path) -> tuple[MlflowClient, list]:
    """Every MLflow run of the sweep in ``directory`` (tracking=mlflow's default store), so a second run of
    one trial would show."""
    client = MlflowClient(f"sqlite:///{directory / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(directory.name)
    return client, client.search_runs([experiment.experiment_id])


def test_every_trial_is_one_mlflow_run_holding_the_tables_epochs(finished):
    """tracking=mlflow: a run per trial (the crashing one's retry too), its searched values as params, every
    epoch figure of ``epochs.parquet`` at step = epoch, and the table's status as a tag."""
    directory, _ = finished
    client, runs = mlflow_runs(directory)
    trials = pd.read_parquet(directory / "trials.parquet").set_index("trial_id")
    epochs = pd.read_parquet(directory / "epochs.parquet")
    searched = set(load_yaml(directory / "sweep.yaml", SweepConfig, upgrade).params())
    assert sorted(r.data.tags["wsl.trial_id"] for r in runs) == sorted(trials.index)
    for run in runs:
        tid = run.data.tags["wsl.trial_id"]
        assert run.data.tags["wsl.status"] == trials.loc[tid, "status"]
        assert set(run.data.params) == searched
        assert all(value == str(trials.loc[tid, key]) for key, value in run.data.params.items())
        mine = epochs[epochs["trial_id"] == tid].set_index("epoch")
        mine = mine.drop(columns=[c for c in table.BOOKKEEPING if c in mine])  # sweep, trial_id, reported_at, ...
        assert set(run.data.metrics) == ({"epoch", *mine.columns} if len(mine) else set())
        for name in run.data.metrics:
            logged = pd.Series({m.step: m.value for m in client.get_metric_history(run.info.run_id, name)})
            table_has = mine.index.to_series() if name == "epoch" else mine[name]
            pd.testing.assert_series_equal(logged.sort_index(), table_has, check_names=False, check_dtype=False)


def test_every_trial_row_names_the_zoo_the_sweep_ran_on(finished, zoo_copy):
    directory, _ = finished
    trials = pd.read_parquet(directory / "trials.parquet")
    assert set(trials["zoo"]) == {str(zoo_copy)}


def test_asha_stopped_trials_are_pruned_in_the_optuna_study(finished):
    directory, _ = finished
    trials = pd.read_parquet(directory / "trials.parquet")
    study = optuna.load_study(study_name="s1", storage=study_storage(directory / "optuna.journal"))
    stopped = trials[trials["status"] == "STOPPED"]
    pruned = study.get_trials(states=[optuna.trial.TrialState.PRUNED])
    assert len(stopped) >= 1 and len(pruned) == len(stopped)
    assert len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == (trials["status"] == "TERMINATED").sum()
    # each pruned trial carries its value at the epoch ASHA stopped it (Tune hands that result over last)
    assert sorted(max(t.intermediate_values) for t in pruned) == sorted(stopped["epochs"])


def dashboard(journal: Path):
    """What `optuna-dashboard JOURNAL` serves: a GET of one of its API paths, asked through its WSGI app."""
    from optuna_dashboard import wsgi

    app = wsgi(study_storage(journal))

    def get(path):
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        return json.loads(b"".join(app(environ, lambda status, headers, *exc: None)))

    return get


def test_optuna_dashboard_shows_the_study_with_its_pruned_trials(finished):
    directory, _ = finished
    get = dashboard(directory / "optuna.journal")
    (study,) = get("/api/studies")["study_summaries"]
    states = [t["state"] for t in get(f"/api/studies/{study['study_id']}")["trials"]]
    stopped = (pd.read_parquet(directory / "trials.parquet")["status"] == "STOPPED").sum()
    assert study["study_name"] == "s1" and states.count("Pruned") == stopped


def test_the_live_view_prints_trial_events_not_tune_boxes(finished):
    _, result = finished
    events = [line for line in result.stdout.splitlines() if " | best " in line]
    assert sum(" started " in line for line in events) >= 5 and any(" failed " in line for line in events)
    assert "Configuration for experiment" not in result.stdout and "Trial status" not in result.stdout


def test_results_prints_the_trials_its_where_keeps(env, finished):
    result = wsl(env, "results", "s1", "--where", "status == 'TERMINATED' and beta <= 1", "--columns", "trial_id,beta")
    assert result.returncode == 0, result.stderr
    trials = pd.read_parquet(finished[0] / "trials.parquet")
    kept = trials.loc[(trials["status"] == "TERMINATED") & (trials["loss.beta"] <= 1), "trial_id"]
    printed = re.findall(r"^│ (\S+) +│", result.stdout, flags=re.MULTILINE)
    assert len(kept) < len(trials) and sorted(printed) == sorted(kept) and "beta" in result.stdout


def test_the_replay_takes_the_asha_decisions_the_sweep_took(finished):
    """The search replay's loop, given the sweep's own proposals and curves, stops the same trials there."""
    directory, _ = finished
    cfg = load_yaml(directory / "sweep.yaml", SweepConfig, upgrade)
    trials, epochs = pd.read_parquet(directory / "trials.parquet"), pd.read_parquet(directory / "epochs.parquet")
    proposals, source = recorded(trials, epochs, list(cfg.params()), cfg.scheduler.max_t)
    replayed = simulate(cfg, Setting(cfg.search.algorithm), source, seed=0, proposals=proposals)
    ran = trials[trials["trial_id"].isin(epochs["trial_id"])]
    assert replayed.groupby("trial")["epoch"].max().tolist() == ran["epochs"].tolist()
    assert (ran["status"] == "STOPPED").any()


def test_a_sweep_warm_started_from_an_earlier_one_holds_its_trials_before_its_own(env, finished, small_zoo_path):
    earlier = pd.read_parquet(finished[0] / "trials.parquet")
    told = earlier["status"].isin(["TERMINATED", "STOPPED"]).sum()
    result = wsl(env, "sweep", *tiny(small_zoo_path, "w1", "search.num_samples=2", "search.warm_start=s1*"))
    assert result.returncode == 0, result.stderr[-3000:]
    failed = (earlier["status"] == "ERROR").sum()
    assert f"warm start from s1: {told} trials" in result.stdout and f"{failed} failed or unfinished" in result.stdout
    journal = Path(env["WSL_RESULTS"]) / "w1" / "optuna.journal"
    study = optuna.load_study(study_name="w1", storage=study_storage(journal))
    assert len(study.trials) == told + 2  # the earlier trials first, then this sweep's two
    assert [t.state.name for t in study.trials[:told]] == [
        "COMPLETE" if status == "TERMINATED" else "PRUNED" for status in earlier["status"] if status != "ERROR"
    ]


def test_a_warm_start_from_a_sweep_with_another_objective_is_refused(env, finished, small_zoo_path):
    result = wsl(env, "sweep", *tiny(small_zoo_path, "w2", "search.warm_start=s1", "objective=probe_r2"))
    assert result.returncode == 2 and "sweep 's1' was judged by other objectives" in result.stderr
    assert not (Path(env["WSL_RESULTS"]) / "w2").exists()


@pytest.fixture(scope="module")
def multi(env, small_zoo_path):
    """A real multi-objective sweep: TPE on two objectives, the multi-objective ASHA stopping trials.

    One trial at a time, so the order trials reach the rung does not race. With this seed ASHA stops two trials at
    epoch 1 and three reach max_t: two on the front and one off it, every run.
    """
    more_reach_max_t = ["scheduler.max_t=2", "search.max_concurrent=1"]  # one rung (epoch 1): half go on
    args = tiny(small_zoo_path, "mo", "objective=[rec_agreement,probe_r2]", "search.seed=9", *more_reach_max_t)
    result = wsl(env, "sweep", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(env["WSL_RESULTS"]) / "mo", result


def beaten(points: np.ndarray) -> list[bool]:
    """Whether each of ``points [n, k]`` (maximised) is dominated by another: at least as good on every
    objective, better on one."""
    return [any((q >= p).all() and (q > p).any() for q in points) for p in points]


def test_a_multi_objective_sweep_ranks_the_trials_that_reached_max_t_by_dominance(multi):
    directory, result = multi
    trials = table.read_trials(directory).set_index("trial_id")
    full = trials[trials["status"] == "TERMINATED"]
    points = full[["rec_agreement", "probe_r2"]].to_numpy()
    assert len(full) >= 1 and full["pareto_rank"].notna().all()
    assert (full["pareto_rank"] > 0).tolist() == beaten(points)
    assert trials.loc[trials["status"] == "STOPPED", "pareto_rank"].isna().all()
    assert "front " in result.stdout  # the live view counts the front, not a best objective
    assert "optuna + multi-objective asha" in result.stdout  # what stops its trials, said as it starts
    study = optuna.load_study(study_name="mo", storage=study_storage(directory / "optuna.journal"))
    assert len(study.directions) == 2 and len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == len(full)


def test_a_multi_objective_sweep_ends_by_printing_its_front(multi):
    directory, result = multi
    trials = table.read_trials(directory)
    front = sorted(trials.loc[trials["pareto_rank"] == 0, "trial_id"])
    closing = result.stdout[result.stdout.index("the front of mo") :]
    assert sorted(re.findall(r"^│ (\S+) +│", closing, flags=re.MULTILINE)) == front


def test_results_of_a_multi_objective_sweep_list_its_front_first_and_pareto_keeps_only_it(env, multi):
    trials = table.read_trials(multi[0])
    front = sorted(trials.loc[trials["pareto_rank"] == 0, "trial_id"])
    listed = wsl(env, "results", "mo", "--columns", "trial_id,pareto_rank")
    printed = re.findall(r"^│ (\S+) +│", listed.stdout, flags=re.MULTILINE)
    assert listed.returncode == 0 and sorted(printed[: len(front)]) == front and len(printed) == len(trials)
    pareto = wsl(env, "results", "mo", "--pareto", "--columns", "trial_id")
    assert sorted(re.findall(r"^│ (\S+) +│", pareto.stdout, flags=re.MULTILINE)) == front


def test_the_optuna_dashboard_draws_the_front_the_table_ranks(multi):
    """The dashboard's Pareto front (its best trials: the study's non-dominated complete trials) is the table's
    front (``pareto_rank`` 0), config for config and value for value: a trial is complete in the study exactly
    when it reached max_t (ASHA's stopped trials are told pruned, without values), told its objectives at max_t,
    the figures the table ranks. The trial that reached max_t off the front is complete there, and not drawn."""
    directory, _ = multi
    get = dashboard(directory / "optuna.journal")
    (summary,) = get("/api/studies")["study_summaries"]
    study = get(f"/api/studies/{summary['study_id']}")
    assert study["directions"] == ["maximize", "maximize"]
    trials = table.read_trials(directory)
    searched = list(load_yaml(directory / "sweep.yaml", SweepConfig, upgrade).params())

    def drawn(trial: dict) -> tuple:  # a study trial: its config, its values
        config = {p["name"]: table.cell(p["param_external_value"]) for p in trial["params"]}
        return tuple(config[key] for key in searched), tuple(trial["values"])

    def ranked(row: dict) -> tuple:  # a trial row: the same
        return tuple(table.cell(row[key]) for key in searched), (row["rec_agreement"], row["probe_r2"])

    front = trials[trials["pareto_rank"] == 0]
    assert sorted(map(drawn, study["best_trials"])) == sorted(map(ranked, front.to_dict("records")))
    complete = [t for t in study["trials"] if t["state"] == "Complete"]
    assert len(complete) == (trials["status"] == "TERMINATED").sum() > len(front)


def test_promote_pick_runs_the_front_trial_it_keeps_best_on_the_last_objective(env, multi):
    """``--pick`` keeps front trials by a rule over validation figures and promotes the one best on the last
    objective (probe_r2), though a trial ASHA stopped that the rule keeps too scored higher: its figure, one epoch
    in, is not comparable. The PROMOTED row names its front trial, gives its validation figures beside the test
    figures of the final run, and that run's seed is none a trial ran."""
    directory, _ = multi
    rule = "rec_agreement >= 0.1"
    result = wsl(env, "promote", "mo", "--pick", rule, "--seeds", "1", "--epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = table.read_trials(directory)
    kept = trials.query(f"pareto_rank == 0 and {rule}")
    (row,) = trials[trials["status"] == "PROMOTED"].to_dict("records")
    picked = kept.set_index("trial_id")["probe_r2"]
    assert len(kept) > 1 and row["source_trial"] == picked.idxmax() and row["pick_value"] == picked.max()
    assert trials.query(f"status == 'STOPPED' and {rule}")["probe_r2"].max() > picked.max()
    assert row["pick_rule"] == f"pick {rule}" and row["pick_metric"] == "probe_r2"
    figures = ["rec_agreement", "probe_r2", "test_rec_agreement", "test_probe_r2"]
    assert all(pd.notna(row[f]) for f in figures) and row["test_rec_agreement"] != row["rec_agreement"]
    ran = set(trials.loc[trials["status"] != "PROMOTED", "seed"])
    assert ran == {0} and row["seeds"] == 1 and row["promoted_seeds"] == "1"


def test_a_sweep_name_that_exists_needs_resume(env, finished, small_zoo_path):
    before = sorted(p.name for p in finished[0].iterdir())
    result = wsl(env, "sweep", *tiny(small_zoo_path, "s1"))
    assert result.returncode == 2 and "exists already" in result.stderr and "--resume s1" in result.stderr
    assert sorted(p.name for p in finished[0].iterdir()) == before


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("scheduler.max_t=0", "max_t"),
        ("zoo=/nonexistent/zoo", "/nonexistent/zoo"),
        ("name=a/b", "plain identifier"),
        ("+space.model.heads={choices:[4,3]}", "model.heads=3"),
        ("train.zoo=/another/zoo", "differs from the sweep's zoo"),
        ("storage=/proc/wsl-cannot-be-made", "cannot set up sweep 'bad' at /proc/wsl-cannot-be-made"),
    ],
)
def test_bad_input_fails_and_leaves_nothing_behind(env, small_zoo_path, override, message):
    results = Path(env["WSL_RESULTS"])
    before = sorted(results.iterdir()) if results.is_dir() else []
    result = wsl(env, "sweep", *tiny(small_zoo_path, "bad"), override)
    assert result.returncode == 2 and message in result.stderr
    assert (sorted(results.iterdir()) if results.is_dir() else []) == before  # no bad/, no a/ for name=a/b


@pytest.fixture(scope="module")
def promoted(env, finished):
    result = wsl(env, "promote", "s1", "--seeds", "2", "--epochs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(finished[0] / "trials.parquet")
    best = trials[trials["status"].isin(["TERMINATED", "STOPPED"])].sort_values("best_objective").iloc[-1]
    return trials, best


def test_promote_runs_the_best_trial_over_seeds_no_trial_ran_and_links_back(finished, promoted):
    directory, _ = finished
    trials, best = promoted
    (row,) = trials[trials["status"] == "PROMOTED"].to_dict("records")
    assert row["source_trial"] == best["trial_id"] and row["seeds"] == 2
    assert row["pick_value"] == best["best_objective"] and row["pick_rule"] == "best"
    models = pd.read_parquet(directory / "promoted" / best["trial_id"] / "models.parquet")
    ran = set(trials.loc[trials["status"] != "PROMOTED", "seed"])
    assert ran == {0} and set(models["seed"]) == {1, 2} and row["promoted_seeds"] == "1,2"
    assert {"test_acc", "rec_acc", "emb_x", "emb_y"} <= set(models.columns)
    per_seed = models.groupby("seed").apply(lambda m: m["rec_acc"].mean() / m["test_acc"].mean())  # each seed's
    assert row["test_rec_acc_ratio"] == pytest.approx(per_seed.mean())
    assert row["test_rec_acc_ratio_std"] == pytest.approx(per_seed.std(ddof=1))


def test_a_promoted_row_gives_test_figures_beside_validation_ones(promoted):
    trials, _ = promoted
    (row,) = trials[trials["status"] == "PROMOTED"].to_dict("records")
    assert row["test_objective"] == pytest.approx(0.5 * row["test_rec_agreement"] + 0.5 * row["test_probe_r2"])
    assert row["test_objective_ci95"] > 0 and row["test_rec_agreement"] != row["rec_agreement"]
    assert {"test_baseline_r2", "test_copy_best_agreement_working", "copy_best_agreement_working"} <= set(row)


def test_a_sweep_records_no_test_figure_and_its_objective_is_the_validation_ones(finished):
    directory, _ = finished
    epochs = pd.read_parquet(directory / "epochs.parquet")
    trials = pd.read_parquet(directory / "trials.parquet")
    trials = trials[trials["status"] != "PROMOTED"].dropna(axis=1, how="all")  # the trials' own cells
    assert not [c for c in (*epochs.columns, *trials.columns) if c.startswith("test_")]
    assert epochs["objective"].to_numpy() == pytest.approx(0.5 * epochs["rec_agreement"] + 0.5 * epochs["probe_r2"])
    assert (trials["eval.test"] == False).all()  # noqa: E712 (a column of booleans)
    assert yaml.safe_load((directory / "sweep.yaml").read_text())["version"] == 3 == table.VALIDATION_FROM


@pytest.fixture(scope="module")
def other_test_models(env, finished, zoo_copy, tmp_path_factory):
    """s1 again, on its zoo with the test-split models replaced (other weights, other recorded accuracies)."""
    from conftest import with_other_test_models

    from wsl.zoo.store import load_zoo, save_zoo

    zoo = save_zoo(tmp_path_factory.mktemp("other") / "zoo", with_other_test_models(load_zoo(zoo_copy)))
    clash = ["+space.model.d_model={choices:[32,36]}", "+space.model.heads={choices:[4,8]}"]
    result = wsl(env, "sweep", *tiny(zoo, "s2", *clash, "search.seed=3", "search.max_concurrent=1"))
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(env["WSL_RESULTS"]) / "s2"


def test_a_sweeps_decisions_do_not_depend_on_the_test_models(finished, other_test_models):
    """The same proposals, the same ASHA stops, the same promotion pick, whatever the test models are."""
    tables = {}
    for name, directory in (("s1", finished[0]), ("s2", other_test_models)):
        trials = pd.read_parquet(directory / "trials.parquet").query("status != 'PROMOTED'")
        epochs = pd.read_parquet(directory / "epochs.parquet")
        order = {t: i for i, t in enumerate(trials["trial_id"])}  # trial ids are random: compare start order
        picks = {rule: order[pick(trials, epochs, "objective", None, 1, rule, 3)["trial_id"].item()] for rule in RULES}
        searched = ["loss.beta", "loss.gamma", "loss.probe_size", "tokens.width", "model.d_model", "model.heads"]
        tables[name] = (trials[searched].to_dict("records"), trials["status"].tolist(), trials["epochs"].tolist())
        tables[name] += (picks, epochs.sort_values("reported_at")["objective"].tolist())  # in arrival order
    assert tables["s1"] == tables["s2"]


def test_a_race_promotes_the_winner_of_fresh_seeds_on_validation(env, other_test_models):
    result = wsl(env, "promote", "s2", "--rule", "race", "--race-k", "2", "--seeds", "1", "--epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(other_test_models / "trials.parquet")
    (row,) = trials[trials["status"] == "PROMOTED"].to_dict("records")
    raced = json.loads(row["race_values"])  # {trial: [its racing figure on seed 1]}
    finished = trials[trials["status"] == "TERMINATED"].sort_values("objective", ascending=False)
    assert sorted(raced) == sorted(finished["trial_id"].head(2)) and max(raced, key=raced.get) == row["source_trial"]
    assert row["pick_value"] == raced[row["source_trial"]][0] and row["promoted_seeds"] == "2"
    assert row["pick_rule"] == "race of 2" and "race of 2" in result.stdout


def test_the_promoted_yaml_is_the_trials_config_on_the_sweeps_zoo(env, finished, promoted, zoo_copy):
    directory, _ = finished
    _, best = promoted
    text = (Path(env["WSL_CONFIG_DIR"]) / "promoted" / f"s1-{best['trial_id']}.yaml").read_text()
    assert text == (directory / "promoted" / best["trial_id"] / "config.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["zoo"] == str(zoo_copy) and config["optim"]["epochs"] == 2
    searched = {"loss.beta", "loss.gamma", "model.d_model", "model.heads"}
    assert {k: config[k.split(".")[0]][k.split(".")[1]] for k in searched} == {k: best[k] for k in searched}


def test_the_promoted_row_names_the_zoo_carries_its_objective_and_shows_in_results(env, promoted, zoo_copy):
    trials, _ = promoted
    (row,) = trials[trials["status"] == "PROMOTED"].to_dict("records")
    assert row["zoo"] == str(zoo_copy)
    default_objective = 0.5 * row["rec_agreement"] + 0.5 * row["probe_r2"]
    assert row["objective"] == pytest.approx(default_objective)
    shown = wsl(env, "results", "s1", "--top", "3", "--columns", "trial_id,status,objective")
    assert shown.returncode == 0 and "PROMOTED" in shown.stdout


def test_wsl_train_reruns_a_promoted_config_on_the_sweeps_zoo(env, promoted, zoo_copy, tmp_path):
    _, best = promoted
    out = tmp_path / "rerun"
    result = wsl(
        env, "train", "--config", f"promoted/s1-{best['trial_id']}", f"out={out}", "optim.epochs=1", "generate=0"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_run(out, "cpu").cfg.zoo == str(zoo_copy)


def test_promote_keeps_rows_the_sweep_writes_while_it_trains(env, finished, promoted, monkeypatch, tmp_path):
    """The interleaving forced: a trial row lands between promote's read of the table and its write."""
    import wsl.sweep.promote as promote_module

    directory, _ = finished
    late = {"sweep": "s1", "trial_id": "late-trial", "status": "RUNNING"}
    write_yaml = promote_module.write_yaml

    def then_the_sweep_writes(*args, **kwargs):
        path = write_yaml(*args, **kwargs)  # the table was read already; the seeds train next
        table.upsert(directory, table.TRIALS, [late])
        return path

    monkeypatch.setattr(promote_module, "write_yaml", then_the_sweep_writes)
    monkeypatch.setenv("RAY_ADDRESS", "")
    monkeypatch.setenv("HOME", env["HOME"])  # the local Ray started here writes its token there
    before = pd.read_parquet(directory / "trials.parquet")
    worst = before[before["status"].isin(["TERMINATED", "STOPPED"])].sort_values("best_objective").iloc[0]
    sweep = load_yaml(directory / "sweep.yaml", SweepConfig, upgrade)
    try:
        promote_module.promote(sweep, directory, tmp_path, trial=worst["trial_id"], seeds=1, epochs=1)
    finally:
        ray.shutdown()
        reset_auth_token_state()  # the token of this HOME, cached in the process, is no other Ray's
    after = pd.read_parquet(directory / "trials.parquet").set_index("trial_id")["status"]
    assert set(before["trial_id"]) <= set(after.index)
    assert after["late-trial"] == "RUNNING" and after[f"{worst['trial_id']}-promoted"] == "PROMOTED"


def tune_snapshot(directory: Path) -> tuple:
    """Which of Tune's experiment snapshots is in the sweep's storage now: a replaced file has a new inode or
    mtime (the storage writes each file beside its place and renames it over)."""
    states = sorted((directory / "tune").glob("experiment_state-*.json"))
    return (states[-1].stat().st_ino, states[-1].stat().st_mtime_ns) if states else ()


def test_a_killed_driver_resumes_without_losing_finished_trials(env, small_zoo_path):
    """SIGKILL the driver while one trial has finished and the next is mid-run, then ``--resume``.

    Tune's experiment snapshot is taken every step here (TUNE_GLOBAL_CHECKPOINT_S=0, instead of every
    10 s or more), and the kill waits until the snapshot in storage has been replaced twice since the
    trial's row showed its epochs (a snapshot begun after that row holds the trial's checkpoint; one
    begun before may not, and then Tune rightly re-runs the epoch). So the trial that was running must
    continue from its checkpoint: its epochs before the kill are not run again.
    """
    directory = Path(env["WSL_RESULTS"]) / "k1"
    # batches of 4: epochs of several steps, so Tune snapshots a few times within one (a trial's
    # test figures, which once lengthened its last epoch, are no longer computed)
    slow = ["train.optim.batch_size=4"]
    args = tiny(small_zoo_path, "k1", "search.num_samples=4", "search.max_concurrent=1", "scheduler.kind=fifo", *slow)
    args.append("tracking=mlflow")
    driver = subprocess.Popen(
        [*WSL, "sweep", *args],
        env={**env, "TUNE_GLOBAL_CHECKPOINT_S": "0"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    finished, midway, caught, snapshots = pd.DataFrame(), pd.DataFrame(), None, set()
    deadline = time.time() + 300
    while len(snapshots) < 3 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.05)
        trials = table.read_trials(directory)  # one open of each file: the driver replaces them meanwhile
        if trials is None:
            continue
        finished = trials[trials["status"].isin(["TERMINATED", "STOPPED"])]
        midway = trials[(trials["status"] == "RUNNING") & (trials["epochs"] >= 1)]
        now = None if finished.empty or midway.empty else midway[["trial_id", "epochs"]].values.tolist()
        if now != caught:
            caught, snapshots = now, set()
        if caught is not None:
            snapshots.add(tune_snapshot(directory))
    assert driver.poll() is None, "the driver ended before it could be killed mid-trial"
    os.killpg(driver.pid, signal.SIGKILL)
    killed_at = time.time()
    driver.wait()
    assert not finished.empty and not midway.empty, "no trial was mid-run before the deadline"
    result = wsl(env, "sweep", "--resume", "k1")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(directory / "trials.parquet").set_index("trial_id")
    assert (trials.loc[finished["trial_id"], "status"] == finished.set_index("trial_id")["status"]).all()
    (resumed,) = midway["trial_id"]
    assert trials.loc[resumed, "status"] == "TERMINATED" and trials.loc[resumed, "epochs"] == 3
    epochs = pd.read_parquet(directory / "epochs.parquet").query("trial_id == @resumed").set_index("epoch")
    again = epochs.index[epochs["reported_at"] > killed_at]
    assert len(again) >= 1 and again.min() > midway["epochs"].iloc[0]  # continued; nothing re-run from scratch
    client, runs = mlflow_runs(directory)
    assert sorted(r.data.tags["wsl.trial_id"] for r in runs) == sorted(trials.index)  # the resumed one: no second run
    (run,) = [r for r in runs if r.data.tags["wsl.trial_id"] == resumed]
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "objective")) == [1, 2, 3]
    assert run.data.tags["wsl.status"] == "TERMINATED"


def test_a_killed_multi_objective_sweep_resumes_judging_at_the_rungs_the_killed_driver_filled(env, small_zoo_path):
    """SIGKILL a multi-objective sweep's driver once a trial has finished, then ``--resume``.

    Tune saves no scheduler state: ``search.RestoreRungs`` rebuilds the multi-objective ASHA's rungs from the
    epochs table. So each trial that reaches the rung (epoch 1) after the resume is judged against every result
    recorded there before it, the killed driver's included. With this seed the first trial, finished before the
    kill, is ahead of each later one there: the first decision after the resume stops a trial that empty rungs
    would let through unopposed. The kill waits, as in the single-objective test above, until Tune's snapshot
    has been replaced twice since a trial was seen finished, so the restored Tune knows it finished.
    """
    directory = Path(env["WSL_RESULTS"]) / "mk"
    objectives = ["rec_agreement", "probe_r2"]
    args = tiny(small_zoo_path, "mk", "objective=[rec_agreement,probe_r2]", "search.seed=1", "scheduler.max_t=2")
    driver = subprocess.Popen(
        [*WSL, "sweep", *args, "search.max_concurrent=1"],
        env={**env, "TUNE_GLOBAL_CHECKPOINT_S": "0"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    finished, snapshots, deadline = pd.DataFrame(), set(), time.time() + 300
    while len(snapshots) < 3 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.05)
        trials = table.read_trials(directory)
        if finished.empty and trials is not None:
            finished = trials[trials["status"].isin(["TERMINATED", "STOPPED"])]
        if not finished.empty:
            snapshots.add(tune_snapshot(directory))
    assert driver.poll() is None, "the driver ended before it could be killed"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = table.read_epochs(directory)  # what the resumed driver restores the rungs from
    result = wsl(env, "sweep", "--resume", "mk")
    assert result.returncode == 0, result.stderr[-3000:]
    trials, epochs = table.read_trials(directory).set_index("trial_id"), table.read_epochs(directory)
    assert trials["status"].isin(["TERMINATED", "STOPPED"]).sum() == 5
    assert set(trials["status"]) <= {"TERMINATED", "STOPPED", "REPLACED"}
    kept = finished.set_index("trial_id")
    assert trials.loc[kept.index, ["status", "epochs"]].equals(kept[["status", "epochs"]])
    rows = [e[e["trial_id"].isin(kept.index)].set_index(["trial_id", "epoch"]).sort_index() for e in (before, epochs)]
    assert rows[1][["reported_at", *objectives]].equals(rows[0][["reported_at", *objectives]])

    at_rung = before[before["epoch"] == 1]
    arrivals = epochs[(epochs["epoch"] == 1) & ~epochs["trial_id"].isin(at_rung["trial_id"])]
    recorded, expected, taken = at_rung[objectives].to_numpy(), [], []
    for arrival in arrivals.sort_values("reported_at").to_dict("records"):
        new = [arrival[o] for o in objectives]
        expected.append(rung_decision(recorded, new, reduction_factor=2))
        taken.append(bool(trials.loc[arrival["trial_id"], "epochs"] == 2))
        recorded = np.vstack([recorded, new])
    assert expected and not expected[0]  # the first trial at the rung after the resume stops behind the killed driver's
    assert taken == expected

    full = trials[trials["status"] == "TERMINATED"]  # every trial that reached max_t is ranked, by dominance
    assert full["pareto_rank"].notna().all()
    assert (full["pareto_rank"] > 0).tolist() == beaten(full[objectives].to_numpy())
    assert trials.loc[trials["status"] != "TERMINATED", "pareto_rank"].isna().all()


def test_a_resume_from_tune_state_cut_short_names_the_file_instead_of_starting_over(env, finished):
    """A driver killed while Tune copied its state into storage left such a file (before wsl wrote that
    storage atomically); Tune's restore then logged it and started the sweep over on a half-restored state,
    which hung with trials left to run and, on a finished sweep like this one, crashed (exit 1)."""
    copy = Path(env["WSL_RESULTS"]) / "cut"
    shutil.copytree(finished[0], copy)
    saved = yaml.safe_load((copy / "sweep.yaml").read_text())
    (copy / "sweep.yaml").write_text(yaml.safe_dump({**saved, "name": "cut"}))
    (searcher,) = (copy / "tune").glob("searcher-state-*.pkl")
    searcher.write_bytes(searcher.read_bytes()[:100])
    result = wsl(env, "sweep", "--resume", "cut", timeout=120)
    assert result.returncode == 2 and f"{searcher.name} is cut short" in result.stderr, result.stderr[-3000:]


def test_a_sweep_runs_on_an_imported_public_zoo_with_its_data(env, trained_public, tmp_path):  # noqa: F811
    """`wsl zoo import` (the model-zoos layout with its dataset.pt), then `wsl sweep zoo=<it>`: the behavioral
    loss and the reconstruction metrics run on the zoo's own task data, whose task wsl does not ship."""
    src, _, _ = trained_public
    imported = wsl(env, "zoo", "import", str(src), "--out", str(tmp_path / "imported"), "--task", "mnist-like")
    assert imported.returncode == 0, imported.stderr[-3000:]
    result = wsl(env, "sweep", *tiny(tmp_path / "imported", "imp", "search.num_samples=4", "train.optim.batch_size=4"))
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(Path(env["WSL_RESULTS"]) / "imp" / "trials.parquet")
    ran = trials[trials["status"].isin(["TERMINATED", "STOPPED"])]
    assert len(ran) == 4 and ran["rec_acc"].notna().all()
    behavioral = ran[ran["loss.beta"] < 1]
    assert len(behavioral) and behavioral["loss_behav"].notna().all()


@pytest.fixture
def ray_head(env, tmp_path):
    """A Ray head started apart from wsl (`ray start --head`, job server included), as on a cluster.

    Its processes and its clients get a HOME of their own: the head writes its auth token to
    ~/.ray/auth_token, and a test must not touch the user's. Yields the client environment (token
    authentication on, as a cluster's clients need), the head's address and its job server's URL.
    """
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit in 107 bytes
    port, dashboard = "6391", "8391"
    home = tmp_path / "home"
    home.mkdir()
    path = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `wsl` on the PATH, as a node's venv puts it
    head = {**env, "RAY_ADDRESS": "", "HOME": str(home), "RAY_AUTH_MODE": "token", "PATH": path}
    token = subprocess.run([RAY, "get-auth-token", "--generate"], capture_output=True, env=head, timeout=60)
    assert token.returncode == 0, token.stderr  # as on a cluster (cluster/README.md): the token first, then the head
    start = [
        RAY,
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--temp-dir={temp}",
    ]
    started = subprocess.run(start, capture_output=True, text=True, env=head, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        yield head, f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}"
    finally:
        end_processes_with(f"HOME={home}")
        shutil.rmtree(temp, ignore_errors=True)


def end_processes_with(variable: str) -> None:
    """Kills every process whose environment holds ``variable`` (``NAME=value``): a fixture's Ray head, its
    workers and the nodes a test joined to it, all started with a HOME of their own. Not `ray stop --force`,
    which ends every Ray of the user on the machine, sweeps running beside the tests included."""
    for _ in range(3):  # a raylet may start a worker while the others are ended
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if variable.encode() in (proc / "environ").read_bytes().split(b"\0"):
                    os.kill(int(proc.name), signal.SIGKILL)
            except OSError:  # ended meanwhile, or not ours to read
                continue
        time.sleep(0.5)


def test_a_sweep_joins_a_separately_started_ray_cluster(env, small_zoo_path, ray_head):
    client, address, _ = ray_head
    result = wsl(client, "sweep", *tiny(small_zoo_path, "c1", "search.num_samples=2"), "--address", address)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(Path(env["WSL_RESULTS"]) / "c1" / "trials.parquet")
    assert len(trials) == 2 and trials["status"].isin(["TERMINATED", "STOPPED"]).all()


def test_a_sweep_runs_as_a_job_submitted_to_the_cluster(env, small_zoo_path, ray_head):
    """cluster/README.md's `ray job submit --working-dir . -- wsl sweep ...`, against a local head."""
    client, _, jobs = ray_head
    sweep = " ".join(tiny(small_zoo_path, "j1", "search.num_samples=2"))
    command = f"WSL_RESULTS={env['WSL_RESULTS']} WSL_CONFIG_DIR={env['WSL_CONFIG_DIR']} wsl sweep {sweep}"
    submit = [RAY, "job", "submit", "--address", jobs, "--working-dir", str(REPO), "--", "bash", "-c", command]
    result = subprocess.run(submit, capture_output=True, text=True, env=client, cwd=REPO, timeout=600)
    assert result.returncode == 0 and "succeeded" in result.stdout, (result.stdout + result.stderr)[-3000:]
    trials = pd.read_parquet(Path(env["WSL_RESULTS"]) / "j1" / "trials.parquet")
    assert len(trials) == 2 and trials["status"].isin(["TERMINATED", "STOPPED"]).all()
    assert (Path(client["HOME"]) / ".ray" / "auth_token").is_file()  # the head's token went to its own HOME


def test_a_multi_node_cluster_needs_shared_storage(env, small_zoo_path, ray_head):
    client, address, _ = ray_head
    worker = [RAY, "start", f"--address={address}", "--num-cpus=1"]
    joined = subprocess.run(worker, capture_output=True, text=True, env=client, timeout=120)
    assert joined.returncode == 0, joined.stderr
    result = wsl(client, "sweep", *tiny(small_zoo_path, "m1"), "--address", address)
    assert result.returncode != 0 and "storage=" in result.stderr
    assert not (Path(env["WSL_RESULTS"]) / "m1").exists()


def trial_processes(ancestor: int) -> dict[str, int]:
    """Trial id -> pid of the Ray worker process running that Tune trial, among the descendants of process
    ``ancestor`` (a node's raylet, or a driver that started its own Ray). Tune runs each trial in a working
    directory of its own, which the runner names by the trial id."""
    parents, trials = {}, {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if (proc / "cmdline").read_bytes().startswith(b"ray::ImplicitFunc"):
                trials[Path(os.readlink(proc / "cwd")).name] = int(proc.name)
        except OSError:  # ended meanwhile, or not ours to read
            continue

    def descends(pid: int) -> bool:
        while pid in parents and pid != ancestor:
            pid = parents[pid]
        return pid == ancestor

    return {trial: pid for trial, pid in trials.items() if descends(parents.get(pid, 0))}


def checkpointed_epochs(directory: Path, running: int) -> pd.DataFrame | None:
    """The sweep's epoch rows once ``running`` trials are RUNNING and have each recorded a checkpoint, else None."""
    trials = table.read_trials(directory)
    epochs = table.read_epochs(directory)  # read second: a trial RUNNING above has all its rows here
    if trials is None or epochs is None:
        return None
    saved = set(epochs.loc[epochs["checkpoint"].notna(), "trial_id"])
    return epochs if len(saved & set(trials.loc[trials["status"] == "RUNNING", "trial_id"])) >= running else None


def assert_resumed_from_checkpoint(directory: Path, before: pd.DataFrame, trial: str, killed_at: float) -> None:
    """Every epoch row read ``before`` the kill is in the table, and of ``trial``'s epochs reported after
    ``killed_at`` none is one up to the newest checkpoint it had recorded before."""
    after = pd.read_parquet(directory / "epochs.parquet").set_index(["trial_id", "epoch"])
    before = before.set_index(["trial_id", "epoch"])
    assert before.index.isin(after.index).all()
    saved = before.loc[trial].dropna(subset=["checkpoint"]).index.max()
    mine = after.loc[trial]
    again = mine.index[mine["reported_at"] > killed_at]
    assert len(again) >= 1 and again.min() > saved, (saved, mine["reported_at"].to_dict(), killed_at)


@pytest.fixture
def two_nodes(env, monkeypatch):
    """A Ray cluster of two nodes on this machine, a head and a worker of one CPU each, made as Ray's own tests
    make them (``ray.cluster_utils.Cluster``). Its processes get the module's HOME, where a Ray writes its token,
    and a temp dir of their own, away from any other Ray on this machine."""
    monkeypatch.setenv("HOME", env["HOME"])
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit in 107 bytes
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": temp})
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster, worker
    finally:
        cluster.shutdown()
        reset_auth_token_state()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_trial_on_a_lost_node_resumes_from_its_checkpoint_on_another(env, small_zoo_path, two_nodes, tmp_path):
    """Two trials, one on each node; once both have checkpointed an epoch, the worker node dies: its raylet and
    the node's other Ray processes SIGKILLed (a preempted spot instance, an OOM-killed raylet), its trial's
    process gone a second or two later. That trial is retried on the head from the checkpoint it left in the
    shared ``storage=``, and the sweep ends with both trials run to the end."""
    cluster, worker = two_nodes
    directory = Path(env["WSL_RESULTS"]) / "n1"
    args = tiny(small_zoo_path, "n1", "search.num_samples=2", "scheduler.kind=fifo", "scheduler.max_t=12")
    args += ["train.optim.batch_size=4", f"storage={tmp_path / 'shared'}", "max_failures=3"]
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        driver = subprocess.Popen([*WSL, "sweep", *args, "--address", cluster.address], env=env, stdout=out, stderr=out)
    try:
        raylet = worker.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        before, lost, deadline = None, {}, time.time() + 300
        while not lost and time.time() < deadline and driver.poll() is None:
            time.sleep(0.05)
            before = checkpointed_epochs(directory, running=2)
            lost = {} if before is None else trial_processes(raylet)
        assert lost, f"no trial on the worker node had checkpointed while both ran\n{log.read_text()[-3000:]}"
        cluster.remove_node(worker, allow_graceful=False)
        killed_at = time.time()
        assert driver.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        driver.kill()
    trials = pd.read_parquet(directory / "trials.parquet").set_index("trial_id")
    assert (trials["status"] == "TERMINATED").all() and (trials["epochs"] == 12).all()
    (trial,) = lost
    assert trials.loc[trial, "failures"] >= 1 and (trials.drop(index=trial)["failures"] == 0).all()
    assert_resumed_from_checkpoint(directory, before, trial, killed_at)


def test_a_killed_trial_process_is_retried_from_its_checkpoint(env, small_zoo_path, tmp_path):
    """Once a trial has checkpointed an epoch, SIGKILL its worker process alone, as the OOM killer does: the
    trial is retried from that checkpoint, once, and runs to the end."""
    directory = Path(env["WSL_RESULTS"]) / "p1"
    args = tiny(small_zoo_path, "p1", "search.num_samples=1", "scheduler.kind=fifo", "scheduler.max_t=12")
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        driver = subprocess.Popen(
            [*WSL, "sweep", *args, "train.optim.batch_size=4"], env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        before, running, deadline = None, {}, time.time() + 300
        while not running and time.time() < deadline and driver.poll() is None:
            time.sleep(0.05)
            before = checkpointed_epochs(directory, running=1)
            running = {} if before is None else trial_processes(driver.pid)
        assert running, f"the trial never ran with a checkpoint\n{log.read_text()[-3000:]}"
        ((trial, pid),) = running.items()
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        assert driver.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    trials = pd.read_parquet(directory / "trials.parquet").set_index("trial_id")
    assert trials.loc[trial, ["status", "epochs", "failures"]].tolist() == ["TERMINATED", 12, 1]
    assert_resumed_from_checkpoint(directory, before, trial, killed_at)


def test_the_report_of_a_multi_objective_sweep_draws_its_front_and_hypervolume(env, multi):
    result = wsl(env, "report", "mo")
    assert result.returncode == 0, result.stderr[-3000:]
    text = (multi[0] / "report" / "report.html").read_text()
    assert 'id="fig-hypervolume"' in text and "Pareto front: rec_agreement vs probe_r2" in text
