"""Error types of the lab package.  Messages say where (file:line) and what to do next."""

from __future__ import annotations

from kmodlab.errors import BuildError, ConfigError, KmodlabError


class LabError(ConfigError):
    """A lab folder or its lab.yaml is invalid; the message names the file, line and field."""


class ExpressionError(LabError):
    """An expression in lab.yaml is not in the allowed subset (found when the lab is loaded)."""


class EvaluationError(KmodlabError):
    """An expression could not be evaluated on a submission's observations (a missing value,
    a division by zero...).  The check it belongs to fails with this message."""


class SubmissionRejected(BuildError):
    """A submission was refused before compilation (a host include, a symlink, a bad file).

    The message names the submission's file and line but never quotes host files."""


class SkeletonError(LabError):
    """TODO-BEGIN/TODO-END markers in a reference solution are unbalanced or malformed."""
