"""MIME sniffing follows Go's http.DetectContentType table, from content only."""

from __future__ import annotations

import pytest

from octyne_flask.files.mime import detect_content_type

TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"


@pytest.mark.parametrize("data, expected", [
    (b"", TEXT),
    (b'{"json": true}\n', TEXT),
    (b"plain words\r\n\ttabbed", TEXT),
    (b"\x1b[31mcoloured", TEXT),  # ESC (0x1B) is the one control byte the text rule allows
    (b"binary\x00zero", "application/octet-stream"),
    (b"\x0b vertical tab", "application/octet-stream"),
    (b"  \n<!DOCTYPE html><html>", HTML),
    (b"<html>", HTML),
    (b"<HTML ", HTML),
    (b"<htmlx>", TEXT),
    (b"<html", TEXT),  # a tag needs a terminating space or '>'
    (b"<p>para", HTML),
    (b"<!-- c -->", HTML),
    (b"<a href=x>", HTML),
    (b"\t<?xml version='1.0'?>", "text/xml; charset=utf-8"),
    (b"%PDF-1.7", "application/pdf"),
    (b"%!PS-Adobe-3.0", "application/postscript"),
    (b"\xfe\xff\x00\x41", "text/plain; charset=utf-16be"),
    (b"\xff\xfe\x41\x00", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbfbom", TEXT),
    (b"\x00\x00\x01\x00ico", "image/x-icon"),
    (b"BMxxxx", "image/bmp"),
    (b"GIF89a....", "image/gif"),
    (b"GIF87a....", "image/gif"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    (b"\xff\xd8\xff\xe0", "image/jpeg"),
    (b"FORM\x00\x00\x00\x00AIFF", "audio/aiff"),
    (b"ID3\x03", "audio/mpeg"),
    (b"OggS\x00\x02", "application/ogg"),
    (b"MThd\x00\x00\x00\x06\x00", "audio/midi"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "video/avi"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wave"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00mp41isom", "video/mp4"),
    (b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00", "application/octet-stream"),
    (b"\x1a\x45\xdf\xa3webm", "video/webm"),
    (b"\x00" * 34 + b"LP" + b"\x00", "application/vnd.ms-fontobject"),
    (b"\x00\x01\x00\x00font", "font/ttf"),
    (b"OTTOfont", "font/otf"),
    (b"ttcf", "font/collection"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x1f\x8b\x08\x00", "application/x-gzip"),
    (b"PK\x03\x04zip", "application/zip"),
    (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    (b"\x00asm\x01", "application/wasm"),
    (b"\x7fELF\x02\x01", "application/octet-stream"),
])
def test_signature_table(data, expected):
    assert detect_content_type(data) == expected


def test_only_the_first_512_bytes_count():
    assert detect_content_type(b"a" * 512 + b"\x00") == TEXT
    assert detect_content_type(b"a" * 511 + b"\x00") == "application/octet-stream"


def test_leading_whitespace_is_skipped_before_the_text_rule():
    assert detect_content_type(b"\n\n\x00") == "application/octet-stream"
    assert detect_content_type(b" \t\r\n") == TEXT
