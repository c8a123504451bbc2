"""The Tune callback that records a sweep: what a resumed sweep's table says of trials the dead driver left.

The killed-driver test in test_sweep.py drives the real thing; the case here (a trial started just before
the kill, unknown to Tune's last snapshot) cannot be forced there, so the callback is driven as Tune
drives it on resume: ``setup``, then ``on_step_begin`` with the trials Tune restored.
"""

from collections import namedtuple

import pytest
from ray.tune import Checkpoint

from wsl import table
from wsl.sweep.recorder import TableRecorder, last_line

Restored = namedtuple("Restored", "trial_id")  # what on_step_begin reads of Tune's restored trials


def resumed(tmp_path, trials: list[dict], epochs: list[dict]) -> TableRecorder:
    table.write(tmp_path / table.TRIALS, trials)
    table.write(tmp_path / table.EPOCHS, epochs)
    recorder = TableRecorder(tmp_path, "s", {}, max_t=3)
    recorder.setup()
    return recorder


def statuses(tmp_path) -> dict[str, str]:
    return table.read_trials(tmp_path).set_index("trial_id")["status"].to_dict()


def test_a_running_trial_unknown_to_the_restored_tune_and_without_an_epoch_is_replaced(tmp_path):
    rows = [
        {"sweep": "s", "trial_id": "done", "status": table.TERMINATED, "epochs": 3},
        {"sweep": "s", "trial_id": "resumes", "status": table.RUNNING, "epochs": 1},
        {"sweep": "s", "trial_id": "never-ran", "status": table.RUNNING, "epochs": 0},
        {"sweep": "s", "trial_id": "s-promoted", "status": table.PROMOTED, "epochs": 3},
    ]
    epochs = [
        {"sweep": "s", "trial_id": t, "epoch": e} for t, n in (("done", 3), ("resumes", 1)) for e in range(1, n + 1)
    ]
    recorder = resumed(tmp_path, rows, epochs)
    recorder.on_step_begin(iteration=0, trials=[Restored("resumes")])
    assert statuses(tmp_path) == {
        "done": table.TERMINATED,
        "resumes": table.INTERRUPTED,  # until Tune starts it again (then RUNNING)
        "never-ran": table.REPLACED,
        "s-promoted": table.PROMOTED,
    }


def test_a_trial_that_ran_epochs_but_is_unknown_to_tune_stays_interrupted(tmp_path):
    rows = [{"sweep": "s", "trial_id": "lost", "status": table.RUNNING, "epochs": 2}]
    epochs = [{"sweep": "s", "trial_id": "lost", "epoch": e} for e in (1, 2)]
    recorder = resumed(tmp_path, rows, epochs)
    recorder.on_step_begin(iteration=0, trials=[])
    assert statuses(tmp_path) == {"lost": table.INTERRUPTED}


def test_only_the_first_step_after_resume_decides(tmp_path):
    recorder = resumed(tmp_path, [{"sweep": "s", "trial_id": "a", "status": table.RUNNING, "epochs": 0}], [])
    recorder.on_step_begin(iteration=0, trials=[Restored("a")])
    recorder.on_step_begin(iteration=1, trials=[])  # later steps list new trials only as they start
    assert statuses(tmp_path) == {"a": table.INTERRUPTED}


def test_an_empty_error_file_gives_no_error_line(tmp_path):
    (tmp_path / "error.txt").write_text("\n  \n")
    assert last_line(str(tmp_path / "error.txt")) is None


def test_the_error_line_is_the_last_non_empty_line(tmp_path):
    (tmp_path / "error.txt").write_text("Traceback ...\nWslError: model.d_model=36\n\n")
    assert last_line(str(tmp_path / "error.txt")) == "WslError: model.d_model=36"


class Trial:
    """What the recorder reads of a Tune trial."""

    def __init__(self, trial_id: str):
        self.trial_id, self.config, self.num_failures = trial_id, {"loss": {"beta": 0.5}}, 0
        self.checkpoint, self.last_result, self.error_file = None, {}, None


def test_a_running_trial_reads_as_of_its_last_epoch_and_names_the_checkpoint_saved_after_it(tmp_path):
    recorder = TableRecorder(tmp_path, "s", {"loss.beta": 1.0}, max_t=3)
    recorder.setup()
    trial = Trial("t")
    recorder.on_trial_start(iteration=0, trials=[trial], trial=trial)
    for epoch in (1, 2):
        result = {"epoch": epoch, "training_iteration": epoch, "objective": epoch / 10, "time_total_s": 3.0 * epoch}
        recorder.on_trial_result(iteration=epoch, trials=[trial], trial=trial, result=result)
        saved = Checkpoint.from_directory(tmp_path / f"ckpt{epoch}")
        recorder.on_checkpoint(iteration=epoch, trials=[trial], trial=trial, checkpoint=saved)
    row = table.read_trials(tmp_path).set_index("trial_id").loc["t"]
    assert (row["status"], row["epochs"], row["objective"], row["wall_time_s"]) == (table.RUNNING, 2, 0.2, 6.0)
    assert (row["checkpoint"], row["loss.beta"]) == (str(tmp_path / "ckpt2"), 0.5)


def test_a_sweeps_end_folds_its_epoch_rows_into_one_table(tmp_path):
    recorder = TableRecorder(tmp_path, "s", {}, max_t=1)
    recorder.setup()
    trial = Trial("t")
    recorder.on_trial_result(iteration=1, trials=[trial], trial=trial, result={"epoch": 1, "objective": 0.4})
    recorder.on_experiment_end(trials=[trial])
    assert not (tmp_path / table.PARTS[table.EPOCHS]).exists()
    assert table.read(tmp_path / table.EPOCHS)[["trial_id", "epoch", "objective"]].values.tolist() == [["t", 1, 0.4]]


def test_a_failure_tune_retries_counts_in_the_row_before_the_retry_starts(tmp_path):
    """A trial whose node was lost waits for room on the cluster before its retry starts (on_trial_start)."""
    recorder = TableRecorder(tmp_path, "s", {}, max_t=3)
    recorder.setup()
    trial = Trial("t")
    recorder.on_trial_start(iteration=0, trials=[trial], trial=trial)
    recorder.on_trial_result(iteration=1, trials=[trial], trial=trial, result={"epoch": 1, "objective": 0.4})
    trial.num_failures = 1  # Tune counts the failure, then tells the callbacks it will retry the trial
    recorder.on_trial_recover(iteration=2, trials=[trial], trial=trial)
    row = table.read_trials(tmp_path).set_index("trial_id").loc["t"]
    assert (row["status"], row["epochs"], row["failures"]) == (table.RUNNING, 1, 1)


def finish(recorder: TableRecorder, trial_id: str, epochs: int, agreement: float, r2: float) -> None:
    trial = Trial(trial_id)
    recorder.on_trial_start(iteration=0, trials=[trial], trial=trial)
    result = {"epoch": epochs, "training_iteration": epochs, "rec_agreement": agreement, "probe_r2": r2}
    recorder.on_trial_result(iteration=epochs, trials=[trial], trial=trial, result=result)
    trial.last_result = result
    recorder.on_trial_complete(iteration=epochs, trials=[trial], trial=trial)


def test_a_multi_objective_sweep_keeps_each_full_trials_pareto_rank_current(tmp_path):
    recorder = TableRecorder(tmp_path, "s", {}, max_t=3, objectives=("rec_agreement", "probe_r2"))
    recorder.setup()
    finish(recorder, "a", 3, 0.8, 0.2)
    finish(recorder, "b", 3, 0.6, 0.1)  # a dominates b
    finish(recorder, "stopped", 1, 0.9, 0.9)  # stopped at a rung: not comparable, no rank
    assert table.read_trials(tmp_path).set_index("trial_id")["pareto_rank"].to_dict() == pytest.approx(
        {"a": 0, "b": 1, "stopped": float("nan")}, nan_ok=True
    )
    finish(recorder, "c", 3, 0.9, 0.3)  # c dominates both: every rank moves
    ranks = table.read_trials(tmp_path).set_index("trial_id")["pareto_rank"]
    assert ranks[["a", "b", "c"]].tolist() == [1, 2, 0]
