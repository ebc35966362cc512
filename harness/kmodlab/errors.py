"""Error types.  Every message says what went wrong *and* what to do next.

Callers catch :class:`KmodlabError` for anything the harness reports deliberately; anything else
is a bug in kmodlab.
"""

from __future__ import annotations


class KmodlabError(Exception):
    """Base class of every error kmodlab raises on purpose."""


class ConfigError(KmodlabError):
    """Bad user input: unknown arch, series, flavour, parameter..."""


class MissingToolError(KmodlabError):
    """A host tool (qemu, cross compiler, dpkg-deb...) is not installed."""

    def __init__(self, tool: str, package: str) -> None:
        super().__init__(
            f"'{tool}' is not installed; install it with: apt-get install {package}"
            " (or run 'make setup', which installs every host package kmodlab needs)"
        )
        self.tool = tool
        self.package = package


class ProvisionError(KmodlabError):
    """A kernel or guest image could not be fetched, extracted or prepared."""


class KernelConfigError(KmodlabError):
    """The kernel's .config lacks options the harness needs (each one is named)."""

    def __init__(self, release: str, missing: list[str], advice: str | None = None) -> None:
        lines = "\n".join(f"  {m}" for m in missing)
        advice = advice or ("see kconfig/required.config; use another flavour or a kernel built "
                            "with these options.")
        super().__init__(f"kernel {release} lacks options kmodlab needs:\n{lines}\n{advice}")
        self.release = release
        self.missing = missing


class BuildError(KmodlabError):
    """A kernel module failed to compile or link."""


class GuestError(KmodlabError):
    """Something went wrong with a guest; carries the state it failed in and the console tail."""

    def __init__(self, message: str, *, state: str = "", log_tail: str = "", log_path: str = "") -> None:
        parts = [message]
        if state:
            parts.append(f"(guest state: {state})")
        if log_tail:
            parts.append("last console lines:\n" + log_tail)
        if log_path:
            parts.append(f"full console log: {log_path}")
        super().__init__("\n".join(parts))
        self.state = state
        self.log_tail = log_tail
        self.log_path = log_path


class ChannelClosed(GuestError):
    """The command channel hit end-of-file: the agent, the SSH session or QEMU went away."""


class BootTimeout(GuestError):
    """The guest did not reach its command prompt within the boot timeout."""


class CommandTimeout(GuestError):
    """A command did not finish within its timeout (the guest may be hung)."""


class KernelCrash(GuestError):
    """The kernel panicked, oopsed or hit a BUG; ``kind`` says which, ``excerpt`` holds the report."""

    def __init__(self, kind: str, excerpt: str, **kwargs: str) -> None:
        from kmodlab.observe.reports import report_details  # the parser, only when it crashed

        details = report_details(excerpt)
        what = f": {details.describe()}" if details is not None else ""
        super().__init__(f"kernel {kind} detected on the console{what}", **kwargs)
        self.kind = kind
        self.excerpt = excerpt
        self.details = details


class TransferError(GuestError):
    """A file pushed into or read from the guest arrived damaged or incomplete."""


class CommandFailed(GuestError):
    """A command run with ``must_succeed=True`` exited non-zero."""
