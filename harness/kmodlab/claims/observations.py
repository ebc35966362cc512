"""What the probes measured on one kernel, as plain data (saved as JSON between runs).

Values are the KTAP ``key=value`` diagnostics of each test point (see
modules/common/kmodlab_ktap.h), grouped by probe and test name, so a check reads
``obs.values("kmalloc_sweep", "kmalloc_160_kernel")["ksize"]`` without knowing how the module ran.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kmodlab.paths import cache_dir

Values = dict[str, int | str]

MEMORY_TEST = "memory_held"
"""The pseudo test under which a probe's memory use (kmodlab.claims.measure.memory_held()) is
stored next to its KTAP tests; the judges read it by this name."""


@dataclass
class Observations:
    release: str
    label: str                                   # "arm64-6.1"
    ncpus: int
    taken: str = ""
    probes: dict[str, dict[str, Values]] = field(default_factory=dict)
    status: dict[str, dict[str, str]] = field(default_factory=dict)   # probe -> test -> status
    errors: dict[str, str] = field(default_factory=dict)             # probe -> why it failed
    facts: dict[str, str] = field(default_factory=dict)              # e.g. mem auto-init line
    # probe -> the kernel's reports during its load ("might_sleep: sleeping function ...")
    events: dict[str, list[str]] = field(default_factory=dict)
    # probe -> the kernel it ran on, when not this record's (a probe with a kconfig fragment)
    kernels: dict[str, str] = field(default_factory=dict)

    def values(self, probe: str, test: str) -> Values | None:
        """The values of one test point, or None when the probe or the test did not run."""
        return self.probes.get(probe, {}).get(test)

    def tests(self, probe: str) -> dict[str, Values]:
        return self.probes.get(probe, {})

    def missing(self, probe: str) -> str:
        """Why a probe has no values, for the report."""
        return self.errors.get(probe, f"probe {probe} did not run on {self.label}")

    def merge_probes(self, other: Observations) -> None:
        """Take ``other``'s probes (run on another kernel of the same series, e.g. one built
        with debugging options), remembering which kernel each ran on."""
        for name in (*other.probes, *other.errors):
            self.kernels[name] = other.release
        self.probes.update(other.probes)
        self.status.update(other.status)
        self.errors.update(other.errors)
        self.events.update(other.events)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Observations:
        return cls(**json.loads(text))


def store_path(release: str) -> Path:
    return cache_dir("claims", "measurements") / f"{release}.json"


def save(obs: Observations) -> Path:
    path = store_path(obs.release)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(obs.to_json())
    tmp.rename(path)
    return path


def load(release: str) -> Observations | None:
    """The stored observations of ``release`` (None if never measured or unreadable)."""
    try:
        return Observations.from_json(store_path(release).read_text())
    except (OSError, ValueError, TypeError):
        return None
