"""Errors raised by the /proc and log parsers."""

from __future__ import annotations

from kmodlab.errors import KmodlabError


class ParseError(KmodlabError):
    """Input did not have the format the kernel prints; names the line so it can be found.

    The parsers refuse to guess: a half-parsed /proc file would make every later comparison
    with the model wrong in ways that are hard to trace back.
    """

    def __init__(self, source: str, line_no: int, line: str, problem: str) -> None:
        shown = line if len(line) <= 200 else line[:200] + "..."
        super().__init__(
            f"{source}: line {line_no}: {problem}: {shown!r}\n"
            "Check that the capture is complete and came from the file it claims to be "
            "(for example /proc/slabinfo read as root, not truncated by the console)."
        )
        self.source = source
        self.line_no = line_no
        self.line = line
        self.problem = problem
