"""Verdicts of single comparisons: exact, bounded, missing, informational."""

from __future__ import annotations

import pytest

from kmodlab.check.rows import MATCH, MISMATCH, NOT_OBSERVED, OUT, WITHIN, CheckRow, Rows, judge
from kmodlab.model import Model
from kmodlab.model.prediction import Prediction, bounded, exact


@pytest.mark.parametrize("predicted, observed, is_exact, bound, verdict", [
    (192, 192, True, None, MATCH),
    (192, 200, True, None, MISMATCH),
    ("kmalloc-cg-192", "kmalloc-192", True, None, MISMATCH),
    ((1, 2, 3), (1, 2, 3), True, None, MATCH),
    (192, None, True, None, NOT_OBSERVED),
    (10, 12, False, (10, 15), WITHIN),
    (10, 9, False, (10, 15), OUT),
    (10, None, False, (10, 15), NOT_OBSERVED),
    (10, "garbage", False, (10, 15), OUT),
])
def test_judge(predicted, observed, is_exact, bound, verdict) -> None:
    assert judge(predicted, observed, is_exact, bound) == verdict


def test_missing_observation_fails_unless_informational() -> None:
    rows = Rows("kmalloc")
    assert rows.exact("t", "ksize", 8, None, "rule").failed
    assert not rows.exact("t", "ksize", 8, None, "rule", informational=True).failed
    assert rows.exact("t", "ksize", 8, 9, "rule").failed
    assert not rows.exact("t", "ksize", 8, 8, "rule").failed


def test_rows_from_predictions() -> None:
    rows = Rows("pages", "pages/dma")
    row = rows.check("o4", "pages", exact(16, "mm/page_alloc.c"), 16)
    assert (row.verdict, row.exact, row.probe, row.family) == (MATCH, True, "pages/dma", "pages")
    row = rows.check("o0", "free pages", bounded((1, 2), 100, 120, "pcp", "refills"), 99)
    assert row.verdict == OUT and row.bound == (100, 120) and row.failed
    # an inexact prediction without a bound cannot fail honestly: it becomes informational
    row = rows.check("t", "cache", Prediction("kmalloc-64", "rule", False, None, "random"), "x")
    assert row.informational and not row.failed


def test_topics_group_rows() -> None:
    rows = Rows("percpu")
    with rows.grouped("clean load and unload"):
        a = rows.exact("insmod", "exit status", 0, 0, "r")
    b = rows.exact("alloc", "size", 8, 8, "r")
    assert (a.topic, b.topic) == ("clean load and unload", "")


def test_a_row_needs_a_known_verdict_and_bounded_rows_a_bound() -> None:
    with pytest.raises(ValueError):
        CheckRow("f", "t", "q", 1, 1, "r", True, None, "fine")
    with pytest.raises(ValueError):
        CheckRow("f", "t", "q", 1, 1, "r", False, None, WITHIN)


def test_a_model_prediction_checked_against_a_wrong_value_mismatches() -> None:
    m = Model("x86_64", "6.1")
    rows = Rows("kmalloc")
    row = rows.check("kmalloc_160_kernel", "ksize", m.ksize(160), 160)
    assert row.verdict == MISMATCH and row.predicted == 192 and "slab_ksize" in row.rule
