"""KTAP v1 (Documentation/dev-tools/ktap.rst) from module output, including text taken from dmesg.

What this parser decides where the spec leaves room:

* **Documents.** Every version line (``KTAP version 1``, also ``TAP version 13/14``) at the
  outermost indentation starts a new document, so a module that prints one document at load and
  one at unload yields two.  Lines before the first version line are ignored.
* **Nesting.** A subtest is any block more indented than its parent (KTAP says two spaces, KUnit
  prints four: any increase counts).  It starts with a version line, a KUnit ``# Subtest: <name>``
  header, or a plan; the next result line at the parent's indentation is the subtest's result.
  When a subtest's header is followed by result lines indented deeper still (kunit_tool's
  ``test_is_test_passed-failure-nested.log``), those results are the subtest's own (a warning),
  not a further subtest: kunit_tool ignores indentation and reads them so too.
* **Diagnostics attach forwards**: a ``# ...`` line belongs to the next result line at its own
  indentation level (the spec: "diagnostic lines regarding a test are directly before the test
  result line for that test"; KUnit prints ``# test: pass:2 ...`` before ``ok 1 test``).
  Diagnostics after the last result of a document stay on the document (``diagnostics``).
* **Measured values** travel as ``# name: k1=v1 k2=v2`` or ``# k1=v1 k2=v2`` (and as the
  diagnostic data of a result line, ``ok 5 rc # rcode=0``).  A diagnostic carries values only
  when *every* token after the optional ``name:`` is ``key=value``; decimal and ``0x`` hex
  values become ints.
* **Problems are never dropped.**  Plan/count mismatches, out-of-sequence numbers, subtests
  without a result line, documents and subtests that ran no test at all (no result line, or a
  ``1..0`` plan: kunit_tool's "0 tests run!"; as there, not for a subtest whose own result line
  already says ``not ok`` or ``# SKIP``) and ``Bail out!`` are recorded in ``errors`` (each
  with its line); ``strict=True`` raises the first one as a KtapError.  Softer deviations (no
  plan, subtest without version line, subtest/result name mismatch) go to ``warnings``.
* Unknown lines (other kernel messages interleaved in dmesg) are ignored, as the spec allows.

Verdicts follow the kernel's own KTAP consumer, kunit_tool (tools/testing/kunit/kunit_parser.py):
every test without subtests counts once as passed, failed, skipped or crashed
(:class:`KtapCounts`), and a document's :attr:`KtapDocument.status` is kunit_tool's
``SUCCESS``/``FAILURE``/``SKIPPED``/``TEST_CRASHED``/``NO_TESTS``.  A test is **crashed** when
its result line never came (a planned test missing when the input ends or its suite's result line
arrives: kunit_tool's "missing expected subtest!") or when its log says so: KUnit prints
``# <test>: try faulted[: last line seen <file>:<line>]`` when a test's thread dies
(lib/kunit/try-catch.c), and kunit_tool read ``# <test>: kunit test case crashed!`` as
TEST_CRASHED until 2022 ("kunit: tool: remove dead parse_crash_in_log() logic", Linux 5.19;
its test_is_test_passed-crash.log went with it).  Today's kunit_tool reads neither, so there
a crashed test whose result line came is a plain FAILURE.
Where kmodlab differs: ``KtapDocument.ok`` is False when the document has any error (kunit_tool
prints errors but may still report SUCCESS); ``TODO``/``XFAIL`` results count as passed (TAP: a
TODO failure is not a failure), where kunit_tool, which knows only ``SKIP``, fails them; and
``errors`` counts each problem once (see :class:`KtapCounts`).
:func:`ktap_verdict` sums the documents of a log and makes "no KTAP at all" a failure when some
was expected.

Parsing is linear in the number of lines; counts are computed once per document, on first use.
Documents are not meant to be changed after parsing (the counts would not follow).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kmodlab.observe.dmesg import parse_line
from kmodlab.observe.errors import ParseError

SOURCE = "KTAP"
DIRECTIVES = ("SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR")

# kunit_tool's TestStatus names
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
SKIPPED = "SKIPPED"
TEST_CRASHED = "TEST_CRASHED"
NO_TESTS = "NO_TESTS"
FAILURE_TO_PARSE_TESTS = "FAILURE_TO_PARSE_TESTS"

_VERSION = re.compile(r"^(?:KTAP version \d+|TAP version \d+)$")
_PLAN = re.compile(r"^1\.\.(?P<n>\d+)(?:\s*#\s*(?P<comment>.*))?$")
_RESULT = re.compile(
    r"^(?P<ok>ok|not ok)(?:\s+(?P<num>\d+))?(?:\s+-)?(?:\s+(?P<desc>[^#]*?))?\s*"
    r"(?:#\s*(?P<data>.*))?$"
)
_SUBTEST = re.compile(r"^#\s*Subtest:\s*(?P<name>.*)$")
_BAIL = re.compile(r"^Bail out!\s*(?P<reason>.*)$")
_INT = re.compile(r"^-?\d+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
# "# <test>: try faulted[: last line seen f.c:12]" (lib/kunit/try-catch.c) and the
# "# <test>: kunit test case crashed!" kunit_tool looked for until 5.19; text without the "#".
_CRASH = re.compile(r"^(?:\S+:\s*)?(?:kunit test case crashed!$|try faulted\b)")
# a line that may carry a kernel log prefix: "[", "<prio>" or a /dev/kmsg record's digits
_LOG_PREFIX_START = frozenset("[<0123456789")


class KtapError(ParseError):
    """A KTAP document broke the format (raised only with ``strict=True``)."""


def convert_value(text: str) -> int | str:
    """``"42"`` -> 42, ``"-3"`` -> -3, ``"0x1f"`` -> 31, anything else stays a string."""
    if _INT.match(text):
        return int(text)
    if _HEX.match(text):
        return int(text, 16)
    return text


def parse_values(text: str) -> tuple[str | None, dict[str, int | str] | None]:
    """Split ``"name: k1=v1 k2=v2"`` / ``"k1=v1 k2=v2"`` into (name, values).

    values is None when the text is free prose (any token that is not key=value)."""
    tokens = text.split()
    name: str | None = None
    if tokens and tokens[0].endswith(":") and "=" not in tokens[0] and len(tokens[0]) > 1:
        name = tokens[0][:-1]
        tokens = tokens[1:]
    if not tokens:
        return name, None
    values: dict[str, int | str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            return name, None
        values[key] = convert_value(value)
    return name, values


@dataclass(frozen=True)
class Issue:
    """A problem found in the KTAP stream, with the line it was found on."""

    line_no: int
    line: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.message}: {self.line!r}"


@dataclass(frozen=True)
class Diagnostic:
    text: str
    line_no: int
    name: str | None = None
    values: dict[str, int | str] | None = None


@dataclass
class KtapCounts:
    """Tests without subtests by outcome, and format errors (kunit_tool's TestCounts).

    ``errors`` counts kmodlab's issues: a plan short of three results is one error here, three
    ("missing expected subtest!") in kunit_tool; the missing tests are three ``crashed`` in both.
    """

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    crashed: int = 0
    errors: int = 0

    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.crashed

    def add(self, other: KtapCounts) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        self.crashed += other.crashed
        self.errors += other.errors

    def add_status(self, status: str) -> None:
        if status == SUCCESS:
            self.passed += 1
        elif status == FAILURE:
            self.failed += 1
        elif status == SKIPPED:
            self.skipped += 1
        elif status == TEST_CRASHED:
            self.crashed += 1

    def status(self) -> str:
        """kunit_tool's TestCounts.get_status(): crashes first, then failures."""
        if self.total() == 0:
            return NO_TESTS
        if self.crashed:
            return TEST_CRASHED
        if self.failed:
            return FAILURE
        if self.passed:
            return SUCCESS
        return SKIPPED

    def __str__(self) -> str:
        parts = [f"{n} {label}" for label, n in (
            ("passed", self.passed), ("failed", self.failed), ("crashed", self.crashed),
            ("skipped", self.skipped), ("error(s)", self.errors)) if n]
        return f"{self.total()} test(s)" + (": " + ", ".join(parts) if parts else "")


@dataclass
class KtapResult:
    """One ``ok``/``not ok`` line, its diagnostics, and its subtest document if it has one."""

    ok: bool | None            # None: a subtest whose result line never came
    number: int | None
    name: str
    directive: str | None = None
    reason: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    subtest: KtapDocument | None = None
    line_no: int = 0
    data_values: dict[str, int | str] | None = None
    _counts: KtapCounts | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def status(self) -> str:
        """pass, fail, skip, todo, xfail, timeout, error, or missing (no result line)."""
        if self.ok is None:
            return "missing"
        if self.directive:
            return self.directive.lower()
        return "pass" if self.ok else "fail"

    @property
    def crashed(self) -> bool:
        """The result line never came, or the test's log says it crashed (KUnit's
        ``# <test>: try faulted`` / ``kunit test case crashed!``)."""
        return self.ok is None or any(_CRASH.match(d.text) for d in self.diagnostics)

    @property
    def passed(self) -> bool:
        """Not a failure: pass, skip, todo and xfail all count as not failed (unless crashed)."""
        return self.status in ("pass", "skip", "todo", "xfail") and not self.crashed

    @property
    def counts(self) -> KtapCounts:
        """This test's outcome, or its subtests' outcomes, counted as kunit_tool does."""
        if self._counts is None:
            if self.subtest is not None:
                _tally_tree(self.subtest)
            self._counts = _result_counts(self)
        return self._counts

    @property
    def values(self) -> dict[str, int | str]:
        """All key=value data of this test merged in order (later diagnostics win)."""
        merged: dict[str, int | str] = {}
        for d in self.diagnostics:
            if d.values:
                merged.update(d.values)
        if self.data_values:
            merged.update(self.data_values)
        return merged

    @property
    def values_by_name(self) -> dict[str | None, dict[str, int | str]]:
        """Values grouped by the diagnostic's ``name:`` (None for unnamed ones)."""
        out: dict[str | None, dict[str, int | str]] = {}
        for d in self.diagnostics:
            if d.values:
                out.setdefault(d.name, {}).update(d.values)
        if self.data_values:
            out.setdefault(None, {}).update(self.data_values)
        return out


@dataclass
class KtapDocument:
    """A KTAP document (or a subtest's nested document)."""

    version: str | None
    line_no: int
    indent: int = 0
    name: str | None = None
    plan: int | None = None
    plan_comment: str = ""
    results: list[KtapResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    bail_out: str | None = None
    plan_line_no: int | None = None
    _counts: KtapCounts | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def counts(self) -> KtapCounts:
        """Outcomes of every test without subtests, at any depth, and every error."""
        if self._counts is None:
            _tally_tree(self)
        assert self._counts is not None
        return self._counts

    @property
    def status(self) -> str:
        """kunit_tool's verdict: NO_TESTS without any result line, else from :attr:`counts`."""
        return self.counts.status() if self.results else NO_TESTS

    @property
    def ok(self) -> bool:
        """No format error anywhere (a test that never ran is one), no failed or crashed test."""
        c = self.counts
        return not c.errors and not c.failed and not c.crashed and c.total() > 0

    def all_errors(self) -> list[Issue]:
        """Errors of this document and of its subtests, document order."""
        out: list[Issue] = []
        stack: list[KtapDocument] = [self]
        while stack:
            doc = stack.pop()
            out.extend(doc.errors)
            stack.extend(r.subtest for r in reversed(doc.results) if r.subtest is not None)
        return out

    @property
    def header(self) -> dict[str, int | str]:
        """key=value data of the document's own diagnostics (those before its plan)."""
        merged: dict[str, int | str] = {}
        for d in self.diagnostics:
            if d.values and d.line_no < (self.results[0].line_no if self.results else 1 << 62):
                merged.update(d.values)
        return merged

    def walk(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], KtapResult]]:
        """Every result, depth first, subtests before their parent, with its name path."""
        # (results, index of the next one, path of the document) per open level; a result with
        # a subtest is yielded once its subtest is done (the entry below it, index not advanced)
        stack: list[tuple[list[KtapResult], int, tuple[str, ...]]] = [(self.results, 0, path)]
        descended: set[int] = set()
        while stack:
            results, i, base = stack[-1]
            if i == len(results):
                stack.pop()
                continue
            r = results[i]
            if r.subtest is not None and id(r) not in descended:
                descended.add(id(r))
                stack.append((r.subtest.results, 0, base + (r.name,)))
                continue
            stack[-1] = (results, i + 1, base)
            yield base + (r.name,), r

    def find(self, name: str) -> KtapResult:
        """The first result (at any depth) called ``name``."""
        for _, r in self.walk():
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def real_results(self) -> list[KtapResult]:
        return [r for r in self.results if r.ok is not None]


# -- counting (kunit_tool's bubble_up_test_results)

def _own_status(r: KtapResult) -> str:
    """The status of a result line by itself, in kunit_tool's terms."""
    if r.crashed:
        return TEST_CRASHED
    if r.directive == "SKIP":
        return SKIPPED
    if r.directive in ("TODO", "XFAIL"):
        return SUCCESS
    if r.directive in ("TIMEOUT", "ERROR"):
        return FAILURE
    return SUCCESS if r.ok else FAILURE


def _result_counts(r: KtapResult) -> KtapCounts:
    """Counts of one result; its subtest's counts must be known already."""
    status = _own_status(r)
    counts = KtapCounts()
    if r.subtest is not None:
        sub = r.subtest._counts
        assert sub is not None
        counts.add(sub)
        if not r.subtest.results and sub.total() == 0 and status in (SUCCESS, TEST_CRASHED):
            status = NO_TESTS              # kunit_tool: "0 tests run!" overrides these two
    if counts.total() == 0:
        counts.add_status(status)
    elif counts.status() == TEST_CRASHED:
        status = TEST_CRASHED
    if status == FAILURE and counts.status() == SUCCESS:
        counts.add_status(FAILURE)         # "not ok" over passing subtests is one failure
    return counts


def _tally_tree(root: KtapDocument) -> None:
    """Compute the counts of ``root`` and every subtest below it, children first."""
    order: list[KtapDocument] = []
    stack = [root]
    while stack:
        doc = stack.pop()
        if doc._counts is not None:
            continue
        order.append(doc)
        stack.extend(r.subtest for r in doc.results
                     if r.subtest is not None and r.subtest._counts is None)
    for doc in reversed(order):            # every subtest comes after its parent in ``order``
        counts = KtapCounts(errors=len(doc.errors))
        for r in doc.results:
            r._counts = _result_counts(r)
            counts.add(r._counts)
        first = doc.results[0].line_no if doc.results else 1 << 62
        if (doc.plan is not None and doc.plan_line_no is not None and doc.plan_line_no < first
                and doc.plan > len(doc.results)):
            counts.crashed += doc.plan - len(doc.results)   # planned, never reported
        doc._counts = counts


# -- verdict over a whole log

@dataclass(frozen=True)
class KtapVerdict:
    """The KTAP outcome of a log: kunit_tool's status, counts, and a one-line reason."""

    status: str
    passed: int
    failed: int
    skipped: int
    crashed: int
    errors: int
    documents: int
    reason: str
    ok: bool

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.crashed

    def __str__(self) -> str:
        return self.reason


def _first_problem(docs: list[KtapDocument]) -> str:
    for want in (TEST_CRASHED, FAILURE):
        for doc in docs:
            for path, r in doc.walk():
                if r.subtest is None and _own_status(r) == want:
                    what = "crashed" if want == TEST_CRASHED else "failed"
                    return f"{what}: {'/'.join(path)} (line {r.line_no})"
    for doc in docs:
        errors = doc.all_errors()
        if errors:
            return f"error: {errors[0]}"
    for doc in docs:                        # planned tests that never came
        if doc.counts.crashed:
            return f"crashed: tests planned on line {doc.plan_line_no} never reported"
    return ""


def ktap_verdict(documents: Iterable[KtapDocument], expect: bool = True) -> KtapVerdict:
    """Sum up the KTAP documents of one log (e.g. a phase's) as kunit_tool would.

    No document at all is a failure (kunit_tool's FAILURE_TO_PARSE_TESTS: "Could not find any
    KTAP output") when ``expect`` is true, a pass otherwise.  ``ok`` needs a SUCCESS or SKIPPED
    status and no error."""
    docs = list(documents)
    if not docs:
        if expect:
            return KtapVerdict(FAILURE_TO_PARSE_TESTS, 0, 0, 0, 0, 1, 0,
                               f"{FAILURE_TO_PARSE_TESTS}: no KTAP document found", False)
        return KtapVerdict(NO_TESTS, 0, 0, 0, 0, 0, 0, "no KTAP document (none expected)", True)
    counts = KtapCounts()
    for doc in docs:
        counts.add(doc.counts)
    status = counts.status()
    ok = status in (SUCCESS, SKIPPED) and not counts.errors
    reason = f"{status}: {counts}" + ("" if len(docs) == 1 else f" in {len(docs)} documents")
    if not ok:
        problem = _first_problem(docs)
        if problem:
            reason += f"; first {problem}"
    return KtapVerdict(status, counts.passed, counts.failed, counts.skipped, counts.crashed,
                       counts.errors, len(docs), reason, ok)


# -- parsing

@dataclass
class _Frame:
    doc: KtapDocument
    pending: list[Diagnostic] = field(default_factory=list)
    n_real: int = 0                    # result lines seen (len(doc.real_results), kept current)


class _Parser:
    def __init__(self) -> None:
        self.documents: list[KtapDocument] = []
        self.stack: list[_Frame] = []

    # -- frame management
    def _finish(self, frame: _Frame, outermost: bool = False) -> KtapDocument:
        doc = frame.doc
        doc.diagnostics.extend(frame.pending)
        frame.pending = []
        n = frame.n_real
        where = (doc.line_no, doc.version or "(subtest)")
        if doc.plan is not None and n != doc.plan:
            doc.errors.append(Issue(where[0], where[1],
                                    f"plan 1..{doc.plan} but {n} result line(s)"))
        if outermost:
            self._no_tests_run(doc)
        if doc.plan is None and doc.bail_out is None:
            doc.warnings.append(Issue(where[0], where[1], "no plan line"))
        return doc

    @staticmethod
    def _no_tests_run(doc: KtapDocument) -> None:
        """kunit_tool's "0 tests run!": no result line and no plan promising some (a plan
        short of its results is reported on its own)."""
        if not doc.results and not doc.plan and doc.bail_out is None:
            doc.errors.append(Issue(doc.line_no, doc.version or "(subtest)", "no tests run"))

    def _subtest_closed(self, subtest: KtapDocument, result: KtapResult) -> None:
        """An empty subtest is an error unless its result line already reports a problem or a
        skip (kunit_tool keeps a FAILURE/SKIPPED status then, and counts no error)."""
        if _own_status(result) in (SUCCESS, TEST_CRASHED):
            self._no_tests_run(subtest)

    def _missing_result(self, parent: _Frame, closed: KtapDocument, line_no: int,
                        line: str) -> None:
        parent.doc.errors.append(Issue(line_no, line,
                                       f"subtest {closed.name or '?'} has no result line"))
        result = KtapResult(None, None, closed.name or "?", subtest=closed,
                            line_no=closed.line_no)
        self._subtest_closed(closed, result)
        parent.doc.results.append(result)

    def _pop_to(self, indent: int, line_no: int, line: str) -> KtapDocument | None:
        """Close frames deeper than ``indent``; return the document of the frame just above it
        (the subtest whose result line comes next), flagging any skipped levels."""
        closed: KtapDocument | None = None
        while len(self.stack) > 1 and self.stack[-1].doc.indent > indent:
            frame = self.stack.pop()
            if closed is not None:
                # a deeper subtest never got its own result line
                self._missing_result(frame, closed, line_no, line)
            closed = self._finish(frame)
        return closed

    def _frame_for(self, indent: int) -> _Frame:
        """The innermost open frame whose indentation is <= indent."""
        for frame in reversed(self.stack):
            if frame.doc.indent <= indent:
                return frame
        return self.stack[0]

    def _push(self, indent: int, line_no: int, version: str | None, name: str | None) -> _Frame:
        frame = _Frame(KtapDocument(version, line_no, indent, name))
        self.stack.append(frame)
        return frame

    def _close_all(self, line_no: int, line: str) -> None:
        while len(self.stack) > 1:
            doc = self._finish(self.stack.pop())
            self._missing_result(self.stack[-1], doc, line_no, line)
        if self.stack:
            self.documents.append(self._finish(self.stack.pop(), outermost=True))

    # -- line handling
    def feed(self, line_no: int, text: str) -> None:
        stripped = text.strip()
        if not stripped:
            return
        lead = text[:len(text) - len(text.lstrip())]
        indent = len(lead.expandtabs(8)) if "\t" in lead else len(lead)
        first = stripped[0]
        if first in "KT" and _VERSION.match(stripped):
            self._version(indent, line_no, stripped)
            return
        if not self.stack:
            return  # not inside a document: unknown line
        if indent < self.stack[0].doc.indent:
            return  # less indented than the document itself: not part of it
        if first == "#":
            if m := _SUBTEST.match(stripped):
                self._subtest(indent, line_no, stripped, m.group("name").strip())
            else:
                self._diagnostic(indent, line_no, stripped)
            return
        if first in "on":
            if m := _RESULT.match(stripped):
                self._result(indent, line_no, stripped, m)
            return
        if first == "1":
            if m := _PLAN.match(stripped):
                self._plan(indent, line_no, stripped, m)
            return
        if first == "B" and (m := _BAIL.match(stripped)):
            frame = self._frame_for(indent)
            frame.doc.bail_out = m.group("reason")
            frame.doc.errors.append(Issue(line_no, stripped, "bailed out"))
        # unknown line: allowed by the spec, ignored

    def _subtest(self, indent: int, line_no: int, stripped: str, name: str) -> None:
        top = self.stack[-1]
        if indent > top.doc.indent:
            self._push(indent, line_no, None, name).doc.warnings.append(
                Issue(line_no, stripped, "subtest without a version line"))
        elif (indent == top.doc.indent and len(self.stack) > 1 and top.doc.name is None
              and not top.doc.results):
            top.doc.name = name
        else:
            self._frame_for(indent).pending.append(Diagnostic(stripped[1:].strip(), line_no))

    def _diagnostic(self, indent: int, line_no: int, stripped: str) -> None:
        body = stripped[1:].strip()
        name, values = parse_values(body)
        frame = self._frame_for(indent)
        diagnostic = Diagnostic(body, line_no, name, values)
        if frame.doc.plan is None and not frame.doc.results:
            # Before the plan: a header about the whole document (kmodlab modules print
            # "# kmodlab: module=... phase=..." there), not about its first test.
            frame.doc.diagnostics.append(diagnostic)
        else:
            frame.pending.append(diagnostic)

    def _plan(self, indent: int, line_no: int, stripped: str, m: re.Match[str]) -> None:
        top = self.stack[-1]
        if indent > top.doc.indent:
            top = self._push(indent, line_no, None, None)
            top.doc.warnings.append(Issue(line_no, stripped, "subtest without a version line"))
        elif indent < top.doc.indent:
            self._pop_to(indent, line_no, stripped)
            top = self.stack[-1]
        if top.doc.plan is not None:
            top.doc.errors.append(Issue(line_no, stripped, "second plan line"))
        else:
            top.doc.plan = int(m.group("n"))
            top.doc.plan_comment = (m.group("comment") or "").strip()
            top.doc.plan_line_no = line_no

    def _version(self, indent: int, line_no: int, stripped: str) -> None:
        if not self.stack or indent <= self.stack[0].doc.indent:
            self._close_all(line_no, stripped)
            self._push(indent, line_no, stripped, None)
            return
        top = self.stack[-1]
        if (indent == top.doc.indent and top.doc.version is None and top.doc.plan is None
                and not top.doc.results):
            top.doc.version = stripped  # "# Subtest:" header came first
            return
        if indent <= top.doc.indent:
            # a sibling subtest starts but the previous one never got its result line
            closed = self._pop_to(indent - 1, line_no, stripped)
            if closed is not None:
                self._missing_result(self.stack[-1], closed, line_no, stripped)
        self._push(indent, line_no, stripped, None)

    def _result(self, indent: int, line_no: int, stripped: str, m: re.Match[str]) -> None:
        top = self.stack[-1]
        subtest: KtapDocument | None = None
        if indent > top.doc.indent:
            if len(self.stack) > 1 and not top.doc.results and top.doc.version is not None:
                # a subtest's header, then its results indented deeper still: its own results
                top.doc.indent = indent
                top.doc.warnings.append(Issue(line_no, stripped,
                                              "result lines more indented than their subtest"))
            else:
                top = self._push(indent, line_no, None, None)
                top.doc.warnings.append(Issue(line_no, stripped,
                                              "subtest without a version line"))
        elif indent < top.doc.indent:
            subtest = self._pop_to(indent, line_no, stripped)
            top = self.stack[-1]
        doc = top.doc
        number = int(m.group("num")) if m.group("num") else None
        name = (m.group("desc") or "").strip()
        directive: str | None = None
        reason = ""
        data_values: dict[str, int | str] | None = None
        data = m.group("data")
        if data is not None:
            word, _, rest = data.strip().partition(" ")
            if word.upper() in DIRECTIVES:
                directive, reason = word.upper(), rest.strip()
            else:
                reason = data.strip()
            if reason:
                _, data_values = parse_values(reason)
        result = KtapResult(m.group("ok") == "ok", number, name, directive, reason,
                            top.pending, subtest, line_no, data_values)
        top.pending = []
        top.n_real += 1
        expected = top.n_real
        if number is None:
            doc.errors.append(Issue(line_no, stripped, "result line without a test number"))
        elif number != expected:
            doc.errors.append(Issue(line_no, stripped,
                                    f"test number {number} out of sequence (expected {expected})"))
        if subtest is not None and subtest.name and name and subtest.name != name:
            subtest.warnings.append(Issue(line_no, stripped,
                                          f"subtest {subtest.name!r} ends with result {name!r}"))
        if subtest is not None:
            if subtest.name is None:
                subtest.name = name
            self._subtest_closed(subtest, result)
        doc.results.append(result)


class KtapStream:
    """KTAP parsed a line at a time, for logs read as a stream (kmodlab.observe.stream): the
    documents come out of :meth:`close`, exactly as :func:`parse_ktap` gives them for the same
    lines.  ``prefix`` as for :func:`parse_ktap`."""

    def __init__(self, prefix: str | None = None) -> None:
        self._parser = _Parser()
        self._prefix = prefix
        self._line_no = 0
        self._last_text = ""

    def feed(self, raw: str) -> None:
        """One line of raw module output or kernel log (its log prefix is stripped)."""
        self._line_no += 1
        body = raw
        if raw[:1] in _LOG_PREFIX_START:     # every prefix parse_line knows starts so
            decoded = parse_line(raw, self._line_no)
            if decoded is not None:
                body = decoded.text
        if body.endswith("\r"):
            body = body.rstrip("\r")
        if self._prefix and body.startswith(self._prefix):
            body = body[len(self._prefix):]
        self._parser.feed(self._line_no, body)
        self._last_text = body

    def close(self) -> list[KtapDocument]:
        """Every document, the last one closed as at the end of input."""
        last = self._line_no
        self._parser._close_all(last + 1, "(end of input)" if self._last_text or last else "")
        return self._parser.documents


def parse_ktap(text: str, prefix: str | None = None, strict: bool = False) -> list[KtapDocument]:
    """All KTAP documents in ``text`` (raw module output or dmesg; log prefixes are stripped).

    ``prefix`` is removed from the start of each message when present, for modules that print
    through a ``pr_fmt`` such as ``"kmodlab_probe: "``.
    """
    stream = KtapStream(prefix)
    for raw in text.splitlines():
        stream.feed(raw)
    documents = stream.close()
    if strict:
        for doc in documents:
            errors = doc.all_errors()
            if errors:
                first = errors[0]
                raise KtapError(SOURCE, first.line_no, first.line, first.message)
    return documents


parse = parse_ktap
