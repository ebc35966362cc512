"""The build jail: untrusted submissions compile in a bubblewrap sandbox that holds no host files.

Source scanning cannot win against a compiler and an assembler that read files (an ``.incbin``
built from ``.irp``/``.macro`` pieces, ``__has_include()`` probes...), so the guarantee is a
mount namespace in which the files are simply not there.  ``bwrap`` (Debian's ``bubblewrap``)
builds it from an empty tmpfs root:

* **read-only**: the toolchain (``/usr/bin``, the multiarch library folders and gcc's folders in
  ``/usr/lib``, ``/usr/lib64``, ``/usr/<triplet>`` of a cross toolchain, ``/bin``, ``/lib``,
  ``/lib64`` as the host has them) and the target kernel's headers tree, relocated to
  ``/kmodlab/kernel/usr/{src,lib}`` (every symlink in it checked to resolve inside the jail);
* **writable**: only the submission's build folder, at ``/kmodlab/submission``, and a private,
  size-limited ``/tmp``; the root itself is remounted read-only;
* ``/dev`` has null, zero, full, random and urandom; there is no ``/proc`` (only a fixed
  stand-in for ``/proc/self/maps``, which objtool needs); ``/etc`` holds only
  the ``alternatives`` links the toolchain needs (``awk``): no passwd, no host configuration;
* every namespace is unshared (no network), the command runs in a new session, dies with its
  parent, has no capabilities and a cleared environment (``PATH`` and the C locale).

The paths the build sees do not depend on the host (``__FILE__`` is ``/kmodlab/submission/...``).
There is no fallback: if bwrap is missing or cannot create namespaces, :func:`require_jail`
raises :class:`JailError` and nothing is compiled.  Resource limits (kmodlab.labs.limited) are
set before bwrap starts and hold for everything inside.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from kmodlab.errors import BuildError
from kmodlab.kernels.kernel import Kernel
from kmodlab.labs.limited import run_limited

JAIL_ROOT = "/kmodlab"
JAIL_SUBMISSION = f"{JAIL_ROOT}/submission"
JAIL_KERNEL = f"{JAIL_ROOT}/kernel"
JAIL_PATH = "/usr/bin:/bin"
JAIL_HOSTNAME = "kmodlab-jail"
TMP_BYTES = 256 << 20
DEVICES = ("null", "zero", "full", "random", "urandom")
# /usr/bin/<name> -> /etc/alternatives/<name> -> the real tool: kbuild runs these.
ALTERNATIVES = ("awk",)
JAIL_ENV = (("PATH", JAIL_PATH), ("LC_ALL", "C"), ("LANG", "C"), ("HOME", "/tmp"),
            ("TMPDIR", "/tmp"))
# Nothing under these may be bound into the jail (a kernel tree linking there is refused).
SENSITIVE = ("/etc", "/root", "/home", "/work", "/var", "/srv", "/opt", "/tmp", "/proc", "/sys",
             "/dev", "/run", "/boot", "/mnt", "/media")
INSTALL_HINT = ("apt-get install bubblewrap (the host packages are listed in "
                "harness/kmodlab/host-packages.txt; `kmodlab doctor` checks them)")


class JailError(BuildError):
    """The build jail is unavailable or broken: nothing untrusted may be compiled."""


@dataclass(frozen=True)
class Mount:
    source: str          # host path
    dest: str            # path in the jail
    mode: str = "ro"     # "ro", "rw" or "dev" (a device node)


@dataclass(frozen=True)
class Jail:
    """What a bwrap sandbox contains; :meth:`argv` is pure (no file system access)."""

    mounts: tuple[Mount, ...]
    symlinks: tuple[tuple[str, str], ...] = ()      # (target, link path in the jail)
    env: tuple[tuple[str, str], ...] = JAIL_ENV
    chdir: str = "/"
    tmp_bytes: int = TMP_BYTES
    hostname: str = JAIL_HOSTNAME
    devices: tuple[str, ...] = DEVICES

    def argv(self, command: Sequence[str], bwrap: str = "bwrap",
             status_fd: int | None = None) -> list[str]:
        """``bwrap <options> -- command``."""
        if not command:
            raise ValueError("no command to run in the jail")
        argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
                "--hostname", self.hostname]
        if status_fd is not None:
            argv += ["--json-status-fd", str(status_fd)]
        for name, value in self.env:
            argv += ["--setenv", name, value]
        # The private /tmp first: a tree bound below /tmp (a cache in $KMODLAB_CACHE=/tmp/...)
        # then lands on it instead of being hidden by it.
        argv += ["--size", str(self.tmp_bytes), "--tmpfs", "/tmp"]
        # Parents before children: a bind inside another bind must come after it.
        flags = {"ro": "--ro-bind", "rw": "--bind", "dev": "--dev-bind"}
        for m in sorted(self.mounts, key=lambda m: _depth(m.dest)):
            argv += [flags[m.mode], m.source, m.dest]
        for target, link in self.symlinks:
            argv += ["--symlink", target, link]
        for dev in self.devices:
            argv += ["--dev-bind", f"/dev/{dev}", f"/dev/{dev}"]
        argv += ["--remount-ro", "/", "--chdir", self.chdir, "--", *command]
        return argv

    def with_mounts(self, *mounts: Mount, chdir: str | None = None) -> Jail:
        return Jail(self.mounts + mounts, self.symlinks, self.env, chdir or self.chdir,
                    self.tmp_bytes, self.hostname, self.devices)


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def _under(path: str, folder: str) -> bool:
    folder = folder.rstrip("/") or "/"
    return folder == "/" or path == folder or path.startswith(folder + "/")


def is_sensitive(path: str) -> bool:
    """``/``, a sensitive folder, anything inside one, or an ancestor of one."""
    path = os.path.normpath(path)
    return path == "/" or any(_under(path, s) or _under(s, path) for s in SENSITIVE)


def bindable_link_target(path: str) -> bool:
    """May a symlink in a custom kernel tree bring ``path`` into the jail (at its own path)?
    Not ``/``, nor a folder holding a sensitive one or the home folder, nor system state
    (``/etc``, ``/proc``...), nor anything under a hidden folder (``~/.ssh``, ``~/.config``)."""
    path = os.path.normpath(path)
    if any(_under(s, path) for s in (*SENSITIVE, str(Path.home()))):
        return False
    if any(_under(path, s) for s in ("/etc", "/proc", "/sys", "/dev", "/run", "/boot", "/var")):
        return False
    return not any(part.startswith(".") for part in path.split("/"))


# ------------------------------------------------------------------------------ the toolchain
def toolchain(cross_triplets: Iterable[str] = (), root: str = "/") -> tuple[list[Mount],
                                                                              list[tuple[str, str]]]:
    """Read-only mounts and symlinks for make, gcc, binutils and the tools kbuild runs.

    ``root`` is the host root (a fake tree in tests), or the root of another Debian release
    (:mod:`kmodlab.kernels.build_root`) whose toolchain the kernel needs.  Merged-/usr hosts get ``/bin`` ->
    ``usr/bin`` symlinks like the host's; others get the real folders bound."""
    def host(p: str) -> str:
        return os.path.join(root, p.lstrip("/"))

    mounts: list[Mount] = []
    links: list[tuple[str, str]] = []

    def bind(p: str) -> None:
        if os.path.isdir(host(p)) and not any(_under(p, m.dest) for m in mounts):
            mounts.append(Mount(os.path.realpath(host(p)), p))

    bind("/usr/bin")
    for lib in sorted(Path(host("/usr/lib")).glob("*-linux-gnu*")):
        bind(f"/usr/lib/{lib.name}")                    # shared libraries (multiarch)
    for p in ("/usr/lib/gcc", "/usr/lib/gcc-cross", "/usr/libexec/gcc", "/usr/libexec/gcc-cross",
              "/usr/lib64"):
        bind(p)
    for triplet in cross_triplets:
        bind(f"/usr/{triplet}")                         # a cross gcc's as/ld live here
    for top in ("/bin", "/lib", "/lib64"):
        if os.path.islink(host(top)):
            links.append((os.readlink(host(top)), top))
        else:
            bind(top)
    for name in ALTERNATIVES:
        first = f"/usr/bin/{name}"
        if not os.path.islink(host(first)):
            continue
        via = os.readlink(host(first))
        if not via.startswith("/") or any(_under(via, m.dest) for m in mounts):
            continue                                    # resolves inside the jail already
        final = _follow(first, host)
        if os.path.exists(host(final)) and any(_under(final, m.dest) for m in mounts):
            links.append((final, via))
    return mounts, links


def _follow(path: str, host: Callable[[str], str]) -> str:
    """Where a chain of symlinks ending in files leads (paths as seen from ``/``)."""
    for _ in range(16):
        if not os.path.islink(host(path)):
            break
        target = os.readlink(host(path))
        path = target if target.startswith("/") else \
            os.path.normpath(os.path.join(os.path.dirname(path), target))
    return path


# ------------------------------------------------------------------------------ the kernel
@dataclass(frozen=True)
class KernelTree:
    mounts: tuple[Mount, ...]
    headers: str                                   # the headers folder in the jail
    problems: tuple[str, ...] = field(default=())  # symlinks that would leave the jail


def kernel_tree(kernel: Kernel) -> KernelTree:
    return _kernel_tree(str(kernel.headers_dir), str(kernel.root), kernel_source_tree(kernel))


def kernel_source_tree(kernel: Kernel) -> str | None:
    """The source tree of a kernel kmodlab built (``--config``): its kbuild output folder
    links to it (``source``) and its Makefile includes it by absolute path, so kbuild needs
    it at that path.  Only a tree in kmodlab's own source cache is trusted; None otherwise."""
    from kmodlab.paths import cache_dir

    link = Path(kernel.headers_dir) / "source"
    if not link.is_symlink():
        return None
    target = os.path.realpath(link)
    sources = os.path.realpath(cache_dir("kernel-sources"))
    return target if _under(target, sources) and target != sources and \
        os.path.isdir(target) else None


@functools.lru_cache(maxsize=32)
def _kernel_tree(headers_dir: str, kernel_root: str, source: str | None = None) -> KernelTree:
    """A provisioned kernel's ``root/usr/{src,lib}`` is relocated to ``/kmodlab/kernel/usr``
    (the headers' symlinks are relative); any other kbuild tree is bound at its own path, with
    the trusted source tree of a kernel kmodlab built (:func:`kernel_source_tree`)."""
    headers = os.path.realpath(headers_dir)
    usr = os.path.realpath(os.path.join(kernel_root, "root", "usr"))
    if _under(headers, os.path.join(usr, "src")):
        mounts = [Mount(os.path.join(usr, "src"), f"{JAIL_KERNEL}/usr/src")]
        if os.path.isdir(os.path.join(usr, "lib")):
            mounts.append(Mount(os.path.join(usr, "lib"), f"{JAIL_KERNEL}/usr/lib"))
        jail_headers = f"{JAIL_KERNEL}/usr/src/" + os.path.relpath(headers, os.path.join(usr, "src"))
    else:
        mounts = [Mount(headers, headers)]
        jail_headers = headers
        if source is not None:
            mounts.append(Mount(source, source))
    problems = _close_links(mounts, may_add=not _under(headers, os.path.join(usr, "src")))
    return KernelTree(tuple(mounts), jail_headers, tuple(problems))


def _to_jail(path: str, mounts: Sequence[Mount]) -> str | None:
    for m in mounts:
        if _under(path, m.source):
            return m.dest + path[len(m.source.rstrip("/")):]
    return None


def _to_host(path: str, mounts: Sequence[Mount]) -> str | None:
    for m in mounts:
        if _under(path, m.dest):
            return m.source + path[len(m.dest.rstrip("/")):]
    return None


def _symlinks(top: str) -> Iterator[str]:
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                yield entry.path
            elif entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)


def _close_links(mounts: list[Mount], may_add: bool, rounds: int = 8) -> list[str]:
    """Check that every symlink in the mounted trees resolves inside the jail as on the host.

    For a tree bound at its own path (``may_add``), a link leaving it adds its target to the
    mounts, at its own path too, if :func:`bindable_link_target` allows it.
    Returns the links that would point elsewhere (or nowhere) in the jail; links dangling on
    the host as well are ignored."""
    problems: list[str] = []
    seen: set[str] = set()
    for _ in range(rounds):
        added = False
        for m in list(mounts):
            if m.source in seen or not os.path.isdir(m.source):
                continue
            seen.add(m.source)
            for path in _symlinks(m.source):
                target = os.readlink(path)
                host_target = os.path.realpath(path)
                if not os.path.exists(host_target):
                    continue
                jail_link = _to_jail(path, mounts) or path
                jail_target = os.path.normpath(os.path.join(os.path.dirname(jail_link), target))
                back = _to_host(jail_target, mounts)
                if back is not None and os.path.realpath(back) == host_target:
                    continue
                if may_add and _to_jail(host_target, mounts) is None \
                        and bindable_link_target(host_target):
                    mounts.append(Mount(host_target, host_target))
                    added = True
                    continue
                problems.append(f"{path} -> {target}")
        if not added:
            break
    return problems


# ------------------------------------------------------------------------------ availability
def require_bwrap() -> str:
    found = shutil.which("bwrap")
    if not found:
        raise JailError("bubblewrap (bwrap) is not installed.  kmodlab compiles student "
                        "submissions only inside a bwrap jail and will not build them without "
                        f"it: {INSTALL_HINT}")
    return found


def toolchain_root(kernel: Kernel) -> str:
    """Where the toolchain for ``kernel`` comes from: ``/`` (the host), or the root of another
    Debian release its series builds in (:mod:`kmodlab.kernels.build_root`)."""
    from kmodlab.kernels.build_root import root_for

    root = root_for(kernel)
    return str(root.path) if root is not None else "/"


# objtool (7.x, tools/objtool/signal.c:read_stack_limit()) refuses to start unless
# /proc/self/maps has a "[stack]" line; it only uses it to word its own crash message.  The jail
# has no /proc (a procfs would show the host's CPU, memory and kernel), so it gets this file.
PROC_SELF_MAPS = "/proc/self/maps"
FAKE_MAPS = "00000000-00000000 rw-p 00000000 00:00 0                          [stack]\n"


def fake_proc_maps() -> Mount:
    """A read-only stand-in for /proc/self/maps (see :data:`FAKE_MAPS`)."""
    from kmodlab.paths import cache_dir

    path = cache_dir("jail") / "proc-self-maps"
    if not path.is_file() or path.read_text() != FAKE_MAPS:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(FAKE_MAPS)
        tmp.replace(path)
    return Mount(str(path), PROC_SELF_MAPS)


def base_jail(kernel: Kernel) -> Jail:
    from kmodlab.registry.arch import arch_profile

    triplet = arch_profile(kernel.arch).cross_compile.rstrip("-")
    mounts, links = toolchain([triplet] if triplet else [], root=toolchain_root(kernel))
    tree = kernel_tree(kernel)
    return Jail(tuple(mounts) + tree.mounts + (fake_proc_maps(),), tuple(links))


def _probe_script(kernel: Kernel, assembler: str | None) -> str:
    from kmodlab.kernels.build_env import required_tools

    tools = [t.tool for t in required_tools(kernel)]
    cc, ld = tools[1], tools[2]
    names = " ".join(["sh", "awk", "sed", "grep", "cat", *tools])
    lines = [
        "set -e",
        (f"for t in {names}; do command -v \"$t\" >/dev/null || "
         "{ echo \"kmodlab jail: $t is not in the jail's PATH\"; exit 3; }; done"),
        "printf 'int kmodlab_probe;\\n' > /tmp/p.c",
        f"{cc} -c /tmp/p.c -o /tmp/p.o",
        f"{ld} -r /tmp/p.o -o /tmp/q.o",
        f"test -d '{kernel_tree(kernel).headers}/include'",
    ]
    if assembler:
        lines.append(f"test -x '{assembler}' || {{ echo 'kmodlab jail: no {assembler}'; exit 3; }}")
    lines.append("test ! -e /etc/passwd")
    return "\n".join(lines) + "\n"


def require_jail(kernel: Kernel, assembler: str | None = None) -> Jail:
    """The jail for ``kernel``'s builds, after checking (once per process and kernel) that
    bwrap can create it and the toolchain works inside.  Raises :class:`JailError`."""
    return _checked_jail(kernel, assembler)


@functools.lru_cache(maxsize=32)
def _checked_jail(kernel: Kernel, assembler: str | None) -> Jail:
    bwrap = require_bwrap()
    tree = kernel_tree(kernel)
    if tree.problems:
        raise JailError(f"the kernel headers of {kernel.release} contain symlinks that leave the "
                        "build jail (refusing to build untrusted code with them): "
                        + "; ".join(tree.problems[:5]))
    jail = base_jail(kernel)
    argv = jail.argv(["/bin/sh", "-c", _probe_script(kernel, assembler)], bwrap=bwrap)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                              env={"PATH": os.environ.get("PATH", JAIL_PATH), "LC_ALL": "C"},
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JailError(f"cannot run bubblewrap ({bwrap}): {exc}; kmodlab will not compile "
                        "untrusted code outside its jail") from None
    if proc.returncode != 0:
        said = (proc.stderr + proc.stdout).strip()[-1500:] or f"exit status {proc.returncode}"
        if said.startswith("bwrap") or "bwrap:" in said:
            raise JailError(f"bubblewrap cannot create the build jail on this machine ({said}).  "
                            "kmodlab compiles submissions only inside it (it needs user or mount "
                            "namespaces: run as root, or allow unprivileged user namespaces, "
                            "e.g. sysctl kernel.unprivileged_userns_clone=1 / "
                            "user.max_user_namespaces); nothing was built")
        raise JailError(f"the toolchain does not work inside the build jail for "
                        f"{kernel.label}: {said}")
    return jail


def root_build_argv(kernel: Kernel, directory: Path, make_argv: Sequence[str],
                    pwd: Path | None = None) -> list[str]:
    """bwrap argv running kbuild for kmodlab's own modules (or a user's tree) when the kernel's
    toolchain is a Debian root (:func:`toolchain_root`): the submissions' jail with the build
    folder bound read-write at its own path, and ``pwd`` (the user's folder a copy was made
    of) read-only at its own, so paths in the log and ``$(PWD)`` read as on the host."""
    jail = require_jail(kernel)
    folder = str(Path(directory).resolve())
    mounts = [Mount(folder, folder, "rw")]
    env = jail.env
    if pwd is not None:
        mine = str(Path(pwd).resolve())
        if mine != folder:
            mounts.append(Mount(mine, mine, "ro"))
        env = (*env, ("PWD", str(pwd)))
    jail = replace(jail.with_mounts(*mounts, chdir=folder), env=env)
    headers = kernel_tree(kernel).headers
    host_headers = {str(kernel.headers_dir), str(Path(kernel.headers_dir).resolve())}
    mapped = [headers if arg in host_headers else arg for arg in make_argv]
    if headers not in mapped:
        raise BuildError(f"cannot map the kbuild command into the jail: {' '.join(make_argv)}")
    return jail.argv(mapped, bwrap=require_bwrap())


# ------------------------------------------------------------------------------ running
@dataclass
class JailRun:
    returncode: int | None     # the jailed command's exit status (128+N: killed by signal N);
    seconds: float             # None: stopped at the timeout
    started: bool


def _read_status(fd: int) -> list[dict[str, object]]:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    docs = []
    for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
        try:
            docs.append(json.loads(line))
        except ValueError:
            continue
    return docs


def run_in_jail(jail: Jail, command: Sequence[str], log_path: Path, timeout: float,
                limits: Sequence[str] = (), cwd: Path | None = None) -> JailRun:
    """Run ``command`` in ``jail`` (under the ``limits`` wrapper), output to ``log_path``.

    Raises :class:`JailError` if the jail could not be set up (the command never ran)."""
    bwrap = require_bwrap()
    r, w = os.pipe()
    try:
        argv = [*limits, *jail.argv(command, bwrap=bwrap, status_fd=w)]
        env = {"PATH": os.environ.get("PATH", JAIL_PATH), "LC_ALL": "C", "LANG": "C"}
        rc, seconds = run_limited(argv, cwd or Path("/"), log_path, timeout, env,
                                  pass_fds=(w,))
    finally:
        os.close(w)
    try:
        status = _read_status(r)
    finally:
        os.close(r)
    started = any("child-pid" in doc for doc in status)
    exits = [doc["exit-code"] for doc in status if isinstance(doc.get("exit-code"), int)]
    if rc is None:
        return JailRun(None, seconds, started)
    if not started:
        said = _bwrap_message(log_path)
        raise JailError(f"bubblewrap could not start the build jail (exit status {rc}"
                        f"{': ' + said if said else ''}); kmodlab will not compile untrusted "
                        "code outside it")
    code = int(exits[-1]) if exits else rc   # type: ignore[arg-type]
    return JailRun(code, seconds, started)


def _bwrap_message(log_path: Path) -> str:
    try:
        with open(log_path, "rb") as fh:
            text = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if re.match(r"^(bwrap|Traceback|\w+Error)", ln)]
    return " / ".join(lines[:3])[:500]
