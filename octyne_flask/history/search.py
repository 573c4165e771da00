"""The history endpoints' questions, parsed and answered: pages with bounds and search, the text export, inputs.

A regular expression is matched with the ``regex`` module, which can stop a
match after a timeout (``re`` cannot be interrupted) and can release the GIL
while it matches (``concurrent=True``), so even a catastrophic pattern keeps
neither the app's output reader nor the consoles waiting. Its timeout counts
CPU time; the hard wall-clock bound comes from running the search on its own
thread and answering when ``REGEX_SECONDS`` have passed, whatever the search is
doing (it stops at its next step, or when its own timeout fires). At most
``REGEX_WORKERS`` searches run at once, so abandoned ones cannot pile up.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterator, Mapping

from ..errors import ApiError
from .query import Line, Pattern, Substring, export, page, seq_at_time
from .store import HistoryView, ServerHistory

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
DEFAULT_INPUTS_LIMIT = 100
REGEX_SECONDS = 2.0
REGEX_WORKERS = 2  # at most this many searches burn CPU at once; others wait their turn (and their bound)
INVALID_REGEX = "Invalid regular expression: {}"
TOO_SLOW = "the search ran longer than 2 s (simplify the pattern, or narrow the range)"

_searchers = threading.BoundedSemaphore(REGEX_WORKERS)


@dataclass(frozen=True)
class HistoryRequest:
    """What ``GET …/console/history`` asks for (``None``: not given)."""

    before: int | None = None
    after: int | None = None
    time_from: int | None = None
    time_to: int | None = None
    q: str = ""
    regex: bool = False
    limit: int = DEFAULT_LIMIT

    @property
    def backward(self) -> bool:
        """Newest lines first, unless only ``after`` is given (paging forwards)."""
        return not (self.after is not None and self.before is None)


def number_parameter(args: Mapping[str, str], name: str, low: int = 0, high: int = 2**63 - 1) -> int | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise ApiError(400, f"Invalid {name}!", detail=f"{name} must be an integer from {low} to {high}")
    return int(value)


def parse_request(args: Mapping[str, str]) -> HistoryRequest:
    """The query string of a history request, checked (400 ``Invalid <name>!`` for a bad number)."""
    limit = number_parameter(args, "limit", 1, MAX_LIMIT)
    return HistoryRequest(
        before=number_parameter(args, "before"), after=number_parameter(args, "after"),
        time_from=number_parameter(args, "from"), time_to=number_parameter(args, "to"),
        q=args.get("q", ""), regex=args.get("regex") == "true",
        limit=DEFAULT_LIMIT if limit is None else limit)


def seq_bounds(view: HistoryView, before=None, after=None, time_from=None, time_to=None) -> tuple[int, int]:
    """The request's bounds as a half-open range of seqs [lo, hi)."""
    lo = 1 if after is None else after + 1
    hi = view.next_seq if before is None else min(before, view.next_seq)
    if time_from is not None:
        lo = max(lo, seq_at_time(view, time_from))
    if time_to is not None:
        hi = min(hi, seq_at_time(view, time_to + 1))
    return lo, hi


def find_lines(history: ServerHistory, request: HistoryRequest) -> tuple[list[Line], bool]:
    """The page of lines the request asks for, and whether more match beyond it."""
    patterns = _compile(request) if request.regex or not request.q.isascii() else None  # a bad one: 400 at once
    view = history.view()
    lo, hi = seq_bounds(view, request.before, request.after, request.time_from, request.time_to)
    if lo >= hi:
        return [], False
    if not request.q:
        return page(view, lo, hi, request.limit, request.backward)
    if patterns is None:
        return page(view, lo, hi, request.limit, request.backward, Substring(request.q))
    return _bounded_search(view, lo, hi, request, *patterns)


def _compile(request: HistoryRequest) -> tuple:
    """(pattern for whole blocks, pattern for one line); a literal for a non-ASCII substring."""
    import regex  # 1 MiB, loaded by the first search that needs it, not by every worker

    if request.regex:
        source, flags = request.q, 0
    else:  # Unicode case-insensitive literal (bytes.lower only folds ASCII)
        source, flags = regex.escape(request.q), regex.IGNORECASE | regex.FULLCASE
    try:
        return regex.compile(source, flags | regex.MULTILINE), regex.compile(source, flags)
    except (regex.error, OverflowError, RecursionError, ValueError) as error:
        raise ApiError(400, INVALID_REGEX.format(error)) from None


def _bounded_search(view: HistoryView, lo: int, hi: int, request: HistoryRequest,
                    block_pattern, line_pattern) -> tuple[list[Line], bool]:
    """A regex search that answers within REGEX_SECONDS of wall time, or 400 ``… ran longer than 2 s``."""
    deadline = time.monotonic() + REGEX_SECONDS
    abandoned = threading.Event()

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0 or abandoned.is_set():
            raise TimeoutError
        return left

    matcher = Pattern(lambda text, at: block_pattern.search(text, at, timeout=remaining(), concurrent=True),
                      lambda line: line_pattern.search(line, timeout=remaining(), concurrent=True))
    outcome: list = []
    finished = threading.Event()

    def search() -> None:
        try:
            outcome.append(page(view, lo, hi, request.limit, request.backward, matcher))
        except TimeoutError:
            pass
        finally:
            _searchers.release()
            finished.set()

    if not _searchers.acquire(timeout=REGEX_SECONDS):  # every slot busy for the whole bound
        raise ApiError(400, INVALID_REGEX.format(TOO_SLOW))
    # A daemon thread: an abandoned search (stopping at its next step) never holds up the daemon's exit.
    threading.Thread(target=search, name="octyne-history-regex", daemon=True).start()
    if not finished.wait(max(0.0, deadline - time.monotonic())) or not outcome:
        abandoned.set()
        raise ApiError(400, INVALID_REGEX.format(TOO_SLOW))
    return outcome[0]


@lru_cache(maxsize=4096)
def iso_time(ms: int) -> str:
    """``2026-11-27T03:00:00.123Z``: UTC, milliseconds."""
    stamp = datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"


def export_text(history: ServerHistory, time_from: int | None, time_to: int | None) -> Iterator[str]:
    """``history.txt``: every kept line in the time range, oldest first, with its UTC time in front."""
    view = history.view()
    lo, hi = seq_bounds(view, time_from=time_from, time_to=time_to)
    return export(view, lo, hi, iso_time)


def recent_inputs(history: ServerHistory, limit: int, user: str | None = None) -> list[dict]:
    """The newest ``limit`` inputs (of ``user`` only, when given), newest first."""
    view = history.inputs_view()
    found: list[dict] = []
    hi = view.next_seq
    while len(found) < limit and hi > 1:
        lines, more = page(view, 1, hi, MAX_LIMIT, backward=True)
        for line in reversed(lines):
            entry = json.loads(line.text) if not line.missed else None
            if entry and (user is None or entry.get("user") == user):
                found.append({"time": line.time, "user": entry.get("user", ""), "input": entry.get("input", "")})
                if len(found) == limit:
                    break
        if not more or not lines:
            break
        hi = lines[0].seq
    return found
