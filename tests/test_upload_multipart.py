"""Streaming multipart upload into a temp file renamed into place (api.md §8 upload)."""

from __future__ import annotations

import io
import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octyne_flask.errors import ApiError
from octyne_flask.files import multipart
from octyne_flask.files.paths import resolve
from octyne_flask.files.temp_journal import TemporaryJournal
from octyne_flask.files.upload import receive_upload

BOUNDARY = "----octyneBoundary7MA4YWxkTrZu0gW"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def form(*parts: tuple[dict, bytes], boundary: str = BOUNDARY) -> bytes:
    """A multipart body from (headers, data) pairs."""
    body = b""
    for headers, data in parts:
        body += f"--{boundary}\r\n".encode()
        body += b"".join(f"{name}: {value}\r\n".encode() for name, value in headers.items())
        body += b"\r\n" + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def file_part(data: bytes, filename: str = "up.bin", field: str = "upload") -> tuple[dict, bytes]:
    disposition = f'form-data; name="{field}"; filename="{filename}"'
    return {"Content-Disposition": disposition, "Content-Type": "application/octet-stream"}, data


class Trickle(io.RawIOBase):
    """A body that arrives in small pieces (and may stop early), like a slow or dying client."""

    def __init__(self, data: bytes, piece: int, stop_after: int | None = None):
        self.data, self.piece, self.position = data, piece, 0
        self.stop_after = len(data) if stop_after is None else stop_after

    def read(self, size=-1):
        end = min(self.position + self.piece, self.stop_after)
        chunk = self.data[self.position:end]
        self.position = end
        return chunk


class TrickleInto(Trickle):
    """The same, read with ``readinto`` as a connection is (see ``request_body.py``)."""

    def readinto(self, view):
        end = min(self.position + self.piece, self.stop_after, self.position + len(view))
        view[:end - self.position] = self.data[self.position:end]
        count, self.position = end - self.position, end
        return count


def upload(folder_root, body, *, stream=None, limit=10**9, folder="/", content_type=CONTENT_TYPE):
    target = resolve(str(folder_root), folder, "file path", follow=True)
    return receive_upload(stream or io.BytesIO(body), content_type, len(body), target, limit)


def test_the_temporary_file_is_listed_in_the_journal_while_it_is_written(tmp_path):
    journal_file = tmp_path / ".config.json.temporaries"
    journal = TemporaryJournal(str(journal_file))
    (tmp_path / "server").mkdir()
    body = form(file_part(os.urandom(300_000)))
    seen = []

    class Watched(Trickle):
        def read(self, size=-1):
            seen.append(json.loads(journal_file.read_text()) if journal_file.exists() else [])
            return super().read(size)

    target = resolve(str(tmp_path / "server"), "/", "file path", follow=True)
    receive_upload(Watched(body, 64 * 1024), CONTENT_TYPE, len(body), target, 10**9, journal)
    during = [paths for paths in seen if paths]
    assert during and all(len(paths) == 1 and os.path.basename(paths[0]).startswith(".octyne-upload-")
                          for paths in during)
    assert json.loads(journal_file.read_text()) == []


def leftovers(root) -> list:
    return [name for name in os.listdir(root) if name.startswith(".octyne-upload-")]


def test_saves_the_upload_part_under_its_base_name(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17) + b"\r\n--" + BOUNDARY[:-1].encode()  # looks almost like a boundary
    body = form(({"Content-Disposition": 'form-data; name="note"'}, b"ignored"), file_part(data, "../../x/evil.bin"))
    saved = upload(tmp_path, body)
    assert saved.filename == "evil.bin" and saved.target.relative == "evil.bin"
    assert (tmp_path / "evil.bin").read_bytes() == data
    assert leftovers(tmp_path) == []


DELIMITER = b"\r\n--" + BOUNDARY.encode()
# File content made of random bytes and near-boundaries (every proper prefix of the real one).
_PIECES = st.one_of(st.binary(max_size=300), st.integers(0, len(DELIMITER) - 1).map(lambda n: DELIMITER[:n]))


@settings(max_examples=60, deadline=None)
@given(piece=st.integers(min_value=1, max_value=200), pieces=st.lists(_PIECES, max_size=30),
       kind=st.sampled_from([Trickle, TrickleInto]))
def test_boundaries_split_across_reads_are_found(tmp_path_factory, piece, pieces, kind):
    root = tmp_path_factory.mktemp("trickle")
    data = b"".join(pieces)
    body = form(file_part(data, "t.bin"))
    upload(root, body, stream=kind(body, piece))
    assert (root / "t.bin").read_bytes() == data



def test_a_body_sent_in_small_pieces_is_searched_once(tmp_path, monkeypatch):
    """A read from the connection gives whatever has arrived, a few bytes from a client that sends little at a
    time: searching all the unread bytes again after each read made a long preamble or part header cost
    quadratic time."""
    searched = []

    class CountingBuffer(multipart.mmap):
        """The reader's buffer, counting the bytes each search goes over."""

        def find(self, sub, start=0, end=None):
            end = len(self) if end is None else end
            searched.append(end - start)
            return super().find(sub, start, end)

    monkeypatch.setattr(multipart, "mmap", CountingBuffer)
    part_headers = {**file_part(b"")[0], "X-Pad": "p" * 60_000}
    body = b"preamble " * 30_000 + form((part_headers, b"data"))
    upload(tmp_path, body, stream=TrickleInto(body, 64))
    assert (tmp_path / "up.bin").read_bytes() == b"data"
    assert len(body) <= sum(searched) < 2 * len(body)

def test_overwrites_an_existing_file_keeping_its_mode(tmp_path):
    (tmp_path / "run.sh").write_text("old")
    os.chmod(tmp_path / "run.sh", 0o751)
    upload(tmp_path, form(file_part(b"new", "run.sh")))
    assert (tmp_path / "run.sh").read_text() == "new"
    assert stat.S_IMODE(os.stat(tmp_path / "run.sh").st_mode) == 0o751


@pytest.mark.parametrize("stop_at", [10, 200, 5000, -40])
def test_an_aborted_upload_leaves_no_file_and_keeps_the_old_one(tmp_path, stop_at):
    (tmp_path / "keep.txt").write_text("previous")
    body = form(file_part(os.urandom(8000), "keep.txt"))
    cut = stop_at if stop_at > 0 else len(body) + stop_at
    with pytest.raises(ApiError) as caught:
        upload(tmp_path, body, stream=Trickle(body, 1000, stop_after=cut))
    assert (caught.value.status, caught.value.message) == (400, "Invalid form sent!")
    assert (tmp_path / "keep.txt").read_text() == "previous"
    assert leftovers(tmp_path) == []


def test_over_the_limit_is_413_and_nothing_is_written(tmp_path):
    body = form(file_part(b"x" * 5000, "big.bin"))
    with pytest.raises(ApiError) as caught:
        upload(tmp_path, body, stream=Trickle(body, 1000), limit=4999)
    assert caught.value.status == 413
    assert not (tmp_path / "big.bin").exists() and leftovers(tmp_path) == []
    upload(tmp_path, body, limit=5000)
    assert (tmp_path / "big.bin").stat().st_size == 5000


def test_a_declared_length_far_over_the_limit_is_refused_before_reading(tmp_path):
    class Untouchable(io.RawIOBase):
        def read(self, size=-1):
            raise AssertionError("the body must not be read")
    with pytest.raises(ApiError) as caught:
        receive_upload(Untouchable(), CONTENT_TYPE, 50 * 1024 * 1024, resolve(str(tmp_path), "/", "file path"), 1000)
    assert caught.value.status == 413


@pytest.mark.parametrize("filename", ["", ".", "..", "a/..", "/"])
def test_unusable_file_names_are_refused(tmp_path, filename):
    with pytest.raises(ApiError) as caught:
        upload(tmp_path, form(file_part(b"data", filename)))
    assert (caught.value.status, caught.value.message) == (400, f"Invalid file name: {filename}")
    assert os.listdir(tmp_path) == []


def test_uploading_over_a_folder_is_refused(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(ApiError) as caught:
        upload(tmp_path, form(file_part(b"data", "dir")))
    assert (caught.value.status, caught.value.message) == (400, "This is a folder!")


@pytest.mark.parametrize("body, content_type", [
    (b"not multipart at all", "text/plain"),
    (b"", CONTENT_TYPE),
    (b"--other\r\n\r\nx\r\n--other--\r\n", CONTENT_TYPE),
    (form(({"Content-Disposition": 'form-data; name="upload"'}, b"no filename")), CONTENT_TYPE),
    (form(file_part(b"wrong field", field="file")), CONTENT_TYPE),
    (form(file_part(b"x"))[:-4], CONTENT_TYPE),
])
def test_malformed_forms(tmp_path, body, content_type):
    with pytest.raises(ApiError) as caught:
        upload(tmp_path, body, content_type=content_type)
    assert (caught.value.status, caught.value.message) == (400, "Invalid form sent!")
    assert os.listdir(tmp_path) == []


def test_rfc5987_filename_and_quoted_boundary(tmp_path):
    headers = {"Content-Disposition": "form-data; name=\"upload\"; filename=\"fallback.txt\"; "
                                      "filename*=UTF-8''%C3%A9t%C3%A9.txt"}
    body = form((headers, b"summer"), boundary="quoted boundary")
    upload(tmp_path, body, content_type='multipart/form-data; boundary="quoted boundary"')
    assert (tmp_path / "été.txt").read_text() == "summer"


def test_writing_through_a_link_inside_is_allowed_but_not_outside(tmp_path):
    server = tmp_path / "server"
    (server / "real").mkdir(parents=True)
    (server / "real" / "target.txt").write_text("old")
    os.symlink("real/target.txt", server / "alias.txt")
    (tmp_path / "outside.txt").write_text("outside")
    os.symlink(str(tmp_path / "outside.txt"), server / "escape.txt")
    upload(server, form(file_part(b"through", "alias.txt")))
    assert (server / "real" / "target.txt").read_text() == "through" and os.path.islink(server / "alias.txt")
    with pytest.raises(ApiError) as caught:
        upload(server, form(file_part(b"evil", "escape.txt")))
    assert caught.value.message == "Invalid file path: symlink leads outside the server directory"
    assert (tmp_path / "outside.txt").read_text() == "outside"
