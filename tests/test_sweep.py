"""Sweeps end to end, driven through the ``wsl`` command on a real local Ray: Optuna + ASHA, the
results table, a crashing trial, a killed driver and its resume, promotion, and joining a cluster."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pandas as pd
import pytest

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
    root = tmp_path_factory.mktemp("sweeps")
    shutil.copytree(REPO / "sweeps", root / "configs")
    return {
        **os.environ,
        "WSL_RESULTS": str(root / "results"),
        "WSL_CONFIG_DIR": str(root / "configs"),
        "RAY_ADDRESS": "",
    }


def wsl(env, *args, timeout=600):
    return subprocess.run([*WSL, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def finished(env, small_zoo_path):
    """One real sweep whose space holds a clash no single value shows: 8 heads do not divide d_model=36.

    One trial at a time, so the order trials reach ASHA's rungs does not race. With this seed TPE's
    random start draws d_model 36 with 8 heads for its third trial, after the two seeded points, and
    ASHA stops two of the four others at epoch 1, every run.
    """
    clash = ["+space.model.d_model={choices:[32,36]}", "+space.model.heads={choices:[4,8]}"]
    sequential = ["search.seed=3", "search.max_concurrent=1"]
    result = wsl(env, "sweep", *tiny(small_zoo_path, "s1", *clash, *sequential))
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
    assert (trials["status"] == "TERMINATED").any()


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


def test_optuna_dashboard_shows_the_study_with_its_pruned_trials(finished):
    """What `optuna-dashboard results/NAME/optuna.journal` serves, asked through its WSGI app."""
    from optuna_dashboard import wsgi

    directory, _ = finished
    app = wsgi(study_storage(directory / "optuna.journal"))

    def get(path):
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        return json.loads(b"".join(app(environ, lambda status, headers, *exc: None)))

    (study,) = get("/api/studies")["study_summaries"]
    states = [t["state"] for t in get(f"/api/studies/{study['study_id']}")["trials"]]
    stopped = (pd.read_parquet(directory / "trials.parquet")["status"] == "STOPPED").sum()
    assert study["study_name"] == "s1" and states.count("Pruned") == stopped


def test_the_live_view_prints_trial_events_not_tune_boxes(finished):
    _, result = finished
    events = [line for line in result.stdout.splitlines() if " | best " in line]
    assert sum(" started " in line for line in events) >= 5 and any(" failed " in line for line in events)
    assert "Configuration for experiment" not in result.stdout and "Trial status" not in result.stdout


def test_results_prints_the_top_trials(env, finished):
    result = wsl(env, "results", "s1", "--where", "status == 'TERMINATED' and beta <= 1", "--columns", "trial_id,beta")
    assert result.returncode == 0, result.stderr
    assert "TERMINATED" not in result.stdout and "beta" in result.stdout


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
    ],
)
def test_bad_input_fails_before_anything_is_written(env, small_zoo_path, override, message):
    result = wsl(env, "sweep", *tiny(small_zoo_path, "bad"), override)
    assert result.returncode == 2 and message in result.stderr
    assert not (Path(env["WSL_RESULTS"]) / "bad").exists()


def test_promote_runs_the_best_trial_over_seeds_and_links_back(env, finished):
    directory, _ = finished
    result = wsl(env, "promote", "s1", "--seeds", "2", "--epochs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(directory / "trials.parquet")
    (row,) = trials[trials["status"] == "PROMOTED"].to_dict("records")
    best = trials[trials["status"].isin(["TERMINATED", "STOPPED"])].sort_values("best_objective").iloc[-1]
    assert row["source_trial"] == best["trial_id"] and row["seeds"] == 2 and row["rec_acc_ratio_std"] >= 0
    config = Path(env["WSL_CONFIG_DIR"]) / "promoted" / f"s1-{best['trial_id']}.yaml"
    assert config.read_text() == (directory / "promoted" / best["trial_id"] / "config.yaml").read_text()
    models = pd.read_parquet(directory / "promoted" / best["trial_id"] / "models.parquet")
    assert set(models["seed"]) == {0, 1} and {"test_acc", "rec_acc", "emb_x", "emb_y"} <= set(models.columns)


def test_a_killed_driver_resumes_without_losing_finished_trials(env, small_zoo_path):
    directory = Path(env["WSL_RESULTS"]) / "k1"
    args = tiny(small_zoo_path, "k1", "search.num_samples=4", "search.max_concurrent=1")
    driver = subprocess.Popen(
        [*WSL, "sweep", *args], env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    finished = pd.DataFrame()
    deadline = time.time() + 300
    while finished.empty and time.time() < deadline:
        time.sleep(0.5)
        if (directory / "trials.parquet").is_file():
            trials = pd.read_parquet(directory / "trials.parquet")
            finished = trials[trials["status"].isin(["TERMINATED", "STOPPED"])]
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not finished.empty, "no trial finished before the deadline"
    result = wsl(env, "sweep", "--resume", "k1")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(directory / "trials.parquet")
    assert set(finished["trial_id"]) <= set(trials.loc[trials["status"].isin(["TERMINATED", "STOPPED"]), "trial_id"])
    assert (trials["status"].isin(["TERMINATED", "STOPPED"])).sum() >= 4


@pytest.fixture
def ray_head(env):
    """A Ray head started apart from wsl (`ray start --head`), as on a cluster; stopped afterwards."""
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit in 107 bytes
    port = "6391"
    head = {**env, "RAY_ADDRESS": ""}
    start = [
        RAY,
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        f"--temp-dir={temp}",
    ]
    started = subprocess.run(start, capture_output=True, text=True, env=head, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=head, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_sweep_joins_a_separately_started_ray_cluster(env, small_zoo_path, ray_head):
    client = {**env, "RAY_AUTH_MODE": "token"}  # the head made ~/.ray/auth_token; an explicit address needs this
    result = wsl(client, "sweep", *tiny(small_zoo_path, "c1", "search.num_samples=2"), "--address", ray_head)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(Path(env["WSL_RESULTS"]) / "c1" / "trials.parquet")
    assert len(trials) == 2 and trials["status"].isin(["TERMINATED", "STOPPED"]).all()


def test_a_multi_node_cluster_needs_shared_storage(env, small_zoo_path, ray_head):
    client = {**env, "RAY_AUTH_MODE": "token"}
    worker = [RAY, "start", f"--address={ray_head}", "--num-cpus=1"]
    joined = subprocess.run(worker, capture_output=True, text=True, env=client, timeout=120)
    assert joined.returncode == 0, joined.stderr
    result = wsl(client, "sweep", *tiny(small_zoo_path, "m1"), "--address", ray_head)
    assert result.returncode != 0 and "storage=" in result.stderr
    assert not (Path(env["WSL_RESULTS"]) / "m1").exists()
