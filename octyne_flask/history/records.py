"""The record format shared by history files and the not-yet-written tail in memory.

A record is one header line, then its body::

    \\xff <kind> <seq> <count> <time ms> <body bytes> <crc32 hex> \\n
    <line>\\n <line>\\n ...                       (count lines, UTF-8)

Kinds: ``L`` holds ``count`` console lines numbered ``seq`` onwards, all
received at ``time``; ``D`` says that ``count`` lines from ``seq`` on were
dropped (the writer fell behind) and has no body. A header starts with the
byte 0xFF, which never occurs in UTF-8 text, so any byte position can be
mapped to its line and record with a few ``rfind`` calls, without parsing
every record: that is what lets a search run at ``bytes.find`` speed. The
CRC of the body and the exact body length let recovery find a torn last
record.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

MARK = b"\xff"
LINES = ord("L")
DROPPED = ord("D")
NEWLINE = b"\n"
HEADER_LIMIT = 128  # a header is far shorter; a longer one is corruption


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed record header: ``start``, ``body`` and ``end`` are offsets in the buffer.

    In text decoded with surrogateescape (the regex search) ``end`` is not meaningful: the body
    length counts bytes.
    """

    kind: int
    start: int
    seq: int
    count: int
    time: int
    body: int
    end: int
    crc: int

    @property
    def next_seq(self) -> int:
        return self.seq + self.count


def encode_header(kind: int, seq: int, count: int, time: int, length: int, crc: int) -> bytes:
    return b"\xff%c%d %d %d %d %08x\n" % (kind, seq, count, time, length, crc)


def lines_record(seq: int, time: int, lines: list[str]) -> tuple[bytes, bytes, bytes]:
    """An ``L`` record as (header, lines joined, final newline): written with ``writev``, never joined.

    A newline inside a line becomes a space. Only a daemon line can hold one (a server name);
    those come one at a time, while the app's output is cut at every newline before it gets
    here, so only single lines are checked (a scan of a whole flood costs more than it finds).
    """
    body = "\n".join(lines).encode("utf-8", "replace")
    if len(lines) == 1 and NEWLINE in body:
        body = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8", "replace")
    return encode_header(LINES, seq, len(lines), time, len(body) + 1, zlib.crc32(NEWLINE, zlib.crc32(body))), body, NEWLINE


def encode_lines(seq: int, time: int, lines: list[str]) -> bytes:
    return b"".join(lines_record(seq, time, lines))


def dropped_record(seq: int, count: int, time: int) -> tuple[bytes]:
    return (encode_header(DROPPED, seq, count, time, 0, 0),)


def parse_header(buffer, at: int) -> Header | None:
    """The header at ``at`` (a bytes-like or a str decoded with surrogateescape), or None if there is none."""
    newline = buffer.find(NEWLINE if isinstance(buffer, (bytes, bytearray, memoryview)) else "\n", at, at + HEADER_LIMIT)
    if newline < 0 or buffer[at] not in (0xFF, "\udcff"):
        return None
    text = buffer[at + 1:newline]
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    try:
        seq, count, time, length, crc = bytes(text[1:]).split(b" ")
        kind = text[0]
        header = Header(kind, at, int(seq), int(count), int(time), newline + 1, newline + 1 + int(length), int(crc, 16))
    except (ValueError, IndexError):
        return None
    if kind not in (LINES, DROPPED) or header.count < 0 or header.seq < 1 or header.end < header.body:
        return None
    return header


def records(buffer: bytes, start: int = 0, end: int | None = None, verify: bool = False):
    """Every record header in ``buffer[start:end]`` in order; stops at the first that is torn or invalid.

    With ``verify`` each body's length, line count and CRC are checked too (recovery does that).
    """
    end = len(buffer) if end is None else end
    at = start
    while at < end:
        header = parse_header(buffer, at)
        if header is None or header.end > end:
            return
        if verify and not _intact(buffer, header):
            return
        yield header
        at = header.end


def _intact(buffer: bytes, header: Header) -> bool:
    body = buffer[header.body:header.end]
    if header.kind == DROPPED:
        return not body
    return zlib.crc32(body) == header.crc and body.count(NEWLINE) == header.count and body.endswith(NEWLINE)


def valid_length(buffer: bytes, start: int = 0) -> int:
    """Where the intact records from ``start`` end: a torn or corrupt tail begins there."""
    last = None
    for last in records(buffer, start, verify=True):
        pass
    return start if last is None else last.end


def body_lines(buffer: bytes, header: Header) -> list[str]:
    """The lines of an ``L`` record, decoded."""
    if header.kind != LINES or header.count == 0:
        return []
    return buffer[header.body:header.end - 1].decode("utf-8", "replace").split("\n")


def line_at(buffer, position: int):
    """For a position inside some line of ``buffer``: (header of its record, line number in it, line start, line end).

    None when the position lies in a header line. ``buffer`` starts at a record.
    Works on bytes and on text decoded with surrogateescape alike.
    """
    newline, mark = (NEWLINE, b"\n\xff") if isinstance(buffer, (bytes, bytearray)) else ("\n", "\n\udcff")
    start = buffer.rfind(newline, 0, position) + 1
    if buffer[start] in (0xFF, "\udcff"):
        return None
    record_start = buffer.rfind(mark, 0, start) + 1  # 0 when the buffer's first record holds the line
    header = parse_header(buffer, record_start)
    if header is None:
        return None
    end = buffer.find(newline, position)
    return header, buffer.count(newline, header.body, start), start, end
