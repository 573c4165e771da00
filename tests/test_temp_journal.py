"""The journal of temporary files in flight, and the sweep of a crash's leftovers at start."""

from __future__ import annotations

import json
import os

from octyne_flask.files.temp_journal import TemporaryJournal, journal_path


def listed(path) -> list:
    return json.loads(open(path).read())


def test_the_journal_lives_beside_its_config_one_per_config_file(tmp_path):
    assert journal_path(str(tmp_path / "config.json")) == str(tmp_path / ".config.json.temporaries")
    assert journal_path(str(tmp_path / "other.json")) != journal_path(str(tmp_path / "config.json"))


def test_a_temporary_is_listed_while_it_is_written_and_unlisted_after(tmp_path):
    path = tmp_path / ".config.json.temporaries"
    journal = TemporaryJournal(str(path))
    (tmp_path / "server").mkdir()
    folder = os.open(tmp_path / "server", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with journal.recorded(folder, ".octyne-archive-1"):
            assert listed(path) == [str(tmp_path / "server" / ".octyne-archive-1")]
    finally:
        os.close(folder)
    assert listed(path) == []


def test_sweep_removes_only_listed_leftovers_of_ours_then_empties_the_journal(tmp_path):
    server, outside = tmp_path / "server", tmp_path / "outside"
    (server / ".octyne-copy-2" / "inner").mkdir(parents=True)
    (server / ".octyne-copy-2" / "inner" / "x").write_text("partial copy")
    (server / ".octyne-upload-1").write_text("partial upload")
    (server / "keep.txt").write_text("not a temporary")
    outside.mkdir()
    (outside / ".octyne-archive-3").write_text("reached through a link")
    os.symlink(outside, server / "swapped")
    path = tmp_path / ".config.json.temporaries"
    path.write_text(json.dumps([
        str(server / ".octyne-upload-1"), str(server / ".octyne-copy-2"), str(server / ".octyne-archive-gone"),
        str(server / "keep.txt"), str(server / "swapped" / ".octyne-archive-3"), "relative/.octyne-upload-4"]))
    removed = TemporaryJournal(str(path)).sweep()
    assert removed == [str(server / ".octyne-upload-1"), str(server / ".octyne-copy-2")]
    assert sorted(os.listdir(server)) == ["keep.txt", "swapped"]
    assert (outside / ".octyne-archive-3").exists()
    assert listed(path) == []


def test_a_missing_or_unreadable_journal_sweeps_nothing(tmp_path):
    path = tmp_path / ".config.json.temporaries"
    assert TemporaryJournal(str(path)).sweep() == []
    path.write_text("{ not json")
    assert TemporaryJournal(str(path)).sweep() == []
    assert listed(path) == []
