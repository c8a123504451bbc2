"""Tune's sweep storage: files land whole through it, and a state file cut short is named before a resume."""

import json
import pickle

import pyarrow.fs as pafs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsl.errors import WslError
from wsl.sweep.storage import check_state, filesystem


def test_a_file_being_written_to_sweep_storage_leaves_the_old_one_until_closed(tmp_path):
    fs, root = filesystem(str(tmp_path))
    (tmp_path / "checkpoint.pt").write_bytes(b"old")
    stream = fs.open_output_stream(f"{root}/checkpoint.pt")
    stream.write(b"new, and longer")
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"old"  # a kill here keeps a whole file
    stream.close()
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"new, and longer"


def test_tunes_copy_of_a_directory_into_sweep_storage_lands_file_by_file_and_leaves_no_temporaries(tmp_path):
    (tmp_path / "staging" / "trial").mkdir(parents=True)
    (tmp_path / "staging" / "experiment_state.json").write_text("{}")
    (tmp_path / "staging" / "trial" / "result.json").write_text("[1]")
    fs, root = filesystem(str(tmp_path / "sweep"))
    pafs.copy_files(str(tmp_path / "staging"), root, destination_filesystem=fs)  # what Ray's sync does
    files = sorted(p.relative_to(tmp_path / "sweep").as_posix() for p in (tmp_path / "sweep").rglob("*"))
    assert files == ["experiment_state.json", "trial", "trial/result.json"]
    assert (tmp_path / "sweep" / "trial" / "result.json").read_text() == "[1]"


def test_a_copy_within_sweep_storage_replaces_its_destination_whole(tmp_path):
    fs, root = filesystem(str(tmp_path))
    (tmp_path / "a.json").write_text("new")
    (tmp_path / "b.json").write_text("old, and longer")
    fs.copy_file(f"{root}/a.json", f"{root}/b.json")
    assert (tmp_path / "b.json").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == [
        "a.json",
        "b.json",
    ]


@settings(max_examples=25, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=5))
def test_what_is_written_in_chunks_reads_back_the_same(tmp_path_factory, chunks):
    fs, root = filesystem(str(tmp_path_factory.mktemp("s")))
    with fs.open_output_stream(f"{root}/f") as out:
        for chunk in chunks:
            out.write(chunk)
    with fs.open_input_stream(f"{root}/f") as f:
        assert f.readall() == b"".join(chunks)


@pytest.mark.parametrize("name", ["experiment_state", "search_gen_state", "searcher-state"])
def test_a_state_file_copied_while_tune_rewrote_it_does_not_replace_the_whole_one_in_storage(tmp_path, name):
    """Tune rewrites its staging files in place while its uploader may be copying them: a copy can be cut short."""
    staging = write_tune_state(tmp_path / "staging")
    (path,) = staging.glob(f"{name}-*")
    whole = path.read_bytes()
    fs, root = filesystem(str(tmp_path / "sweep"))
    fs.create_dir(root)
    pafs.copy_files(str(staging), root, destination_filesystem=fs)
    path.write_bytes(whole[: len(whole) // 2])
    (staging / "trial.json").write_text("[2]")
    pafs.copy_files(str(staging), root, destination_filesystem=fs)
    assert (tmp_path / "sweep" / path.name).read_bytes() == whole
    assert (tmp_path / "sweep" / "trial.json").read_text() == "[2]"  # the rest of the copy lands
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == sorted(p.name for p in staging.iterdir())


def test_the_storage_filesystem_travels_to_trials_by_pickle_and_still_writes_whole_files(tmp_path):
    fs, root = filesystem(str(tmp_path))
    (tmp_path / "checkpoint.pt").write_bytes(b"old")
    stream = pickle.loads(pickle.dumps(fs)).open_output_stream(f"{root}/checkpoint.pt")  # what a trial gets
    stream.write(b"new")
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"old"
    stream.close()
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"new"


@pytest.mark.parametrize(
    "path, expected",
    [("s3://bucket/wsl/s1", (False, "s3://bucket/wsl/s1")), ("file:///mnt/wsl/s1", (True, "/mnt/wsl/s1"))],
)
def test_object_stores_are_left_to_ray_and_file_uris_become_paths(path, expected):
    fs, storage_path = filesystem(path)
    assert (fs is not None, storage_path) == expected


def write_tune_state(directory):
    """Files named and encoded as Tune writes them; only their being whole matters to the check."""
    directory.mkdir()
    (directory / "experiment_state-2026-12-02_10-00-00.json").write_text(json.dumps({"trial_data": []}))
    (directory / "search_gen_state-2026-12-02_10-00-00.json").write_bytes(pickle.dumps({"counter": 3}))
    (directory / "searcher-state-2026-12-02_10-00-00.pkl").write_bytes(pickle.dumps({"trials": list(range(50))}))
    return directory


def test_whole_tune_state_passes_the_check(tmp_path):
    check_state("s1", str(write_tune_state(tmp_path / "tune")))


@pytest.mark.parametrize("name", ["experiment_state", "search_gen_state", "searcher-state"])
@pytest.mark.parametrize("kept", [0.0, 0.5])
def test_a_state_file_cut_short_is_named_before_a_resume(tmp_path, name, kept):
    directory = write_tune_state(tmp_path / "tune")
    (path,) = directory.glob(f"{name}-*")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(WslError, match=f"{path.name} is cut short.*search.warm_start=s1"):
        check_state("s1", str(directory))


def test_only_the_newest_state_file_of_a_kind_is_what_tune_restores(tmp_path):
    directory = write_tune_state(tmp_path / "tune")
    (directory / "searcher-state-2026-12-01_09-00-00.pkl").write_bytes(b"")  # an earlier session's, unused
    check_state("s1", str(directory))
