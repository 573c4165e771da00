"""write_atomically: whole-file replacement that never widens who may read the file."""

import os
import stat
import tempfile

import pytest

from octyne_flask.atomicfile import write_atomically


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_is_owner_only_whatever_the_umask(tmp_path):
    path = tmp_path / "users.json"
    previous = os.umask(0o000)
    try:
        write_atomically(str(path), b"{}\n")
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"{}\n" and mode_of(path) == 0o600


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_a_rewrite_keeps_the_old_mode_and_owner(tmp_path, mode):
    path = tmp_path / "config.json"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    before = os.stat(path)
    write_atomically(str(path), b"new")
    after = os.stat(path)
    assert path.read_bytes() == b"new"
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid) == (mode, before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # replaced by a rename, never rewritten in place
    assert not os.path.exists(str(path) + "~")


def test_a_leftover_temporary_file_or_planted_link_is_not_reused(tmp_path):
    path, elsewhere = tmp_path / "users.json", tmp_path / "elsewhere"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    elsewhere.write_bytes(b"untouched")
    os.symlink(elsewhere, str(path) + "~")
    write_atomically(str(path), b"new")
    assert (path.read_bytes(), mode_of(path), elsewhere.read_bytes()) == (b"new", 0o600, b"untouched")
    assert not os.path.islink(path)


def test_a_root_owned_file_keeps_its_owner_and_group(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to someone else")
    path = tmp_path / "users.json"
    path.write_bytes(b"old")
    os.chown(path, 4321, 4321)
    os.chmod(path, 0o640)
    write_atomically(str(path), b"new")
    after = os.stat(path)
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (4321, 4321, 0o640)


def test_without_the_old_group_the_group_bits_are_dropped_not_granted():
    """As an unprivileged owner who is not in the file's group: the copy is theirs, and 0600."""
    if os.geteuid() != 0:
        pytest.skip("needs root to set up a file whose group its owner is not in")
    nobody = 65534
    with tempfile.TemporaryDirectory() as folder:  # not under pytest's 0700 base: nobody must get in
        os.chown(folder, nobody, nobody)
        path = os.path.join(folder, "users.json")
        with open(path, "wb") as handle:
            handle.write(b"old")
        os.chown(path, nobody, 0)
        os.chmod(path, 0o640)
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through its exit status only
            try:
                os.setgroups([])
                os.setgid(nobody)
                os.setuid(nobody)
                write_atomically(path, b"new")
                os._exit(0)
            except BaseException:
                os._exit(1)
        assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
        after = os.stat(path)
        assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (nobody, nobody, 0o600)
