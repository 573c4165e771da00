"""A zip writer whose entries' data can arrive already compressed (from the parallel deflater).

Python's ``zipfile`` compresses inside ``write``, one entry at a time, on one
core. Here the caller writes each entry's bytes as they come back from the
pool; the local header is patched with CRC and sizes when the entry ends
(the archive is a regular file being built under a temporary name, so it
can seek). ZIP64 records are added only where sizes or offsets need them.
Each entry's central-directory record is encoded when the entry ends, so an
archive of a million members holds about 100 bytes per member in memory.
"""

from __future__ import annotations

import stat
import struct
import time
from dataclasses import dataclass

STORED, DEFLATED = 0, 8
UTF8_NAMES = 0x800
LIMIT32 = 0xFFFFFFFF
# Entries at least this large carry a ZIP64 field in their local header from the start.
ZIP64_FROM = 0xFFFF0000
MADE_BY_UNIX = (3 << 8) | 63


def dos_time(mtime: float) -> tuple[int, int]:
    """(time, date) in MS-DOS format, clamped to 1980..2107."""
    moment = time.localtime(max(mtime, 315532800))
    year = min(max(moment.tm_year, 1980), 2107)
    return ((moment.tm_hour << 11) | (moment.tm_min << 5) | (moment.tm_sec // 2),
            ((year - 1980) << 9) | (moment.tm_mon << 5) | moment.tm_mday)


@dataclass
class ZipEntry:
    name: bytes
    flags: int
    method: int
    mode: int
    mtime: tuple
    offset: int
    zip64: bool
    crc: int = 0
    compressed: int = 0
    size: int = 0


class ZipWriter:
    """Writes entries one after another to a seekable binary file, then the central directory."""

    def __init__(self, out):
        self._out = out
        self._position = out.tell()  # tracked here: tell() on a buffered file costs a system call
        self._directory = bytearray()  # the central-directory records of the entries ended so far
        self._count = 0

    def _write(self, data) -> None:
        self._out.write(data)
        self._position += len(data)

    def begin(self, name: str, mode: int, mtime: float, method: int, expected_size: int,
              known: tuple | None = None) -> ZipEntry:
        """Start an entry (``name`` ends with ``/`` for a folder); its data follows with ``data``.

        ``known`` is ``(crc, compressed size, size)`` when the data is already at hand.
        """
        encoded = name.encode("utf-8")
        flags = 0 if encoded.isascii() else UTF8_NAMES
        entry = ZipEntry(encoded, flags, method, mode, dos_time(mtime), self._position,
                         expected_size >= ZIP64_FROM)
        crc, compressed, size = known or (0, 0, 0)
        if entry.zip64:
            extra = struct.pack("<HHQQ", 1, 16, size, compressed)
            compressed = size = LIMIT32
        else:
            extra = b""
        self._write(struct.pack("<IHHHHHIIIHH", 0x04034B50, self._needed(entry), flags, method,
                                *entry.mtime, crc, compressed, size, len(encoded), len(extra)))
        self._write(encoded + extra)
        return entry

    def add(self, name: str, mode: int, mtime: float, method: int, payload: bytes, crc: int, size: int) -> None:
        """A whole entry whose data is already known (folders, links, small files): nothing to patch later."""
        entry = self.begin(name, mode, mtime, method, size, known=(crc, len(payload), size))
        self.data(entry, payload)
        entry.crc, entry.size = crc, size
        self._record(entry)

    def data(self, entry: ZipEntry, chunk) -> None:
        self._write(chunk)
        entry.compressed += len(chunk)

    def end(self, entry: ZipEntry, crc: int, size: int) -> None:
        """Finish an entry: patch its local header with the CRC and sizes."""
        entry.crc, entry.size = crc, size
        if not entry.zip64 and max(size, entry.compressed) >= LIMIT32:
            raise OSError(f"{entry.name!r} grew past 4 GiB while it was being archived")
        self._out.seek(entry.offset + 14)
        if entry.zip64:
            self._out.write(struct.pack("<I", crc))
            self._out.seek(entry.offset + 30 + len(entry.name) + 4)
            self._out.write(struct.pack("<QQ", size, entry.compressed))
        else:
            self._out.write(struct.pack("<III", crc, entry.compressed, size))
        self._out.seek(self._position)
        self._record(entry)

    def close(self) -> None:
        """Write the central directory and the end records."""
        start = self._position
        self._write(self._directory)
        size, count = len(self._directory), self._count
        if count >= 0xFFFF or start >= LIMIT32 or size >= LIMIT32:
            record = self._position
            self._write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, MADE_BY_UNIX, 45, 0, 0,
                                    count, count, size, start))
            self._write(struct.pack("<IIQI", 0x07064B50, 0, record, 1))
        self._write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                                    min(size, LIMIT32), min(start, LIMIT32), 0))

    def _record(self, entry: ZipEntry) -> None:
        """Encode the ended entry's central-directory record."""
        wide = [value for value in (entry.size, entry.compressed, entry.offset) if value >= LIMIT32]
        extra = struct.pack("<HH", 1, 8 * len(wide)) + struct.pack(f"<{len(wide)}Q", *wide) if wide else b""
        attributes = (entry.mode & 0xFFFF) << 16 | (0x10 if stat.S_ISDIR(entry.mode) else 0)
        needed = 45 if wide or entry.zip64 else self._needed(entry)
        self._directory += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, MADE_BY_UNIX, needed, entry.flags, entry.method, *entry.mtime,
            entry.crc, min(entry.compressed, LIMIT32), min(entry.size, LIMIT32), len(entry.name), len(extra),
            0, 0, 0, attributes, min(entry.offset, LIMIT32))
        self._directory += entry.name + extra
        self._count += 1

    @staticmethod
    def _needed(entry: ZipEntry) -> int:
        if entry.zip64:
            return 45
        return 20 if entry.method == DEFLATED or stat.S_ISDIR(entry.mode) else 10
