"""A small, safe expression language for lab checks: numbers, names, arithmetic, comparisons.

Lab authors write expectations such as::

    loaded.slab["lab_obj"].objperslab == model.objects_per_slab(model.slab_size(obj_size))
    ktap.alloc.waste == count * (ktap.alloc.ksize - size) and size > 0

An expression is parsed with :mod:`ast` and checked against an allowlist when the lab is
loaded (so a typo is a lab error with its line, not a grading-time surprise), then evaluated by
walking the tree.  Nothing is ever passed to ``eval``: there are no attribute lookups on
arbitrary objects (only mappings, dataclass fields and the views the grader builds), no private
names, no calls except to functions handed in explicitly, and results are size-capped so an
expression cannot exhaust memory (``10 ** 10 ** 10``).

The values an expression reads are recorded (:class:`Trace`) so a failed check can say what it
saw: ``ktap.alloc.ksize = 192, model.ksize(size) = 256``.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kmodlab.labs.errors import EvaluationError, ExpressionError

MAX_INT_BITS = 256
MAX_SEQUENCE = 10_000
MAX_SOURCE = 2_000

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
    ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.UnaryOp, ast.Compare,
    ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Subscript, ast.Call, ast.keyword,
    ast.IfExp, ast.Tuple, ast.List, ast.Slice, *_BINOPS, *_CMPOPS, *_UNARY,
)


class SafeFunction:
    """A host function an expression may call; anything else is not callable."""

    def __init__(self, name: str, func: Callable[..., Any]) -> None:
        self.name = name
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<function {self.name}>"


def _count(items: Sequence[Any] | Mapping[Any, Any], value: Any) -> int:
    return list(items).count(value) if not isinstance(items, Mapping) else int(value in items)


BUILTINS: dict[str, SafeFunction] = {
    name: SafeFunction(name, func) for name, func in {
        "abs": abs, "min": min, "max": max, "len": len, "round": round, "sum": sum,
        "all": all, "any": any, "int": int, "bool": bool, "count": _count,
        "ceil": math.ceil, "floor": math.floor, "log2": lambda x: math.log2(x),
    }.items()
}


class View:
    """Base of the objects the grader exposes: attribute access limited to ``fields``."""

    fields: tuple[str, ...] = ()

    def expr_attr(self, name: str) -> Any:
        if name not in self.fields:
            raise EvaluationError(f"'{self.describe()}' has no '{name}' "
                                  f"(it has: {', '.join(self.fields) or 'nothing'})")
        return getattr(self, name)

    def describe(self) -> str:
        return type(self).__name__


@dataclass
class Trace:
    """Values read while evaluating, in order: (source text, value)."""

    values: list[tuple[str, Any]] = field(default_factory=list)

    def add(self, text: str, value: Any) -> None:
        if any(t == text for t, _ in self.values):
            return
        if isinstance(value, (int, float, str, bool, tuple)) or value is None:
            self.values.append((text, value))
        elif _is_prediction(value):
            self.values.append((text, value.value))

    def render(self, limit: int = 12) -> str:
        shown = [f"{text} = {_short(value)}" for text, value in self.values[:limit]]
        if len(self.values) > limit:
            shown.append("...")
        return ", ".join(shown)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_prediction(value: Any) -> bool:
    from kmodlab.model.prediction import Prediction

    return isinstance(value, Prediction)


class Expression:
    """A compiled, validated expression.  ``Expression("size * 2").evaluate({"size": 3})``."""

    def __init__(self, source: str) -> None:
        if not isinstance(source, str):
            raise ExpressionError(f"an expression must be a string, not {type(source).__name__}")
        self.source = source.strip()
        if not self.source:
            raise ExpressionError("empty expression")
        if len(self.source) > MAX_SOURCE:
            raise ExpressionError(f"expression longer than {MAX_SOURCE} characters")
        try:
            tree = ast.parse(self.source, mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"syntax error in {self.source!r}: {exc.msg}"
                                  f" (column {exc.offset})") from None
        _validate(tree, self.source)
        self.tree = tree

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __str__(self) -> str:
        return self.source

    def names(self) -> set[str]:
        """Top-level names the expression reads (``ktap``, ``size``, ``model``...)."""
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)}

    def evaluate(self, env: Mapping[str, Any], trace: Trace | None = None) -> Any:
        return _Evaluator(self.source, env, trace).eval(self.tree.body, record=True)


def _validate(tree: ast.AST, source: str) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            what = type(node).__name__
            raise ExpressionError(f"{source!r}: '{what}' is not allowed in lab expressions "
                                  "(allowed: numbers, strings, names, . and [] access, calls of "
                                  "known functions, + - * / // % ** << >> & |, comparisons, "
                                  "and/or/not, x if c else y)")
        if isinstance(node, ast.Constant) and not isinstance(
                node.value, (int, float, str, bool, type(None))):
            raise ExpressionError(f"{source!r}: constant {node.value!r} is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"{source!r}: private attribute '{node.attr}' is not allowed")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExpressionError(f"{source!r}: private name '{node.id}' is not allowed")
        if isinstance(node, ast.keyword) and node.arg is None:
            raise ExpressionError(f"{source!r}: **kwargs is not allowed")
        if isinstance(node, ast.Call) and not isinstance(node.func, (ast.Name, ast.Attribute)):
            raise ExpressionError(f"{source!r}: only named functions can be called")


def _check_size(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise EvaluationError(f"integer result larger than 2**{MAX_INT_BITS}")
    if isinstance(value, float) and not math.isfinite(value):
        raise EvaluationError("non-finite result")
    if isinstance(value, (str, tuple, list)) and len(value) > MAX_SEQUENCE:
        raise EvaluationError(f"result longer than {MAX_SEQUENCE} items")
    return value


def _number(value: Any, what: str) -> int | float:
    if _is_prediction(value):
        value = value.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvaluationError(f"{what} is {_short(value)}, not a number")
    return value


def get_attr(obj: Any, name: str, where: str = "") -> Any:
    """Attribute access as expressions see it: mapping keys, view fields, dataclass fields."""
    label = where or "value"
    if isinstance(obj, View):
        return obj.expr_attr(name)
    if isinstance(obj, Mapping):
        try:
            return obj[name]
        except KeyError:
            known = ", ".join(sorted(map(str, obj))[:20])
            raise EvaluationError(f"{label} has no '{name}'"
                                  + (f" (known: {known})" if known else " (it is empty)")) from None
    if _is_prediction(obj):
        return _prediction_attr(obj, name, label)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = {f.name for f in dataclasses.fields(obj)}
        prop = isinstance(getattr(type(obj), name, None), property)
        if name in names or prop:
            return getattr(obj, name)
    raise EvaluationError(f"{label} ({type(obj).__name__}) has no field '{name}'")


def _prediction_attr(pred: Any, name: str, label: str) -> Any:
    """``model.kmem_cache(...).objects_per_slab``: a field of the predicted value, keeping how
    sure the model is (an inexact composite loses its bound: the bound was on another field)."""
    from kmodlab.model.prediction import Prediction

    if name in ("value", "exact", "bound", "reason", "rule"):
        return getattr(pred, name)
    inner = get_attr(pred.value, name, label)
    if pred.exact:
        return Prediction(inner, pred.rule)
    return Prediction(inner, pred.rule, False, None, pred.reason or "inexact")


def get_item(obj: Any, key: Any, where: str = "") -> Any:
    label = where or "value"
    if _is_prediction(obj):
        obj = obj.value
    if isinstance(obj, View) and hasattr(obj, "expr_item"):
        return obj.expr_item(key)  # type: ignore[attr-defined]
    if isinstance(obj, Mapping):
        try:
            return obj[key]
        except KeyError:
            known = ", ".join(sorted(map(str, obj))[:20])
            raise EvaluationError(f"{label} has no [{key!r}]"
                                  + (f" (known: {known}...)" if known else "")) from None
        except TypeError:
            raise EvaluationError(f"{label}[{key!r}]: bad key type") from None
    if isinstance(obj, (tuple, list, str)):
        if isinstance(key, bool) or not isinstance(key, int):
            raise EvaluationError(f"{label}[{key!r}]: index must be an integer")
        try:
            return obj[key]
        except IndexError:
            raise EvaluationError(f"{label}[{key}]: index out of range (length {len(obj)})") from None
    raise EvaluationError(f"{label} ({type(obj).__name__}) cannot be indexed")


class _Evaluator:
    def __init__(self, source: str, env: Mapping[str, Any], trace: Trace | None) -> None:
        self.source = source
        self.env = env
        self.trace = trace

    def text(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or "?"

    def eval(self, node: ast.AST, record: bool = False) -> Any:
        value = self._eval(node)
        if record and self.trace is not None and isinstance(
                node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
            self.trace.add(self.text(node), value)
        return value

    def _eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.env:
                return self.env[node.id]
            if node.id in BUILTINS:
                return BUILTINS[node.id]
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            raise EvaluationError(f"unknown name '{node.id}'")
        if isinstance(node, ast.Attribute):
            return get_attr(self.eval(node.value), node.attr, self.text(node.value))
        if isinstance(node, ast.Subscript):
            obj = self.eval(node.value)
            if isinstance(node.slice, ast.Slice):
                return self._slice(obj, node.slice, self.text(node.value))
            return get_item(obj, self.eval(node.slice, record=True), self.text(node.value))
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.UnaryOp):
            value = self.eval(node.operand, record=True)
            if isinstance(node.op, ast.Not):
                return not _truth(value)
            return _check_size(_UNARY[type(node.op)](_number(value, self.text(node.operand))))
        if isinstance(node, ast.BoolOp):
            result: Any = None
            for sub in node.values:
                result = self.eval(sub, record=True)
                if isinstance(node.op, ast.And) and not _truth(result):
                    return result
                if isinstance(node.op, ast.Or) and _truth(result):
                    return result
            return result
        if isinstance(node, ast.Compare):
            left = self.eval(node.left, record=True)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.eval(right_node, record=True)
                if not self._compare(op, left, right, right_node):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            test = self.eval(node.test, record=True)
            return self.eval(node.body if _truth(test) else node.orelse, record=True)
        if isinstance(node, (ast.Tuple, ast.List)):
            if len(node.elts) > MAX_SEQUENCE:
                raise EvaluationError("literal too long")
            return tuple(self.eval(e, record=True) for e in node.elts)
        raise EvaluationError(f"cannot evaluate {type(node).__name__}")  # pragma: no cover

    def _slice(self, obj: Any, sl: ast.Slice, label: str) -> Any:
        obj = _plain(obj)
        if not isinstance(obj, (tuple, list, str)):
            raise EvaluationError(f"{label} ({type(obj).__name__}) cannot be sliced")
        bounds = []
        for part in (sl.lower, sl.upper, sl.step):
            value = None if part is None else self.eval(part, record=True)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise EvaluationError(f"{label}[...]: slice bounds must be integers")
            bounds.append(value)
        if bounds[2] == 0:
            raise EvaluationError(f"{label}[...]: slice step cannot be zero")
        result = obj[slice(*bounds)]
        return tuple(result) if isinstance(result, list) else result

    def _call(self, node: ast.Call) -> Any:
        func = self.eval(node.func)
        if not isinstance(func, SafeFunction):
            raise EvaluationError(f"'{self.text(node.func)}' is not a function")
        args = [_plain(self.eval(a, record=True)) for a in node.args]
        kwargs = {k.arg: _plain(self.eval(k.value, record=True)) for k in node.keywords
                  if k.arg is not None}
        try:
            return _check_size(func(*args, **kwargs))
        except EvaluationError:
            raise
        except Exception as exc:  # noqa: BLE001 - any error of a host function is an evaluation error
            raise EvaluationError(f"{self.text(node)}: {type(exc).__name__}: {exc}") from None

    def _binop(self, node: ast.BinOp) -> Any:
        left = self.eval(node.left, record=True)
        right = self.eval(node.right, record=True)
        op = type(node.op)
        if op is ast.Add and isinstance(_plain(left), str) and isinstance(_plain(right), str):
            return _check_size(_plain(left) + _plain(right))
        a = _number(left, self.text(node.left))
        b = _number(right, self.text(node.right))
        if op in (ast.LShift, ast.RShift, ast.BitAnd, ast.BitOr, ast.BitXor):
            if not isinstance(a, int) or not isinstance(b, int):
                raise EvaluationError(f"{self.text(node)}: bit operations need integers")
            if op is ast.LShift and not 0 <= b <= MAX_INT_BITS:
                raise EvaluationError(f"{self.text(node)}: shift count {b} out of range")
            if op is ast.RShift and b < 0:
                raise EvaluationError(f"{self.text(node)}: negative shift count")
        if op is ast.Pow and (abs(b) > MAX_INT_BITS or (isinstance(b, float) and abs(a) > 2**64)):
            raise EvaluationError(f"{self.text(node)}: exponent {b} too large")
        if op is ast.Pow and isinstance(a, int) and isinstance(b, int) and b > 0 \
                and a.bit_length() * b > MAX_INT_BITS * 2:
            raise EvaluationError(f"{self.text(node)}: result too large")
        try:
            return _check_size(_BINOPS[op](a, b))
        except ZeroDivisionError:
            raise EvaluationError(f"{self.text(node)}: division by zero") from None
        except (OverflowError, ValueError) as exc:
            raise EvaluationError(f"{self.text(node)}: {exc}") from None

    def _compare(self, op: ast.cmpop, left: Any, right: Any, right_node: ast.AST) -> bool:
        left, right = _plain(left), _plain(right)
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, (Mapping, tuple, list, str, set, frozenset)):
                raise EvaluationError(f"'in' needs a collection on its right, not "
                                      f"{type(right).__name__}")
            if isinstance(right, str) and not isinstance(left, str):
                raise EvaluationError("'in' on a string needs a string on its left")
        elif isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
            comparable = (isinstance(left, (int, float)) and isinstance(right, (int, float))) or \
                (isinstance(left, str) and isinstance(right, str)) or \
                (isinstance(left, tuple) and isinstance(right, tuple))
            if not comparable:
                raise EvaluationError(f"cannot order {_short(left)} and {_short(right)}")
        return bool(_CMPOPS[type(op)](left, right))


def _plain(value: Any) -> Any:
    """Predictions take part in arithmetic and comparisons through their predicted value."""
    return value.value if _is_prediction(value) else value


def _truth(value: Any) -> bool:
    value = _plain(value)
    if isinstance(value, (View, Mapping)) and not isinstance(value, (dict,)):
        raise EvaluationError(f"{type(value).__name__} has no truth value; compare a field")
    return bool(value)


def compile_expression(source: Any) -> Expression:
    """Compile ``source`` (a str, or a bare number/bool YAML gave us) into an Expression."""
    if isinstance(source, bool):
        source = "True" if source else "False"
    elif isinstance(source, (int, float)):
        source = repr(source)
    return Expression(source)
