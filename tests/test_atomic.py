"""Atomic writes: the whole new version or the old one, with the user's permissions, and nothing of others'."""

import os

import pytest

from wsl.atomic import ReplacingFile, new_dir, swap_dir, write_file, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    write_text(tmp_path / "a.txt", "old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_file(tmp_path / "a.txt", fail)
    assert (tmp_path / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_a_new_directory_appears_whole_or_not_at_all(tmp_path):
    with pytest.raises(RuntimeError), new_dir(tmp_path / "zoo") as tmp:
        (tmp / "part").write_text("x")
        raise RuntimeError("crash")
    assert os.listdir(tmp_path) == []


def test_a_new_directory_never_replaces_one_that_exists(tmp_path):
    (tmp_path / "zoo").mkdir()  # empty: os.rename alone would silently replace it
    with pytest.raises(FileExistsError), new_dir(tmp_path / "zoo"):
        pass


def test_a_swapped_directory_is_a_link_to_the_newest_version_only(tmp_path):
    swap_dir(tmp_path / "report", lambda d: (d / "page.html").write_text("one"))
    swap_dir(tmp_path / "report", lambda d: (d / "page.html").write_text("two"))
    assert (tmp_path / "report").is_symlink() and (tmp_path / "report" / "page.html").read_text() == "two"
    assert len(os.listdir(tmp_path)) == 2  # the link and the version it points to


def test_a_real_directory_of_an_older_version_is_replaced(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "page.html").write_text("old")
    swap_dir(tmp_path / "report", lambda d: (d / "page.html").write_text("new"))
    assert (tmp_path / "report" / "page.html").read_text() == "new" and len(os.listdir(tmp_path)) == 2


def test_a_failed_swap_keeps_the_old_directory_in_place(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "page.html").write_text("old")

    def fail(d):
        raise RuntimeError("no browser")

    with pytest.raises(RuntimeError):
        swap_dir(tmp_path / "report", fail)
    assert (tmp_path / "report" / "page.html").read_text() == "old" and os.listdir(tmp_path) == ["report"]


def test_a_link_the_user_pointed_elsewhere_is_replaced_but_its_target_kept(tmp_path):
    elsewhere = tmp_path / "www"
    elsewhere.mkdir()
    (elsewhere / "index.html").write_text("theirs")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "report").symlink_to(elsewhere)
    swap_dir(tmp_path / "sweep" / "report", lambda d: (d / "page.html").write_text("new"))
    assert (elsewhere / "index.html").read_text() == "theirs"


def test_a_replacing_file_dropped_unclosed_leaves_the_old_file(tmp_path):
    write_text(tmp_path / "a.txt", "old")
    stream = ReplacingFile(tmp_path / "a.txt")
    stream.write(b"half")
    del stream  # a writer that failed: nothing closes it
    assert (tmp_path / "a.txt").read_text() == "old"


def test_a_replacing_file_whose_content_is_refused_leaves_the_old_file_and_no_temporary(tmp_path):
    write_text(tmp_path / "a.txt", "old")
    stream = ReplacingFile(tmp_path / "a.txt", keep=lambda tmp: tmp.read_bytes() != b"half")
    stream.write(b"half")
    stream.close()
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"
