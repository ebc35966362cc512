"""KTAP v1 (Documentation/dev-tools/ktap.rst) from module output, including text taken from dmesg.

What this parser decides where the spec leaves room:

* **Documents.** Every version line (``KTAP version 1``, also ``TAP version 13/14``) at the
  outermost indentation starts a new document, so a module that prints one document at load and
  one at unload yields two.  Lines before the first version line are ignored.
* **Nesting.** A subtest is any block more indented than its parent (KTAP says two spaces, KUnit
  prints four: any increase counts).  It starts with a version line, a KUnit ``# Subtest: <name>``
  header, or a plan; the next result line at the parent's indentation is the subtest's result.
* **Diagnostics attach forwards**: a ``# ...`` line belongs to the next result line at its own
  indentation level (the spec: "diagnostic lines regarding a test are directly before the test
  result line for that test"; KUnit prints ``# test: pass:2 ...`` before ``ok 1 test``).
  Diagnostics after the last result of a document stay on the document (``diagnostics``).
* **Measured values** travel as ``# name: k1=v1 k2=v2`` or ``# k1=v1 k2=v2`` (and as the
  diagnostic data of a result line, ``ok 5 rc # rcode=0``).  A diagnostic carries values only
  when *every* token after the optional ``name:`` is ``key=value``; decimal and ``0x`` hex
  values become ints.
* **Problems are never dropped.**  Plan/count mismatches, out-of-sequence numbers, subtests
  without a result line and ``Bail out!`` are recorded in ``errors`` (each with its line);
  ``strict=True`` raises the first one as a KtapError.  Softer deviations (no plan, subtest
  without version line, subtest/result name mismatch) go to ``warnings``.
* Unknown lines (other kernel messages interleaved in dmesg) are ignored, as the spec allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from kmodlab.observe.dmesg import parse_line
from kmodlab.observe.errors import ParseError

SOURCE = "KTAP"
DIRECTIVES = ("SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR")

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

    @property
    def status(self) -> str:
        """pass, fail, skip, todo, xfail, timeout, error, or missing (no result line)."""
        if self.ok is None:
            return "missing"
        if self.directive:
            return self.directive.lower()
        return "pass" if self.ok else "fail"

    @property
    def passed(self) -> bool:
        """Not a failure: pass, skip, todo and xfail all count as not failed."""
        return self.status in ("pass", "skip", "todo", "xfail")

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

    @property
    def ok(self) -> bool:
        """No format errors anywhere and no failed test anywhere."""
        return not self.all_errors() and all(
            r.passed and (r.subtest is None or r.subtest.ok) for r in self.results)

    def all_errors(self) -> list[Issue]:
        out = list(self.errors)
        for r in self.results:
            if r.subtest is not None:
                out.extend(r.subtest.all_errors())
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
        for r in self.results:
            if r.subtest is not None:
                yield from r.subtest.walk(path + (r.name,))
            yield path + (r.name,), r

    def find(self, name: str) -> KtapResult:
        """The first result (at any depth) called ``name``."""
        for _, r in self.walk():
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def real_results(self) -> list[KtapResult]:
        return [r for r in self.results if r.ok is not None]


@dataclass
class _Frame:
    doc: KtapDocument
    pending: list[Diagnostic] = field(default_factory=list)


class _Parser:
    def __init__(self) -> None:
        self.documents: list[KtapDocument] = []
        self.stack: list[_Frame] = []

    # -- frame management
    def _finish(self, frame: _Frame) -> KtapDocument:
        doc = frame.doc
        doc.diagnostics.extend(frame.pending)
        frame.pending = []
        n = len(doc.real_results)
        where = (doc.line_no, doc.version or "(subtest)")
        if doc.plan is not None and n != doc.plan:
            doc.errors.append(Issue(where[0], where[1],
                                    f"plan 1..{doc.plan} but {n} result line(s)"))
        if doc.plan is None and doc.bail_out is None:
            doc.warnings.append(Issue(where[0], where[1], "no plan line"))
        return doc

    def _pop_to(self, indent: int, line_no: int, line: str) -> KtapDocument | None:
        """Close frames deeper than ``indent``; return the document of the frame just above it
        (the subtest whose result line comes next), flagging any skipped levels."""
        closed: KtapDocument | None = None
        while len(self.stack) > 1 and self.stack[-1].doc.indent > indent:
            frame = self.stack.pop()
            doc = self._finish(frame)
            if closed is not None:
                # a deeper subtest never got its own result line
                doc.errors.append(Issue(line_no, line,
                                        f"subtest {closed.name or '?'} has no result line"))
                doc.results.append(KtapResult(None, None, closed.name or "?", subtest=closed,
                                              line_no=closed.line_no))
            closed = doc
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
            frame = self.stack.pop()
            doc = self._finish(frame)
            parent = self.stack[-1]
            parent.doc.errors.append(Issue(line_no, line,
                                           f"subtest {doc.name or '?'} has no result line"))
            parent.doc.results.append(KtapResult(None, None, doc.name or "?", subtest=doc,
                                                 line_no=doc.line_no))
        if self.stack:
            self.documents.append(self._finish(self.stack.pop()))

    # -- line handling
    def feed(self, line_no: int, text: str) -> None:
        stripped = text.strip()
        if not stripped:
            return
        indent = len(text.expandtabs(8)) - len(text.expandtabs(8).lstrip(" "))
        if _VERSION.match(stripped):
            self._version(indent, line_no, stripped)
            return
        if not self.stack:
            return  # not inside a document: unknown line
        base = self.stack[0].doc.indent
        if indent < base:
            return  # less indented than the document itself: not part of it
        top = self.stack[-1]
        if m := _SUBTEST.match(stripped):
            name = m.group("name").strip()
            if indent > top.doc.indent:
                self._push(indent, line_no, None, name).doc.warnings.append(
                    Issue(line_no, stripped, "subtest without a version line"))
            elif (indent == top.doc.indent and len(self.stack) > 1 and top.doc.name is None
                  and not top.doc.results):
                top.doc.name = name
            else:
                self._frame_for(indent).pending.append(Diagnostic(stripped[1:].strip(), line_no))
            return
        if m := _PLAN.match(stripped):
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
            return
        if m := _RESULT.match(stripped):
            self._result(indent, line_no, stripped, m)
            return
        if m := _BAIL.match(stripped):
            frame = self._frame_for(indent)
            frame.doc.bail_out = m.group("reason")
            frame.doc.errors.append(Issue(line_no, stripped, "bailed out"))
            return
        if stripped.startswith("#"):
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
            return
        # unknown line: allowed by the spec, ignored

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
                parent = self.stack[-1]
                parent.doc.errors.append(Issue(line_no, stripped,
                                               f"subtest {closed.name or '?'} has no result line"))
                parent.doc.results.append(KtapResult(None, None, closed.name or "?",
                                                     subtest=closed, line_no=closed.line_no))
        self._push(indent, line_no, stripped, None)

    def _result(self, indent: int, line_no: int, stripped: str, m: re.Match[str]) -> None:
        top = self.stack[-1]
        subtest: KtapDocument | None = None
        if indent > top.doc.indent:
            top = self._push(indent, line_no, None, None)
            top.doc.warnings.append(Issue(line_no, stripped, "subtest without a version line"))
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
        expected = len(doc.real_results) + 1
        if number is None:
            doc.errors.append(Issue(line_no, stripped, "result line without a test number"))
        elif number != expected:
            doc.errors.append(Issue(line_no, stripped,
                                    f"test number {number} out of sequence (expected {expected})"))
        if subtest is not None and subtest.name and name and subtest.name != name:
            subtest.warnings.append(Issue(line_no, stripped,
                                          f"subtest {subtest.name!r} ends with result {name!r}"))
        if subtest is not None and subtest.name is None:
            subtest.name = name
        doc.results.append(result)


def parse_ktap(text: str, prefix: str | None = None, strict: bool = False) -> list[KtapDocument]:
    """All KTAP documents in ``text`` (raw module output or dmesg; log prefixes are stripped).

    ``prefix`` is removed from the start of each message when present, for modules that print
    through a ``pr_fmt`` such as ``"kmodlab_probe: "``.
    """
    parser = _Parser()
    last_line = 0
    last_text = ""
    for line_no, raw in enumerate(text.splitlines(), start=1):
        decoded = parse_line(raw, line_no)
        body = decoded.text if decoded is not None else raw.rstrip("\r")
        if prefix and body.startswith(prefix):
            body = body[len(prefix):]
        parser.feed(line_no, body)
        last_line, last_text = line_no, body
    parser._close_all(last_line + 1, "(end of input)" if last_text or last_line else "")
    if strict:
        for doc in parser.documents:
            errors = doc.all_errors()
            if errors:
                first = errors[0]
                raise KtapError(SOURCE, first.line_no, first.line, first.message)
    return parser.documents


parse = parse_ktap
