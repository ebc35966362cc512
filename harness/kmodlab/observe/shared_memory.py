"""The guest's shared memory (the host file behind its ivshmem BAR) as runs of 32-bit words.

A module that fills windows of the BAR with one word each leaves a file that is a few runs long;
the runs are what the ``ioremap`` check holds against the windows it asked for.  As text (one
``offset word count`` line per run, hex) they travel in a recorded observation like any /proc
file.  Words are little-endian, as every kmodlab arch stores them (x86, arm64 and i386 guests).
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass

from kmodlab.observe.errors import ParseError

SOURCE = "shared memory summary"
MAX_RUNS = 4096
"""A file of more runs is cut there (a module writing noise must not make the report huge);
the summary says so with a last ``truncated`` line."""


@dataclass(frozen=True)
class WordRun:
    offset: int      # bytes into the BAR
    word: int
    count: int       # consecutive words

    @property
    def end(self) -> int:
        return self.offset + 4 * self.count


def word_runs(data: bytes, *, skip_zero: bool = True) -> tuple[list[WordRun], bool]:
    """Runs of equal little-endian 32-bit words (zero runs left out unless ``skip_zero``
    is False), and whether the list was cut at :data:`MAX_RUNS`.  A tail shorter than a word
    counts as one word padded with zeros."""
    if len(data) % 4:
        data = data + bytes(4 - len(data) % 4)
    words = array.array("I", data)
    if sys.byteorder == "big":
        words.byteswap()
    runs: list[WordRun] = []
    start, current = 0, None
    for i, w in enumerate(words):
        if w != current:
            if current is not None and (current or not skip_zero):
                runs.append(WordRun(4 * start, current, i - start))
                if len(runs) >= MAX_RUNS:
                    return runs, True
            start, current = i, w
    if current is not None and (current or not skip_zero):
        runs.append(WordRun(4 * start, current, len(words) - start))
    return runs, False


def format_runs(data: bytes) -> str:
    """The text form: ``size <bytes>`` then ``<offset> <word> <count>`` per non-zero run."""
    runs, cut = word_runs(data)
    lines = [f"size {len(data)}"] + [f"{r.offset:#x} {r.word:#010x} {r.count}" for r in runs]
    if cut:
        lines.append("truncated")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SharedMemory:
    size: int
    runs: tuple[WordRun, ...]
    truncated: bool = False


def parse_runs(text: str) -> SharedMemory:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("size "):
        raise ParseError(SOURCE, 1, lines[0] if lines else "", "no 'size <bytes>' line")
    runs: list[WordRun] = []
    truncated = False
    for n, line in enumerate(lines[1:], 2):
        if line == "truncated":
            truncated = True
            continue
        try:
            offset, word, count = line.split()
            runs.append(WordRun(int(offset, 16), int(word, 16), int(count)))
        except ValueError:
            raise ParseError(SOURCE, n, line, "not '<offset> <word> <count>'") from None
    return SharedMemory(int(lines[0].split()[1]), tuple(runs), truncated)
