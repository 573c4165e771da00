"""MIME sniffing by the rules of Go's ``http.DetectContentType`` (WHATWG MIME sniffing subset).

Octyne answers listings and downloads with Go's sniffer, so clients see the
same types from us: at most the first 512 bytes are looked at, never the name.
"""

from __future__ import annotations

import os
import struct

SNIFF_LENGTH = 512
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
HTML = "text/html; charset=utf-8"

_WHITESPACE = b"\t\n\x0c\r "
# Bytes that mark data as binary for the text rule.
_BINARY_BYTES = bytes(list(range(0x00, 0x09)) + [0x0B] + list(range(0x0E, 0x1B)) + list(range(0x1C, 0x20)))

_HTML_TAGS = (b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV", b"<FONT",
              b"<TABLE", b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P", b"<!--")


def _skip_whitespace(data: bytes) -> bytes:
    return data.lstrip(_WHITESPACE)


def _html(data: bytes) -> str | None:
    data = _skip_whitespace(data)
    for tag in _HTML_TAGS:
        if len(data) <= len(tag):
            continue
        # Letters compare case-insensitively; the tag must end with a space or '>'.
        head = bytes(byte & 0xDF if 0x41 <= expected <= 0x5A else byte for byte, expected in zip(data, tag))
        if head == tag and data[len(tag)] in b" >":
            return HTML
    return None


def _masked(mask: bytes, pattern: bytes, mime: str, skip_whitespace: bool = False):
    def match(data: bytes) -> str | None:
        if skip_whitespace:
            data = _skip_whitespace(data)
        if len(data) < len(pattern):
            return None
        for byte, bits, expected in zip(data, mask, pattern):
            if byte & bits != expected:
                return None
        return mime
    return match


def _exact(prefix: bytes, mime: str):
    return lambda data: mime if data.startswith(prefix) else None


def _mp4(data: bytes) -> str | None:
    if len(data) < 12:
        return None
    box_size = struct.unpack(">I", data[:4])[0]
    if len(data) < box_size or box_size % 4 != 0 or data[4:8] != b"ftyp":
        return None
    for start in range(8, box_size, 4):
        if start != 12 and data[start:start + 3] == b"mp4":  # bytes 12-15 are the version
            return "video/mp4"
    return None


def _text(data: bytes) -> str | None:
    data = _skip_whitespace(data)
    return TEXT if len(data.translate(None, _BINARY_BYTES)) == len(data) else None


_RIFF_MASK = b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff"

# In Go's order: the first signature that matches wins.
_SIGNATURES = (
    _html,
    _masked(b"\xff" * 5, b"<?xml", "text/xml; charset=utf-8", skip_whitespace=True),
    _exact(b"%PDF-", "application/pdf"),
    _exact(b"%!PS-Adobe-", "application/postscript"),
    _masked(b"\xff\xff\x00\x00", b"\xfe\xff\x00\x00", "text/plain; charset=utf-16be"),
    _masked(b"\xff\xff\x00\x00", b"\xff\xfe\x00\x00", "text/plain; charset=utf-16le"),
    _exact(b"\xef\xbb\xbf", TEXT),
    _exact(b"\x00\x00\x01\x00", "image/x-icon"),
    _exact(b"\x00\x00\x02\x00", "image/x-icon"),
    _exact(b"BM", "image/bmp"),
    _exact(b"GIF87a", "image/gif"),
    _exact(b"GIF89a", "image/gif"),
    _masked(_RIFF_MASK + b"\xff\xff", b"RIFF\x00\x00\x00\x00WEBPVP", "image/webp"),
    _exact(b"\x89PNG\x0d\x0a\x1a\x0a", "image/png"),
    _exact(b"\xff\xd8\xff", "image/jpeg"),
    _masked(_RIFF_MASK, b"FORM\x00\x00\x00\x00AIFF", "audio/aiff"),
    _exact(b"ID3", "audio/mpeg"),
    _exact(b"OggS\x00", "application/ogg"),
    _exact(b"MThd\x00\x00\x00\x06", "audio/midi"),
    _masked(_RIFF_MASK, b"RIFF\x00\x00\x00\x00AVI ", "video/avi"),
    _masked(_RIFF_MASK, b"RIFF\x00\x00\x00\x00WAVE", "audio/wave"),
    _mp4,
    _exact(b"\x1a\x45\xdf\xa3", "video/webm"),
    _masked(b"\x00" * 34 + b"\xff\xff", b"\x00" * 34 + b"LP", "application/vnd.ms-fontobject"),
    _exact(b"\x00\x01\x00\x00", "font/ttf"),
    _exact(b"OTTO", "font/otf"),
    _exact(b"ttcf", "font/collection"),
    _exact(b"wOFF", "font/woff"),
    _exact(b"wOF2", "font/woff2"),
    _exact(b"\x1f\x8b\x08", "application/x-gzip"),
    _exact(b"PK\x03\x04", "application/zip"),
    _exact(b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    _exact(b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    _exact(b"\x00\x61\x73\x6d", "application/wasm"),
    _text,
)


def detect_content_type(data: bytes) -> str:
    """The MIME type Go's ``http.DetectContentType`` gives for these bytes."""
    data = data[:SNIFF_LENGTH]
    for signature in _SIGNATURES:
        mime = signature(data)
        if mime:
            return mime
    return BINARY


def sniff_fd(fd: int) -> str:
    """Sniff an open file from its start, reading at most 512 bytes."""
    return detect_content_type(os.pread(fd, SNIFF_LENGTH, 0))
