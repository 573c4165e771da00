"""HuJSON, the config format Octyne reads: JSON plus comments and trailing commas, nothing more.

A looser parser (JSON5's unquoted keys, single quotes, hex numbers, NaN)
would let ``PATCH /config`` write a file that Octyne cannot read, and one
config file must serve both daemons. So the text is standardised to plain
JSON (comments and trailing commas blanked out, every other character kept
in place so error positions stay right) and parsed by the strict JSON parser.
"""

from __future__ import annotations

import json
from typing import Any

_JSON_WHITESPACE = " \t\r\n"


def loads(text: str) -> Any:
    """Parse HuJSON text; ValueError names the problem with its line and column."""
    try:
        return json.loads(standardise(text), parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise ValueError(f"{error.msg}: line {error.lineno} column {error.colno}") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def standardise(text: str) -> str:
    """The same text as plain JSON: comments become spaces (newlines kept), trailing commas a space."""
    out = list(text)
    pending_comma = None  # a comma after a value that no other value has followed yet
    previous = ""  # the last character that is not whitespace or comment
    index, end = 0, len(text)
    while index < end:
        char = text[index]
        if char == '"':
            index = _string_end(text, index)
            pending_comma, previous = None, '"'
            continue
        if text.startswith("//", index):
            stop = text.find("\n", index)
            stop = end if stop < 0 else stop
        elif text.startswith("/*", index):
            close = text.find("*/", index + 2)
            if close < 0:
                line = text.count("\n", 0, index) + 1
                column = index - text.rfind("\n", 0, index)
                raise ValueError(f"unterminated comment: line {line} column {column}")
            stop = close + 2
        else:
            if char == ",":
                pending_comma = index if previous not in "{[," else None
            elif char in "}]":
                if pending_comma is not None:
                    out[pending_comma] = " "
                pending_comma = None
            elif char not in _JSON_WHITESPACE:
                pending_comma = None
            if char not in _JSON_WHITESPACE:
                previous = char
            index += 1
            continue
        for position in range(index, stop):
            if out[position] not in "\r\n":
                out[position] = " "
        index = stop
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """The index just past the string literal opening at ``start`` (or the end of an unterminated one)."""
    index = start + 1
    while index < len(text) and text[index] != '"':
        index += 2 if text[index] == "\\" else 1
    return index + 1
