"""The results table's contract: rows are upserted under a lock that holds across processes, and land whole."""

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest.mock import patch

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsl import table
from wsl.errors import WslError

# A writer that reads the table, holds the lock until told, then writes what it read plus its own row: without
# the lock, a row written by someone else meanwhile would be lost.
STALE_WRITER = """
import sys
from pathlib import Path
import pandas as pd
from wsl import table
directory = Path(sys.argv[1])
path = directory / table.TRIALS
with table.locked(directory):
    old = table.read(path) if path.is_file() else pd.DataFrame()
    print("locked", flush=True)
    sys.stdin.readline()
    table.write(path, pd.concat([old, pd.DataFrame([{"trial_id": "sweep-row", "status": "RUNNING"}])]))
"""


def rows(path):
    return table.read(path).set_index("trial_id")["status"].to_dict()


def test_upsert_replaces_rows_with_the_same_key_and_keeps_the_others(tmp_path):
    table.upsert(
        tmp_path, table.TRIALS, [{"trial_id": "a", "status": "RUNNING"}, {"trial_id": "b", "status": "RUNNING"}]
    )
    table.upsert(tmp_path, table.TRIALS, [{"trial_id": "a", "status": "TERMINATED"}, {"trial_id": "c", "status": "X"}])
    frame = table.read(tmp_path / table.TRIALS)
    assert list(frame["trial_id"]) == ["a", "b", "c"]  # a row keeps its place
    assert list(frame["status"]) == ["TERMINATED", "RUNNING", "X"]


def test_epoch_rows_are_keyed_by_trial_and_epoch_and_sorted(tmp_path):
    table.upsert(tmp_path, table.EPOCHS, [{"trial_id": "b", "epoch": 1, "loss": 1.0}])
    table.upsert(
        tmp_path, table.EPOCHS, [{"trial_id": "a", "epoch": 2, "loss": 2.0}, {"trial_id": "b", "epoch": 1, "loss": 3.0}]
    )
    frame = table.read(tmp_path / table.EPOCHS)
    assert list(zip(frame["trial_id"], frame["epoch"], frame["loss"], strict=True)) == [("a", 2, 2.0), ("b", 1, 3.0)]


def test_a_table_file_gets_the_users_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        table.write(tmp_path / table.TRIALS, [{"trial_id": "a"}])
    finally:
        os.umask(old)
    assert (tmp_path / table.TRIALS).stat().st_mode & 0o777 == 0o644


def test_the_lock_holds_across_processes_and_no_row_is_lost(tmp_path):
    """Another process (a sweep's driver) holds the lock mid read-modify-write; an upsert here waits for it."""
    writer = subprocess.Popen(
        [sys.executable, "-c", STALE_WRITER, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "locked"
        promoted = [{"trial_id": "promoted-row", "status": "PROMOTED"}]
        mine = threading.Thread(target=table.upsert, args=(tmp_path, table.TRIALS, promoted))
        mine.start()
        time.sleep(0.5)
        assert mine.is_alive(), "the upsert did not wait for the other process's lock"
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.wait(timeout=30) == 0
        mine.join(timeout=30)
        assert not mine.is_alive()
    finally:
        writer.kill()
    assert rows(tmp_path / table.TRIALS) == {"sweep-row": "RUNNING", "promoted-row": "PROMOTED"}


@pytest.mark.parametrize("name", ["a/b", "a\n", "", "-a", "a b"])
def test_a_sweep_name_must_be_a_plain_directory_name(name):
    with pytest.raises(WslError, match="plain identifier"):
        table.check_name(name)


def test_the_stopped_early_rule_is_epochs_below_max_t():
    assert [table.end_status(e, 3) for e in (1, 2, 3)] == [table.STOPPED, table.STOPPED, table.TERMINATED]


def test_an_unreadable_table_is_named(tmp_path):
    (tmp_path / table.TRIALS).write_text("not parquet")
    with pytest.raises(WslError, match="cannot read .*trials.parquet"):
        table.read(tmp_path / table.TRIALS)


def test_a_table_is_read_from_an_arrow_file_not_from_python_memory(tmp_path, monkeypatch):
    """Arrow may free its reader on a worker thread after the read returns; Python bytes freed there while the
    interpreter exits abort the process (SIGABRT, apache/arrow#33975). Read from bytes, 5-15% of processes that
    read a table and exited aborted (``wsl results`` in CI); from an ``OSFile``, none of 1,200."""
    sources = []
    read_parquet = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda source, **kw: sources.append(source) or read_parquet(source, **kw))
    path = tmp_path / table.TRIALS
    table.write(path, [{"trial_id": "a"}])
    assert table.read(path)["trial_id"].tolist() == ["a"]
    (source,) = sources
    assert isinstance(source, pa.OSFile)


def test_reading_a_table_adds_the_sweep_column_from_its_directory(tmp_path):
    pd.DataFrame({"trial_id": ["a"]}).to_parquet(tmp_path / table.TRIALS)
    assert table.read(tmp_path / table.TRIALS)["sweep"].tolist() == [tmp_path.name]


def test_a_column_of_numbers_and_words_is_kept_as_text(tmp_path):
    """A sweep over ``tokens.width: {choices: [32, row]}`` has such a column."""
    table.write(
        tmp_path / table.TRIALS, [{"trial_id": "a", "tokens.width": 32}, {"trial_id": "b", "tokens.width": "row"}]
    )
    assert table.read(tmp_path / table.TRIALS)["tokens.width"].tolist() == ["32", "row"]


def test_missing_cells_of_a_mixed_column_stay_missing(tmp_path):
    """A column of several types is stored as text; its missing cells must not become the text "None"/"nan"."""
    table.write(tmp_path / "t.parquet", [{"tokens.width": 32}, {"tokens.width": "row"}, {"tokens.width": None}])
    back = table.read(tmp_path / "t.parquet")["tokens.width"]
    assert back.tolist()[:2] == ["32", "row"] and back.isna().tolist() == [False, False, True]


@settings(max_examples=25, deadline=None)
@given(reports=st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 4), st.floats(0, 1)), max_size=30))
def test_appended_epoch_rows_read_back_newest_per_key_before_and_after_the_fold(reports):
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name) / "s"
        table.write(directory / table.EPOCHS, [{"sweep": "s", "trial_id": "a", "epoch": 1, "objective": -1.0}])
        appender = table.Appender(directory, table.EPOCHS)
        with patch.object(table, "PART_ROWS", 4):  # several parts, the newest rewritten
            for trial, epoch, value in reports:
                appender.append({"sweep": "s", "trial_id": trial, "epoch": epoch, "objective": value})
        expected = {("a", 1): -1.0} | {(t, e): v for t, e, v in reports}
        for fold in (False, True):
            if fold:
                table.fold(directory, table.EPOCHS)
                assert not (directory / table.PARTS[table.EPOCHS]).exists()
            rows = table.read_epochs(directory)
            assert dict(zip(zip(rows["trial_id"], rows["epoch"]), rows["objective"])) == expected
            assert list(zip(rows["trial_id"], rows["epoch"])) == sorted(expected)


def test_a_new_appender_never_rewrites_a_part_written_before_it(tmp_path):
    first = table.Appender(tmp_path, table.EPOCHS)
    first.append({"sweep": "s", "trial_id": "a", "epoch": 1})
    table.Appender(tmp_path, table.EPOCHS).append({"sweep": "s", "trial_id": "a", "epoch": 2})
    assert sorted(p.name for p in (tmp_path / table.PARTS[table.EPOCHS]).iterdir()) == [
        "00000000.parquet",
        "00000001.parquet",
    ]
    assert table.read_epochs(tmp_path)["epoch"].tolist() == [1, 2]


def test_a_row_appended_again_replaces_its_earlier_version_in_the_newest_part(tmp_path):
    appender = table.Appender(tmp_path, table.EPOCHS)
    for epoch, checkpoint in ((1, None), (1, "c1"), (2, None), (2, "c2")):  # a result, then Tune's checkpoint
        appender.append({"sweep": "s", "trial_id": "a", "epoch": epoch, "checkpoint": checkpoint})
    part = pq.read_table(tmp_path / table.PARTS[table.EPOCHS] / "00000000.parquet")
    assert part.to_pydict()["checkpoint"] == ["c1", "c2"]


def test_a_running_trials_row_is_read_as_of_its_newest_epoch(tmp_path):
    table.write(
        tmp_path / table.TRIALS,
        [
            {"sweep": "s", "trial_id": "run", "status": table.RUNNING, "epochs": 0, "objective": None},
            {"sweep": "s", "trial_id": "done", "status": table.TERMINATED, "epochs": 1, "objective": 0.5},
        ],
    )
    appender = table.Appender(tmp_path, table.EPOCHS)
    for trial, epoch, value in (("run", 1, 0.7), ("run", 2, 0.6), ("done", 1, 0.9)):
        appender.append({"sweep": "s", "trial_id": trial, "epoch": epoch, "objective": value, "checkpoint": "c"})
    rows = table.read_trials(tmp_path).set_index("trial_id")
    assert rows.loc["run", ["epochs", "objective", "best_objective", "checkpoint"]].tolist() == [2, 0.6, 0.7, "c"]
    assert rows.loc["done", ["epochs", "objective"]].tolist() == [1, 0.5]  # an ended trial's row is as written


def test_a_part_keeps_every_column_of_its_rows_and_a_column_of_numbers_and_words(tmp_path):
    appender = table.Appender(tmp_path, table.TRIALS)
    for row in ({"trial_id": "a", "tokens.width": 32}, {"trial_id": "b", "tokens.width": "row", "error": "x"}):
        appender.append({"sweep": "s", "status": table.TERMINATED, **row})
    rows = table.read_trials(tmp_path)
    assert rows[["trial_id", "tokens.width", "error"]].fillna("-").values.tolist() == [
        ["a", "32", "-"],
        ["b", "row", "x"],
    ]
