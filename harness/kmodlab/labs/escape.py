"""Escaping of student-controlled text (file names, compiler output, dmesg) for each format.

Everything a submission can influence passes through one of these before it reaches a report:
HTML (:func:`html_text`), Markdown (:func:`md_inline`, :func:`md_block`), XML (:func:`xml_text`
strips characters XML 1.0 cannot carry; ElementTree escapes the rest) and CSV
(:func:`csv_cell` defuses spreadsheet formulas).
"""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_XML_BAD = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# CommonMark inline syntax: emphasis, code, links, HTML, entities, tables, strikethrough.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~])")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean(text: str, limit: int | None = None) -> str:
    """Printable text: ANSI sequences and control characters removed, optionally clipped."""
    text = _CONTROL.sub("", _ANSI.sub("", str(text)))
    if limit is not None and len(text) > limit:
        text = text[:limit] + "\n[... truncated]"
    return text


def html_text(text: object, limit: int | None = None) -> str:
    return html.escape(clean(str(text), limit), quote=True)


def md_inline(text: object, limit: int | None = 500) -> str:
    """One line of Markdown showing ``text`` literally (tables included)."""
    one_line = " ".join(clean(str(text), limit).split())
    return _MD_SPECIAL.sub(r"\\\1", one_line)


def md_code(text: object, limit: int | None = 200) -> str:
    """An inline code span (backslashes are literal there, so nothing is escaped): the
    delimiter is longer than any backtick run inside."""
    body = " ".join(clean(str(text), limit).split())
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    tick = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body else ""
    return f"{tick}{pad}{body}{pad}{tick}"


def md_block(text: object, limit: int | None = 20_000, lang: str = "text") -> str:
    """A fenced code block longer than any backtick run inside, so it cannot be closed early."""
    body = clean(str(text), limit).rstrip("\n")
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    tildes = max((len(m) for m in re.findall(r"~+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    if tildes >= 3 and longest < 3:
        fence = "`" * 3
    return f"{fence}{lang}\n{body}\n{fence}"


def xml_text(text: object, limit: int | None = 50_000) -> str:
    return _XML_BAD.sub("?", clean(str(text), limit))


def csv_cell(text: object) -> str:
    """A CSV value that spreadsheets will not run as a formula."""
    value = clean(str(text), 2000).replace("\n", " ")
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.match(value):
        return "'" + value
    return value


_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


def slug(text: str, limit: int = 64) -> str:
    """A file-system-safe name for a student folder in the output (unique: hash appended when
    anything had to change)."""
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9._@+-]", "_", text)[:limit].lstrip(".") or "student"
    if safe != text:
        safe += "-" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return safe
