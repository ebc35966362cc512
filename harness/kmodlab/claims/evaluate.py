"""Judge every claim on every kernel: the model's verdict, the measured one, and how they agree.

Where the two differ, the kernel is right: the verdict shown is the measured one, and the
disagreement is reported (it is a bug in the model or in the measurement, never hidden).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kmodlab.claims.catalog import Catalog, Claim
from kmodlab.claims.judges import JUDGES
from kmodlab.claims.judges.base import Finding, NotMeasured
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget
from kmodlab.errors import KmodlabError


@dataclass(frozen=True)
class KernelVerdict:
    """One claim on one kernel."""

    target: ModelTarget
    model: Finding
    measured: Finding | None = None
    not_measured: str = ""          # why there is no measurement (when one was asked for)

    @property
    def verdict(self) -> str:
        return self.measured.verdict if self.measured is not None else self.model.verdict

    @property
    def answer(self) -> str:
        return self.model.answer

    @property
    def agrees(self) -> bool | None:
        """Model and measurement agree (None: not measured, or nothing comparable)."""
        if self.measured is None or not self.measured.comparable:
            return None
        if self.measured.agrees is False or self.measured.verdict != self.model.verdict:
            return False
        return self.measured.agrees


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    kernels: tuple[KernelVerdict, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        """The common verdict, or ``depends`` when the kernels disagree."""
        verdicts = {k.verdict for k in self.kernels}
        return verdicts.pop() if len(verdicts) == 1 else "depends"

    def answer_groups(self) -> list[tuple[list[str], str]]:
        """Kernels that share the same true answer, grouped, in kernel order."""
        groups: dict[str, list[str]] = {}
        for k in self.kernels:
            groups.setdefault(k.answer, []).append(f"{k.target.arch} {k.target.series}")
        return [(labels, answer) for answer, labels in groups.items()]

    @property
    def disagreements(self) -> list[KernelVerdict]:
        return [k for k in self.kernels if k.agrees is False]


def judge(claim: Claim, target: ModelTarget, obs: Observations | None) -> KernelVerdict:
    judge = JUDGES[claim.judge]
    model = judge.model(target, **claim.args)
    if obs is None:
        return KernelVerdict(target, model)
    missing = [p for p in claim.probes if p not in obs.probes]
    try:
        measured = judge.measured(target, obs, **claim.args)
    except NotMeasured as exc:
        return KernelVerdict(target, model, None, str(exc))
    except (KeyError, TypeError, ValueError, KmodlabError) as exc:
        return KernelVerdict(target, model, None, f"measurement unreadable: {exc}")
    why = "; ".join(obs.missing(p) for p in missing) or "the probe reported no usable values"
    return KernelVerdict(target, model, measured, "" if measured else why)


def evaluate(catalog: Catalog, targets: Sequence[ModelTarget],
             observations: Mapping[str, Observations] | None = None,
             claims: Sequence[Claim] | None = None) -> list[ClaimResult]:
    """Every claim (or ``claims``) on every target; ``observations`` by target label."""
    observations = observations or {}
    return [ClaimResult(claim, tuple(judge(claim, t, observations.get(t.label))
                                     for t in targets))
            for claim in (claims if claims is not None else catalog.claims)]
