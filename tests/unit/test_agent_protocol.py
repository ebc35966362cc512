"""The agent protocol, end to end against the real images/agent.sh run by the host's busybox.

No VM: the same shell script the guest runs is driven through pipes by the same codec the serial
and SSH transports use.  (The guest-side integration tests cover the real consoles.)
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from kmodlab.channel.agent import AgentConsole, ByteStream
from kmodlab.errors import CommandTimeout, GuestError, TransferError
from kmodlab.locate import data_dir

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="host busybox (busybox-static) not installed")


class PipeStream(ByteStream):
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        super().__init__()
        self.proc = proc

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _recv_some(self, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return b""
        data = os.read(fd, 65536)
        if not data:
            raise GuestError("agent exited")
        return data

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def agent(tmp_path: Path):
    script = str(data_dir("images") / "agent.sh")
    # The same pipeline as AGENT_COMMAND, with the host's busybox standing in for the guest's.
    proc = subprocess.Popen([BUSYBOX, "sh", "-c", f"{BUSYBOX} cat {script} - | {BUSYBOX} sh -s"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=tmp_path)
    console = AgentConsole(PipeStream(proc), transport="pipe")
    console.wait_ready(10)
    yield console
    console.close()


def test_exit_status_and_exact_output(agent: AgentConsole) -> None:
    result = agent.run("printf 'a\\nb'; exit 3")
    assert result.exit_status == 3
    assert result.stdout_bytes == b"a\nb"       # no trailing newline added


def test_stderr_is_separate(agent: AgentConsole) -> None:
    result = agent.run("echo out; echo err >&2")
    assert (result.stdout_bytes, result.stderr_bytes) == (b"out\n", b"err\n")


def test_quotes_newlines_and_prompt_lookalikes(agent: AgentConsole) -> None:
    command = "echo \"it's\" '$HOME'\necho '# root@kmodlab:~# '"
    result = agent.run(command)
    assert result.stdout == "it's $HOME\n# root@kmodlab:~# \n"


def test_binary_output(agent: AgentConsole) -> None:
    result = agent.run("printf '\\377\\000\\001\\002\\003'")
    assert result.stdout_bytes == b"\xff\x00\x01\x02\x03"


def test_long_output(agent: AgentConsole) -> None:
    result = agent.run("i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done")
    lines = result.stdout.splitlines()
    assert len(lines) == 3000 and lines[-1] == "line-2999"


def test_exit_and_syntax_error_do_not_kill_the_agent(agent: AgentConsole) -> None:
    assert agent.run("exit 7").exit_status == 7
    assert agent.run("if then fi").exit_status != 0
    assert agent.run("echo alive").stdout == "alive\n"


def test_commands_do_not_read_the_channel(agent: AgentConsole) -> None:
    # stdin is /dev/null: a command that reads stdin must not swallow the next request.
    assert agent.run("cat").stdout == ""
    assert agent.run("echo next").stdout == "next\n"


def test_push_verifies_md5(agent: AgentConsole, tmp_path: Path) -> None:
    payload = os.urandom(300 * 1024)
    src = tmp_path / "payload.bin"
    src.write_bytes(payload)
    dest = tmp_path / "copy.bin"
    agent.push(src, str(dest))
    assert dest.read_bytes() == payload
    assert agent.read(str(dest)) == payload


def test_push_to_unwritable_path_is_reported(agent: AgentConsole, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x" * 10)
    with pytest.raises(TransferError):
        agent.push(src, "/nonexistent-dir/f")
    assert agent.run("echo still-here").stdout == "still-here\n"


def test_timeout_is_reported(agent: AgentConsole) -> None:
    with pytest.raises(CommandTimeout):
        agent.run("sleep 5", timeout=0.5)


def test_unisolated_fast_path_runs_in_the_agent_shell(agent: AgentConsole) -> None:
    assert agent.run("printf x; echo e >&2; false", isolate=False).exit_status == 1
    result = agent.run("cat /proc/self/status >/dev/null && echo fast", isolate=False)
    assert (result.stdout, result.stderr) == ("fast\n", "")


def test_the_agent_leaves_no_file_behind_when_its_input_ends(tmp_path: Path) -> None:
    """Every command's stderr goes through /tmp/.km_err.<agent pid>; it stayed in the host's
    /tmp after each of these tests (and in a guest's after each session)."""
    script = str(data_dir("images") / "agent.sh")
    proc = subprocess.Popen([BUSYBOX, "sh", "-c", f"{BUSYBOX} cat {script} - | {BUSYBOX} sh -s"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=tmp_path)
    console = AgentConsole(PipeStream(proc), transport="pipe")
    console.wait_ready(10)
    result = console.run("echo $$; echo err >&2", timeout=10)   # $$: the agent's own pid
    assert result.stderr.strip() == "err"
    err_file = Path(f"/tmp/.km_err.{int(result.stdout)}")
    assert err_file.exists()
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()                                # the host closes the channel
    proc.stdout.read()
    assert proc.wait(10) == 0
    assert not err_file.exists()
