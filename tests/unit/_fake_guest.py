"""A fake guest for the phase engine's tests: dmesg as a ring buffer that overflows,
/dev/kmsg, the console log and /proc (from the x86_64 6.1 captures)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from kmodlab.channel.protocol import CommandResult
from kmodlab.phases import PROC_FILES

PROC = Path(__file__).resolve().parent.parent / "fixtures" / "proc" / "x86_64-6.1"
KTAP = ["KTAP version 1", "1..1", "# alloc: ksize=128 waste=28", "ok 1 alloc"]


class FakeGuest:
    """Just enough of kmodlab.guest.Guest for the engine: ``run``, ``push``, ``console_log``.

    ``ring_bytes`` bounds the emulated ring buffer (oldest lines go first); every line also
    reaches the console log.  ``hidden_reads`` makes the first dmesg reads miss the newest lines.
    ``on_command`` emulates what the module does for a command that is not the harness's.
    """

    def __init__(self, tmp_path: Path, ring_bytes: int = 1 << 20) -> None:
        self.console_log = tmp_path / "console.log"
        self.console_log.write_bytes(b"[    0.000000] Linux version 6.1.0\r\n")
        self.ring: list[str] = []
        self.ring_bytes = ring_bytes
        self.clock = 1.0
        self.commands: list[str] = []
        self.hidden_reads = 0
        self.on_command: Callable[[FakeGuest, str], int] = lambda guest, command: 0
        self.proc = {path: (PROC / f"{path.rsplit('/', 1)[1]}.txt").read_text()
                     for path in PROC_FILES}

    def printk(self, *texts: str, console: bool = True) -> None:
        for text in texts:
            self.clock += 0.001
            line = f"[{self.clock:12.6f}] {text}"
            self.ring.append(line)
            if console:
                with open(self.console_log, "a") as fh:
                    fh.write(line + "\r\n")
        while sum(len(x) + 1 for x in self.ring) > self.ring_bytes:
            self.ring.pop(0)

    def _dmesg(self) -> str:
        lines = self.ring
        if self.hidden_reads:
            self.hidden_reads -= 1
            lines = lines[:-3]
        return "".join(line + "\n" for line in lines)

    def run(self, command: str, timeout: float = 30.0, must_succeed: bool = False,
            isolate: bool = True) -> CommandResult:
        self.commands.append(command)
        out, status = "", 0
        if m := re.fullmatch(r"echo '([^']*)' > /dev/kmsg", command):
            self.printk(m.group(1))
        elif m := re.fullmatch(r"dmesg \| sed -n '/([^/]*)/,\$p' \| tail -c (\d+)", command):
            text = self._dmesg()
            idx = text.find(m.group(1))
            if idx >= 0:
                out = text[text.rfind("\n", 0, idx) + 1:][-int(m.group(2)):]
        elif m := re.fullmatch(r"dmesg \| tail -c (\d+)", command):
            out = self._dmesg()[-int(m.group(1)):]
        elif command.startswith("cat /proc/slabinfo"):
            parts = [self.proc[p] for p in PROC_FILES]
            if "/proc/zoneinfo" in command:       # the leak detector's capture
                parts.append((PROC / "zoneinfo.txt").read_text())
            if "KernelPageSize" in command:
                parts.append("KernelPageSize:        4 kB\n")
            out = "--kmodlab-proc-separator--\n".join(parts)
        elif command.startswith(("for f in", "mkdir -p")):
            pass
        else:
            status = self.on_command(self, command)
        return CommandResult(command, status, out.encode(), b"", 0.01)

    def push(self, local_path: Path | str, guest_path: str, timeout: float = 60.0) -> None:
        self.commands.append(f"push {guest_path}")

    def reads(self) -> list[str]:
        return [c for c in self.commands if c.startswith("dmesg")]


def printing(*lines: str, status: int = 0, console: bool = True):
    def handler(guest: FakeGuest, command: str) -> int:
        guest.printk(*lines, console=console)
        return status
    return handler


def edit_slabinfo(text: str, bump: dict[str, int], add: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` (a /proc/slabinfo) with ``bump`` added to caches' active_objs (num_objs raised
    to match) and ``add`` lines listed first, as the kernel lists new caches."""
    lines = []
    for line in text.splitlines():
        name = line.split(" ", 1)[0]
        if name in bump:
            parts = line.split()
            parts[1] = str(int(parts[1]) + bump[name])
            parts[2] = str(max(int(parts[2]), int(parts[1])))
            line = " ".join(parts)
        lines.append(line)
        if line.startswith("# name"):
            lines.extend(add)
    return "\n".join(lines) + "\n"
