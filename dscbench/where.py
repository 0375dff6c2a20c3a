"""``--where``: a filter over result columns, evaluated by dscbench itself, never by Python.

pandas' ``query`` evaluates Python (``@`` names reach modules, attributes reach ``os.system``),
so a filter typed by a user, or pasted from a CI log, could run code. This module parses the
text with ``ast`` and accepts only:

- column names of the table (``in_channels``, ``backend``, ...),
- numbers, strings, ``True``/``False``, and lists or tuples of those (``kernel in [3, 5]``),
- comparisons ``== != < <= > >=``, ``in``/``not in``, chained (``16 <= in_channels < 128``),
- ``and``/``or``/``not`` (and pandas' ``& | ~``),
- arithmetic ``+ - * / // %`` between numbers and numeric columns (``out_channels / in_channels
  >= 2``).

Anything else (calls, attribute access, subscripts, ``@`` names, lambdas, comprehensions, ``**``)
is refused with a message naming it, before anything is evaluated. ``column == [a, b]`` means
"is one of", as in pandas.
"""

from __future__ import annotations

import ast
import io
import operator
import tokenize
from typing import Any

import numpy as np
import pandas as pd

from dscbench.errors import SpecError

MAX_LENGTH = 2000  # characters: a filter, not a program

ACCEPTS = (
    "column names, numbers, strings, lists of them, comparisons (== != < <= > >= in, not in), "
    "and/or/not, and + - * / // % between numbers"
)

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


class _Refused(Exception):
    """A part of the expression that is not allowed, with the text it came from."""


def parse(text: str) -> ast.Expression:
    """The checked syntax tree of ``text``; SpecError naming the first part that is not
    allowed. Nothing is evaluated."""
    if len(text) > MAX_LENGTH:
        raise SpecError(f"--where: {len(text)} characters; a filter has at most {MAX_LENGTH}")
    source = " ".join(text.split())  # one line: newlines and tabs are spaces
    try:
        source = _spelled_out(source)
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, tokenize.TokenError) as exc:
        detail = exc.msg if isinstance(exc, SyntaxError) else "unbalanced brackets or quotes"
        if isinstance(exc, (RecursionError, MemoryError)):
            detail = "nested too deeply"
        hint = " ('@' names are not allowed)" if "@" in source else ""
        raise SpecError(
            f"--where {text!r}: not a filter ({detail}){hint}; it accepts {ACCEPTS}"
        ) from None
    try:
        for node in ast.walk(tree):
            _check(node, source)
    except _Refused as exc:
        raise SpecError(f"--where {text!r}: {exc}; it accepts {ACCEPTS}") from None
    return tree


def _spelled_out(text: str) -> str:
    """pandas' spelling ``a < 1 & b > 2`` as Python reads it: ``&``, ``|`` and ``~`` become
    ``and``, ``or`` and ``not``, which bind more loosely than comparisons (as pandas makes
    them)."""
    words = {"&": "and", "|": "or", "~": "not"}
    out, last = [], 0
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.OP and token.string in words:
            column = token.start[1]  # one line: the column is the offset
            out += [text[last:column], f" {words[token.string]} "]
            last = column + 1
    return ("".join(out) + text[last:]).strip()


def _check(node: ast.AST, source: str) -> None:
    allowed = (
        ast.Expression,
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.UAdd,
        ast.BinOp,
        ast.Compare,
        ast.In,
        ast.NotIn,
        ast.Name,
        ast.Load,
        ast.Constant,
        ast.List,
        ast.Tuple,
        *_COMPARE,
        *_ARITHMETIC,
    )
    if isinstance(node, allowed):
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str)):
            raise _Refused(f"{_segment(node, source)!r} is not a number or a string")
        if isinstance(node, (ast.List, ast.Tuple)) and not all(
            isinstance(e, ast.Constant) or _negative_number(e) for e in node.elts
        ):
            raise _Refused(f"{_segment(node, source)!r}: a list holds numbers and strings only")
        return
    what = {
        ast.Call: "calls are",
        ast.Attribute: "attribute access is",
        ast.Subscript: "subscripts are",
        ast.Lambda: "lambdas are",
        ast.Pow: "'**' is",
        ast.MatMult: "'@' is",
    }.get(type(node), f"{type(node).__name__} is")
    if not hasattr(node, "lineno"):  # an operator: its expression is named by the parent
        raise _Refused(f"{what} not allowed")
    raise _Refused(f"{what} not allowed ({_segment(node, source)!r})")


def _negative_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
    )


def _segment(node: ast.AST, source: str) -> str:
    segment = ast.get_source_segment(source, node) if hasattr(node, "lineno") else None
    return segment if segment is not None else type(node).__name__


def evaluate(table: pd.DataFrame, text: str) -> pd.Series:
    """The rows of ``table`` where ``text`` holds, as a boolean Series aligned to it.
    SpecError (exit 2) names what is wrong: a part that is not allowed, an unknown column, a
    comparison of a number with a string, or an expression that is not a condition."""
    tree = parse(text)
    try:
        value = _Evaluator(table, text).visit(tree.body)
    except _Refused as exc:
        raise SpecError(f"--where {text!r}: {exc}") from None
    if not isinstance(value, pd.Series) or value.dtype != bool:
        raise SpecError(
            f"--where {text!r}: not a condition (it gives {_describe(value)}); compare a "
            "column, e.g. in_channels >= 64"
        )
    return value


def _describe(value: Any) -> str:
    if isinstance(value, pd.Series):
        return f"a {value.dtype} column"
    return f"the value {value!r}"


def _bool(series: pd.Series) -> pd.Series:
    """A comparison's result as plain booleans: a missing value (NaN, NA) does not match."""
    if series.dtype == bool:
        return series
    return series.astype("boolean").fillna(False).astype(bool)


class _Evaluator(ast.NodeVisitor):
    """Evaluates a checked tree column-wise (each node: a Series or a constant)."""

    def __init__(self, table: pd.DataFrame, text: str):
        self.table = table
        self.text = text

    def generic_visit(self, node: ast.AST) -> Any:  # parse() refused everything else
        raise _Refused(f"{type(node).__name__} is not allowed")

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_List(self, node: ast.List) -> list[Any]:
        return [self.visit(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_Name(self, node: ast.Name) -> pd.Series:
        if node.id not in self.table.columns:
            names = ", ".join(sorted(map(str, self.table.columns)))
            raise _Refused(f"no column {node.id!r} (the columns: {names})")
        return self.table[node.id]

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self._condition(self.visit(v), v) for v in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        result = values[0]
        for value in values[1:]:
            result = combine(result, value)
        return result

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return ~self._condition(operand, node.operand)
        self._numeric(operand, node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        self._numeric(left, node.left)
        self._numeric(right, node.right)
        with np.errstate(divide="ignore", invalid="ignore"):
            try:
                return _ARITHMETIC[type(node.op)](left, right)
            except ZeroDivisionError:
                raise _Refused(f"division by zero in {self._segment(node)!r}") from None

    def visit_Compare(self, node: ast.Compare) -> pd.Series:
        result = None
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.visit(right_node)
            part = self._compare(op, left, right, node)
            result = part if result is None else result & part
            left = right
        return result

    def _compare(self, op: ast.cmpop, left: Any, right: Any, node: ast.AST) -> pd.Series:
        if isinstance(left, list):
            raise _Refused(f"a list can only stand on the right ({self._segment(node)!r})")
        if isinstance(op, (ast.In, ast.NotIn)) or isinstance(right, list):
            if not isinstance(right, list):
                raise _Refused(f"'in' needs a list on the right ({self._segment(node)!r})")
            if isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
                raise _Refused(f"a list cannot be ordered ({self._segment(node)!r})")
            hits = _bool(self._series(left).isin(right))
            return ~hits if isinstance(op, (ast.NotIn, ast.NotEq)) else hits
        try:
            out = _COMPARE[type(op)](self._series(left), right)
        except TypeError:
            raise _Refused(
                f"{self._segment(node)!r} compares values of different kinds (a number and a "
                "string?)"
            ) from None
        return _bool(out)

    def _series(self, value: Any) -> pd.Series:
        if isinstance(value, pd.Series):
            return value
        return pd.Series(value, index=self.table.index)

    def _condition(self, value: Any, node: ast.AST) -> pd.Series:
        if isinstance(value, pd.Series) and value.dtype == bool:
            return value
        raise _Refused(f"{self._segment(node)!r} is not a condition (compare it to something)")

    def _numeric(self, value: Any, node: ast.AST) -> None:
        numeric = (
            pd.api.types.is_numeric_dtype(value) and not pd.api.types.is_bool_dtype(value)
            if isinstance(value, pd.Series)
            else isinstance(value, (int, float)) and not isinstance(value, bool)
        )
        if not numeric:
            raise _Refused(f"{self._segment(node)!r} is not a number (arithmetic needs numbers)")

    def _segment(self, node: ast.AST) -> str:
        return _segment(node, self.text.strip())
