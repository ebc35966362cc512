"""The lab expression language: what it computes, and what it refuses to do."""

from __future__ import annotations

import pytest

from kmodlab.labs.errors import EvaluationError, ExpressionError
from kmodlab.labs.expr import Expression, SafeFunction, Trace, View
from kmodlab.model import Model


def ev(source: str, **env):
    return Expression(source).evaluate(env)


@pytest.mark.parametrize("source, expected", [
    ("1 + 2 * 3", 7), ("7 // 2", 3), ("7 % 4", 3), ("1 << 10", 1024), ("2 ** 10", 1024),
    ("-3 + +1", -2), ("not 0", True), ("1 < 2 <= 2", True), ("3 if 1 > 2 else 4", 4),
    ("'a' + 'b'", "ab"), ("2 in (1, 2)", True), ("'x' not in 'abc'", True),
    ("max(1, 5, 3)", 5), ("abs(-4)", 4), ("(1, 2, 3)[1:]", (2, 3)), ("(1, 2, 3)[-1]", 3),
    ("0 or 7", 7), ("1 and 0", 0), ("count((1, 1, 2), 1)", 2),
])
def test_values(source: str, expected: object) -> None:
    assert ev(source) == expected


def test_names_attributes_and_items() -> None:
    env = {"ktap": {"alloc": {"ksize": 192}}, "size": 160, "caches": {"kmalloc-192": 3}}
    assert ev("ktap.alloc.ksize - size", **env) == 32
    assert ev('caches["kmalloc-192"]', **env) == 3
    assert ev('"kmalloc-192" in caches', **env)


@pytest.mark.parametrize("source", [
    "__import__('os')", "x.__class__", "().__class__.__bases__", "(lambda: 1)()",
    "[c for c in 'ab']", "{1: 2}", "{1, 2}", "f'{x}'", "(x := 1)", "b'bytes'", "1j",
    "x(*y)", "x(**y)", "x[1:2:3].__len__",
])
def test_refused_at_compile_time(source: str) -> None:
    with pytest.raises(ExpressionError):
        Expression(source)


@pytest.mark.parametrize("source", [
    "10 ** 10 ** 10", "1 << 100000", "'a' * 1000000", "2 ** 1000", "1 / 0", "7 % 0",
    "undefined_name", "open('/etc/passwd')", "(1,2)[5]", "'a' < 1", "(1,2)[0:1:0]",
])
def test_refused_at_run_time(source: str) -> None:
    with pytest.raises(EvaluationError):
        ev(source)


def test_only_safe_functions_are_callable() -> None:
    with pytest.raises(EvaluationError, match="not a function"):
        ev("f(1)", f=print)
    assert ev("f(2)", f=SafeFunction("f", lambda x: x * 2)) == 4


def test_arbitrary_objects_expose_nothing() -> None:
    class Secret:
        token = "s3cret"

    with pytest.raises(EvaluationError):
        ev("obj.token", obj=Secret())


def test_views_limit_their_fields() -> None:
    class V(View):
        fields = ("a",)
        a = 1
        b = 2

    assert ev("v.a", v=V()) == 1
    with pytest.raises(EvaluationError, match="has no 'b'"):
        ev("v.b", v=V())


def test_trace_records_what_was_read() -> None:
    trace = Trace()
    Expression("ktap.alloc.ksize == size * 2").evaluate({"ktap": {"alloc": {"ksize": 192}},
                                                        "size": 100}, trace)
    assert trace.render() == "ktap.alloc.ksize = 192, size = 100"


def test_model_predictions_take_part_through_their_value() -> None:
    from kmodlab.labs.views import ModelView

    model = Model("x86_64", (6, 1))
    env = {"model": ModelView(model, predictions=True)}
    pred = ev("model.ksize(100)", **env)
    assert pred.value == 128 and pred.exact
    assert ev("model.ksize(100) - 100", **env) == 28
    info = ev("model.kmem_cache(100).objects_per_slab", **env)
    assert info.value == model.kmem_cache(100).value.objects_per_slab
    plain = {"model": ModelView(model, predictions=False)}
    assert ev("model.kmalloc_cache_for(100)", **plain) == "kmalloc-128"
    with pytest.raises(EvaluationError, match="model has no"):
        ev("model.params", **plain)
