"""Progress for slow provisioning steps: a rich bar on a terminal, log lines otherwise.

Why not print: CI logs must stay readable (no carriage-return bars), and library callers may pass
their own ``progress(message, fraction)`` callback instead.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from kmodlab.kernels.apt import Progress

log = logging.getLogger("kmodlab.kernels")


@contextlib.contextmanager
def progress_reporter(progress: Progress | None, title: str) -> Iterator[Progress]:
    """Yield a callback: the caller's, a rich bar when stderr is a tty, else one that logs."""
    if progress is not None:
        yield progress
        return
    if not sys.stderr.isatty():
        last: list[str] = []

        def to_log(message: str, fraction: float | None) -> None:
            step = message.split(":", 1)[0]
            if not last or last[-1] != step:     # one line per step, not per percent
                last.append(step)
                log.info("%s: %s", title, step)

        yield to_log
        return

    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(title, total=None)

        def to_bar(message: str, fraction: float | None) -> None:
            bar.update(task, description=f"{title}: {message}",
                       total=1.0 if fraction is not None else None,
                       completed=fraction or 0.0)

        yield to_bar
