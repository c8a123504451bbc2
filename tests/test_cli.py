"""Drive the ``wsl`` command as a user would: real subprocesses, real files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

WSL = [sys.executable, "-m", "wsl.cli"]
SMALL = ["models=6", "epochs=1", "checkpoints=[0,1]"]


def wsl(*args, cwd=None):
    return subprocess.run([*WSL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_zoo_make_writes_a_zoo_and_prints_its_summary(tmp_path):
    out = tmp_path / "z"
    result = wsl("zoo", "make", *SMALL, f"out={out}")
    assert result.returncode == 0, result.stderr
    assert {"zoo.json", "models.parquet", "weights.safetensors"} <= {p.name for p in out.iterdir()}
    assert "test_acc" in result.stdout and "checkpoints" in result.stdout
    assert json.loads((out / "zoo.json").read_text())["task"] == "digits"


def test_zoo_make_again_with_the_same_config_does_nothing(tmp_path):
    out = tmp_path / "z"
    assert wsl("zoo", "make", *SMALL, f"out={out}").returncode == 0
    again = wsl("zoo", "make", *SMALL, f"out={out}")
    assert again.returncode == 0 and "built already" in again.stdout


def test_zoo_make_into_an_existing_zoo_with_another_config_fails(tmp_path):
    out = tmp_path / "z"
    assert wsl("zoo", "make", *SMALL, f"out={out}").returncode == 0
    other = wsl("zoo", "make", *SMALL, "seed=1", f"out={out}")
    assert other.returncode == 2 and "another config" in other.stderr


@pytest.mark.parametrize(
    "override, named",
    [
        ("task=mnist", "task"),
        ("arch=resnet", "resnet"),
        ("modles=5", "modles"),
        ("models=many", "models"),
        ("space.lr=[0.1,0.001]", "space.lr"),
        ("checkpoints=[0,5]", "checkpoints"),
    ],
)
def test_bad_zoo_config_is_one_clear_error_and_writes_nothing(tmp_path, override, named):
    out = tmp_path / "z"
    result = wsl("zoo", "make", *SMALL, f"out={out}", override)
    assert result.returncode == 2
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_zoo_info_of_a_missing_directory_names_it(tmp_path):
    result = wsl("zoo", "info", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "nowhere" in result.stderr


def test_zoo_info_prints_the_summary(small_zoo_path):
    result = wsl("zoo", "info", str(small_zoo_path))
    assert result.returncode == 0 and "small" in result.stdout and "1568" in result.stdout


def test_train_writes_checkpoint_epoch_table_and_final_metrics(small_zoo_path, tmp_path):
    args = [
        f"zoo={small_zoo_path}",
        f"out={tmp_path / 'run'}",
        "optim.epochs=1",
        "model.d_model=16",
        "model.heads=2",
        "model.layers=1",
        "loss.probe_size=16",
        "generate=2",
        "device=cpu",
    ]
    result = wsl("train", *args)
    assert result.returncode == 0, result.stderr
    assert {"checkpoint.pt", "epochs.parquet", "final.json"} <= {p.name for p in (tmp_path / "run").iterdir()}
    again = wsl("train", *args)
    assert again.returncode == 2 and "--resume" in again.stderr


@pytest.mark.parametrize("override", ["loss.beta=1.5", "tokens.width=0", "loss.probe_size=0", "loss.gama=0.1"])
def test_bad_train_config_is_named_before_anything_runs(tmp_path, override):
    result = wsl("train", f"out={tmp_path / 'run'}", override)
    assert result.returncode == 2
    assert override.split("=")[0] in result.stderr
    assert not Path(tmp_path / "run").exists()


def test_zoo_import_converts_a_public_layout_zoo(tmp_path):
    from test_importer import small_zoo

    small_zoo(tmp_path / "public")
    result = wsl("zoo", "import", str(tmp_path / "public"), "--out", str(tmp_path / "imported"), "--task", "mnist")
    assert result.returncode == 0, result.stderr
    assert "mnist" in result.stdout
    assert wsl("zoo", "info", str(tmp_path / "imported")).returncode == 0


def test_zoo_import_of_a_bad_checkpoint_fails_naming_it_and_writes_nothing(tmp_path):
    from test_importer import nan_net, small_zoo

    bad = small_zoo(tmp_path / "public", bad=nan_net())
    result = wsl("zoo", "import", str(tmp_path / "public"), "--out", str(tmp_path / "z"), "--nonfinite", "fail")
    assert result.returncode == 2 and str(bad.parent.name) in result.stderr
    assert not (tmp_path / "z").exists()


@pytest.mark.parametrize("command", [["sweep", "--resume"], ["promote"]])
def test_a_sweep_that_is_not_there_is_named_with_the_sweeps_that_are(tmp_path, command):
    (tmp_path / "results" / "other").mkdir(parents=True)
    result = wsl(*command, "st13", cwd=tmp_path)
    assert result.returncode == 2
    assert "no sweep is named 'st13'" in result.stderr and "sweeps there: other" in result.stderr


def test_a_sweep_killed_before_it_saved_its_config_says_to_start_it_anew(tmp_path):
    (tmp_path / "results" / "st13").mkdir(parents=True)
    result = wsl("sweep", "--resume", "st13", cwd=tmp_path)
    assert result.returncode == 2 and "stopped before it began" in result.stderr and "remove" in result.stderr


def test_a_sweep_of_an_earlier_wsl_is_not_resumed_into_a_table_of_other_figures(tmp_path):
    """Version 2 recorded test-split figures; a resume would append validation figures under the same names."""
    (tmp_path / "results" / "old").mkdir(parents=True)
    (tmp_path / "results" / "old" / "sweep.yaml").write_text("version: 2\nname: old\n")
    result = wsl("sweep", "--resume", "old", cwd=tmp_path)
    assert result.returncode == 2 and "version 2" in result.stderr and "start a new sweep" in result.stderr
    assert sorted(p.name for p in (tmp_path / "results" / "old").iterdir()) == ["sweep.yaml"]
