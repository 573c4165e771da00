"""Path resolution: nothing a client sends may reach outside the server directory (api.md §8)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from octyne_flask.errors import ApiError
from octyne_flask.files.download import open_download
from octyne_flask.files.listing import list_folder
from octyne_flask.files.operations import create_folder, delete_item, move_or_copy
from octyne_flask.files.paths import LINK_ESCAPES, is_inside, relative_path, request_path, resolve
from octyne_flask.files.transactions import parse_operations, run_transaction
from octyne_flask.files.upload import receive_upload


def build_world(base) -> dict:
    """Two sibling servers and an outside folder, with links from the first server pointing everywhere."""
    alpha, beta, outside = base / "servers" / "alpha", base / "servers" / "beta", base / "outside"
    for folder in (alpha / "sub" / "deep", beta, outside):
        folder.mkdir(parents=True)
    (alpha / "sub" / "file.txt").write_text("alpha file")
    (beta / "secret.txt").write_text("beta secret")
    (outside / "secret.txt").write_text("outside secret")
    os.symlink("/etc", alpha / "to_etc")
    os.symlink("../beta", alpha / "to_beta")
    os.symlink(str(outside), alpha / "to_outside")
    os.symlink("chain2", alpha / "chain1")
    os.symlink("to_beta", alpha / "chain2")
    os.symlink("sub", alpha / "inner")
    os.symlink("sub/file.txt", alpha / "inner_file")
    os.symlink("../../outside/secret.txt", alpha / "sub" / "up_and_out")
    return {"alpha": str(alpha), "beta": str(beta), "outside": str(outside)}


def snapshot(folder: str) -> dict:
    """Every entry below ``folder`` with its content hash (links as their target), to detect any change."""
    found = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = os.path.join(parent, name)
            if os.path.islink(path):
                found[path] = "link:" + os.readlink(path)
            elif os.path.isfile(path):
                found[path] = hashlib.sha256(open(path, "rb").read()).hexdigest()
            else:
                found[path] = "folder"
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world"))


def test_rooted_paths_are_normalised_and_clamped():
    assert relative_path("/../../x") == "x"
    assert relative_path("//a//b/./c/") == "a/b/c"
    assert relative_path("/") == ""


def test_relative_paths_that_climb_out_are_refused():
    assert relative_path("../x") is None
    assert relative_path("a/../../x") is None
    assert relative_path("..") is None
    assert relative_path("a/../b") == "b"
    assert relative_path("") == "" and relative_path(".") == ""


def test_request_path_is_cleaned_like_go():
    assert request_path("/logged-folder/") == "/logged-folder"
    assert request_path("//a/./b") == "/a/b"
    assert request_path("") == "."


@pytest.mark.parametrize("raw, reason", [
    ("../x", "path escapes from parent"),
    ("a/../../etc/passwd", "path escapes from parent"),
    ("a\x00b", "invalid path"),
    ("to_etc/passwd", "symlink leads outside the server directory"),
    ("to_beta/secret.txt", "symlink leads outside the server directory"),
    ("chain1/secret.txt", "symlink leads outside the server directory"),
    ("sub/../to_outside/secret.txt", "symlink leads outside the server directory"),
])
def test_escapes_are_refused_with_the_endpoint_label(world, raw, reason):
    with pytest.raises(ApiError) as caught:
        resolve(world["alpha"], raw, "file path")
    assert caught.value.status == 400
    assert caught.value.message == f"Invalid file path: {reason}"


def test_a_final_link_is_the_link_itself_unless_followed(world):
    link = resolve(world["alpha"], "/to_etc", "file path")
    assert link.absolute == os.path.join(os.path.realpath(world["alpha"]), "to_etc")
    with pytest.raises(ApiError, match="symlink leads outside"):
        resolve(world["alpha"], "/to_etc", "folder path", follow=True)
    with pytest.raises(ApiError, match="symlink leads outside"):
        resolve(world["alpha"], "sub/up_and_out", "file path", follow=True)
    assert resolve(world["alpha"], "inner", "folder path", follow=True).relative == "inner"
    assert resolve(world["alpha"], "inner/file.txt", "file path", follow=True).relative == "inner/file.txt"


def test_a_rooted_path_looks_inside_the_server_directory(world):
    found = resolve(world["alpha"], "/etc/passwd", "file path")
    assert found.absolute == os.path.join(os.path.realpath(world["alpha"]), "etc/passwd")


def test_the_server_directory_is_refused_where_asked(world):
    for raw in ("", "/", ".", "sub/.."):
        with pytest.raises(ApiError, match="Invalid source path: path is the server directory itself"):
            resolve(world["alpha"], raw, "source path", allow_root=False)


def test_base_path_roots_client_paths_and_cannot_be_climbed(world):
    assert resolve(world["alpha"], "/file.txt", "file path x", base="sub").relative == "sub/file.txt"
    assert resolve(world["alpha"], "deep/../file.txt", "file path x", base="sub").relative == "sub/file.txt"
    with pytest.raises(ApiError, match="Invalid file path x: path escapes from parent"):
        resolve(world["alpha"], "../x", "file path x", base="sub")


def test_listing_through_links_never_shows_outside(world):
    names = {item["name"]: item for item in list_folder(resolve(world["alpha"], "/", "folder path", follow=True))}
    assert names["to_etc"]["mimeType"] == "inode/symlink" and names["to_etc"]["folder"] is True
    for raw in ("to_etc", "to_beta", "chain1", "to_outside"):
        with pytest.raises(ApiError):
            list_folder(resolve(world["alpha"], raw, "folder path", follow=True))


def test_deleting_a_link_to_outside_removes_only_the_link(tmp_path):
    world = build_world(tmp_path)
    before = snapshot(world["beta"]), snapshot(world["outside"])
    for name in ("to_beta", "to_outside", "chain2"):
        delete_item(resolve(world["alpha"], name, "file path"))
        assert not os.path.lexists(os.path.join(world["alpha"], name))
    assert (snapshot(world["beta"]), snapshot(world["outside"])) == before
    assert os.path.isdir("/etc")


_SEGMENTS = st.sampled_from([
    "..", ".", "", "sub", "deep", "to_etc", "to_beta", "to_outside", "chain1", "inner", "secret.txt",
    "%2e%2e", "%2E%2e%2f", "..%2f", "%2f", "\\", "..\\..", "\x00", "é", "日本", "a" * 300, "%00", "etc",
])


@st.composite
def hostile_paths(draw):
    """Paths built from traversal pieces, joined with / or //, optionally rooted, then URL-decoded."""
    parts = draw(st.lists(_SEGMENTS, max_size=8))
    joined = draw(st.sampled_from(["/", "//"])).join(parts)
    if draw(st.booleans()):
        joined = "/" + joined
    return unquote(joined) if draw(st.booleans()) else joined


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=hostile_paths())
def test_hostile_paths_stay_inside_and_touch_nothing_outside(tmp_path, raw):
    world = build_world(tmp_path / os.urandom(6).hex())
    outside_before = snapshot(world["beta"]), snapshot(world["outside"])
    root = os.path.realpath(world["alpha"])
    for follow in (False, True):
        try:
            found = resolve(world["alpha"], raw, "file path", follow=follow)
        except ApiError as error:
            assert error.status == 400 and error.message.startswith("Invalid file path: ")
            continue
        assert found.absolute == root or found.absolute.startswith(root + "/")
        if not found.is_root:
            assert is_inside(os.path.realpath(os.path.dirname(found.absolute)), root)
        if follow:
            assert is_inside(os.path.realpath(found.absolute), root)
            try:
                for item in list_folder(found):
                    assert item["name"] not in ("secret.txt", "passwd", "hostname")
            except ApiError as error:
                assert error.status in (400, 404)
    try:
        target = resolve(world["alpha"], raw, "file path")
        if not target.is_root:
            delete_item(target)
    except (ApiError, OSError):
        pass
    try:
        create_folder(resolve(world["alpha"], raw + "/newfolder", "folder path"))
    except (ApiError, OSError):
        pass
    assert (snapshot(world["beta"]), snapshot(world["outside"])) == outside_before
    assert os.path.isdir("/etc") and not os.path.exists("/etc/newfolder")


def test_a_folder_swapped_for_a_link_after_the_check_is_still_refused(tmp_path):
    """Between resolving a path and using it, a folder on the way becomes a symlink to another server."""
    world = build_world(tmp_path)
    alpha = world["alpha"]
    os.mkdir(os.path.join(alpha, "swap"))
    checked = {
        "list": resolve(alpha, "swap", "folder path", follow=True),
        "download": resolve(alpha, "swap/secret.txt", "file path", follow=True),
        "delete": resolve(alpha, "swap/secret.txt", "file path"),
        "mkdir": resolve(alpha, "swap/new", "folder path"),
        "upload": resolve(alpha, "swap", "file path", follow=True),
        "move out": (resolve(alpha, "swap/secret.txt", "source path"),
                     resolve(alpha, "/stolen.txt", "destination path")),
        "copy in": (resolve(alpha, "sub/file.txt", "source path"),
                    resolve(alpha, "swap", "destination path", follow=True)),
    }
    os.rmdir(os.path.join(alpha, "swap"))
    os.symlink(world["beta"], os.path.join(alpha, "swap"))  # the swap
    before = snapshot(world["beta"])
    body = b"--b\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"secret.txt\"\r\n\r\nowned\r\n--b--\r\n"
    attempts = {
        "list": lambda: list_folder(checked["list"]),
        "download": lambda: open_download(checked["download"]),
        "delete": lambda: delete_item(checked["delete"]),
        "mkdir": lambda: create_folder(checked["mkdir"]),
        "upload": lambda: receive_upload(io.BytesIO(body), "multipart/form-data; boundary=b", len(body),
                                         checked["upload"], 10**6),
        "move out": lambda: move_or_copy("mv", *checked["move out"]),
        "copy in": lambda: move_or_copy("cp", *checked["copy in"]),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ApiError) as caught:
            attempt()
        assert caught.value.status == 400 and caught.value.message.endswith(LINK_ESCAPES), name
    assert snapshot(world["beta"]) == before
    assert not os.path.lexists(os.path.join(alpha, "stolen.txt"))


def test_removals_swapped_after_the_check_are_refused(tmp_path):
    world = build_world(tmp_path)
    alpha = world["alpha"]
    os.makedirs(os.path.join(alpha, "pack", "swap"))
    open(os.path.join(alpha, "pack", "swap", "secret.txt"), "w").write("alpha's own")
    steps = parse_operations({"operations": [{"operation": "rm", "path": "/pack/swap/secret.txt"}]}, alpha)
    shutil.rmtree(os.path.join(alpha, "pack", "swap"))
    os.symlink(world["beta"], os.path.join(alpha, "pack", "swap"))  # beta also has a secret.txt
    before = snapshot(world["beta"])
    outcome = run_transaction(steps, alpha)
    assert outcome.status == 400 and outcome.body()["errors"][0]["message"].endswith(LINK_ESCAPES)
    assert snapshot(world["beta"]) == before
