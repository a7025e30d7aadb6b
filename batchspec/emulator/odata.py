"""The OData subset the Batch list operations accept: `$filter` and `$select`.

`$filter` grammar (what the service documents for list tasks/jobs/pools/nodes):

    expr    := and ('or' and)*
    and     := unary ('and' unary)*
    unary   := 'not' unary | '(' expr ')' | compare | startswith(path, 'text')
    compare := path ('eq'|'ne'|'gt'|'ge'|'lt'|'le') literal
    literal := 'string' ('' escapes a quote) | number | true | false | null | datetime'...'

Paths are property names joined by `/` (e.g. `executionInfo/result`). A filter compiles once to
a predicate over the stored JSON document, so listing stays one pass over the rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import invalid_query

Predicate = Callable[[dict], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<dt>datetime'[^']*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_/.]*))"
)
_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and b is not None and a > b,
    "ge": lambda a, b: a is not None and b is not None and a >= b,
    "lt": lambda a, b: a is not None and b is not None and a < b,
    "le": lambda a, b: a is not None and b is not None and a <= b,
}


def lookup(doc: dict, path: str) -> Any:
    """The value at a `/`-separated path, or None if any step is missing."""
    cur: Any = doc
    for part in path.split("/"):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, Any]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise self.error(f"unexpected character at offset {pos}")
            pos = m.end()
            kind = m.lastgroup
            value = m.group(kind)
            if kind == "str":
                self.tokens.append(("lit", value[1:-1].replace("''", "'")))
            elif kind == "dt":
                self.tokens.append(("lit", value[9:-1]))
            elif kind == "num":
                self.tokens.append(("lit", float(value) if "." in value else int(value)))
            elif kind == "punct":
                self.tokens.append((value, value))
            else:
                low = value.lower()
                if low in ("true", "false"):
                    self.tokens.append(("lit", low == "true"))
                elif low == "null":
                    self.tokens.append(("lit", None))
                else:
                    self.tokens.append(("word", value))
        self.i = 0

    def error(self, reason: str):
        return invalid_query("$filter", self.text, reason)

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None or (kind is not None and tok[0] != kind):
            raise self.error(f"expected {kind or 'a token'}")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        pred = self.expr()
        if self.peek() is not None:
            raise self.error(f"unexpected '{self.peek()[1]}'")
        return pred

    def expr(self) -> Predicate:
        terms = [self.conj()]
        while self.keyword("or"):
            terms.append(self.conj())
        return terms[0] if len(terms) == 1 else (lambda d, ts=tuple(terms): any(t(d) for t in ts))

    def conj(self) -> Predicate:
        terms = [self.unary()]
        while self.keyword("and"):
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else (lambda d, ts=tuple(terms): all(t(d) for t in ts))

    def unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.unary()
            return lambda d: not inner(d)
        tok = self.peek()
        if tok and tok[0] == "(":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        _, name = self.take("word")
        nxt = self.peek()
        if nxt and nxt[0] == "(":
            return self.function(name)
        _, op = self.take("word")
        if op.lower() not in _OPS:
            raise self.error(f"unknown operator '{op}'")
        _, value = self.take("lit")
        fn = _OPS[op.lower()]
        get = _getter(name)
        if not isinstance(value, str):
            return lambda d: fn(get(d), value)
        folded, ascii_value = value.lower(), value.isascii()

        def compare(d: dict) -> bool:
            actual = get(d)
            # Enum values compare case-insensitively in the service ('Completed' eq 'completed');
            # ASCII text of another length never folds to the literal.
            if (
                isinstance(actual, str)
                and (len(actual) == len(value) or not (ascii_value and actual.isascii()))
                and actual.lower() == folded
            ):
                actual = value
            return fn(actual, value)

        return compare

    def function(self, name: str) -> Predicate:
        self.take("(")
        if name.lower() != "startswith":
            raise self.error(f"unsupported function '{name}'")
        _, path = self.take("word")
        self.take(",")
        _, prefix = self.take("lit")
        self.take(")")
        if not isinstance(prefix, str):
            raise self.error("startswith needs a string")
        return lambda d: isinstance(v := lookup(d, path), str) and v.startswith(prefix)


def _getter(path: str) -> Callable[[dict], Any]:
    """`lookup(doc, path)` with the path split once (a listing of 100,000 asks 100,000 times)."""
    if "/" not in path:
        return lambda d: d.get(path) if isinstance(d, dict) else None
    return lambda d: lookup(d, path)


def compile_filter(text: str | None) -> Predicate | None:
    """Compile a `$filter` expression; None or blank means "no filter"."""
    if not text or not text.strip():
        return None
    return _Parser(text).parse()


def id_range(text: str | None) -> tuple[str | None, str | None] | None:
    """For a `$filter` that is a conjunction naming the id (`id ge 'a' and id lt 'b'`, what
    clients read large jobs with in parallel), the ids that can match, as inclusive ASCII
    bounds (lo, hi), either None for unbounded, so that a listing in id order looks only
    there; None when the filter does not bound the id so. The filter still decides each item:
    the bounds only need to hold every match. Comparisons that ignore case where the two differ
    only by case are why the bounds span the literal's case variants, which for
    ASCII lie between its upper and lower case."""
    if not text or not text.strip():
        return None
    parser = _Parser(text)  # raises InvalidQueryParameterValue as compile_filter does
    words = [v.lower() for k, v in parser.tokens if k == "word"]
    if "or" in words or "not" in words or any(k in ("(", ")") for k, _ in parser.tokens):
        return None
    lo: str | None = None
    hi: str | None = None
    for term in _split(parser.tokens, "and"):
        if len(term) != 3 or [k for k, _ in term] != ["word", "word", "lit"] or term[0][1].lower() != "id":
            continue
        op, value = term[1][1].lower(), term[2][1]
        if not isinstance(value, str) or not value.isascii():
            continue
        if op in ("eq", "ge", "gt"):
            lo = max(lo, value.upper()) if lo is not None else value.upper()
        if op in ("eq", "le", "lt"):
            hi = min(hi, value.lower()) if hi is not None else value.lower()
    return None if lo is None and hi is None else (lo, hi)


def _split(tokens: list[tuple[str, Any]], word: str) -> list[list[tuple[str, Any]]]:
    terms: list[list[tuple[str, Any]]] = [[]]
    for token in tokens:
        if token[0] == "word" and token[1].lower() == word:
            terms.append([])
        else:
            terms[-1].append(token)
    return terms


def compile_select(text: str | None) -> Callable[[dict], dict] | None:
    """Compile a `$select` list (comma-separated, `/` for nested) into a projection."""
    if not text or not text.strip():
        return None
    paths = [p.strip().split("/") for p in text.split(",") if p.strip()]
    if all(len(parts) == 1 for parts in paths):  # top-level properties only: one look each
        names = [parts[0] for parts in paths]
        return lambda doc: {n: doc[n] for n in names if doc.get(n) is not None}

    def project(doc: dict) -> dict:
        out: dict = {}
        for parts in paths:
            src: Any = doc
            for part in parts:
                src = src.get(part) if isinstance(src, dict) else None
            if src is None:
                continue
            dst = out
            for part in parts[:-1]:
                dst = dst.setdefault(part, {})
            dst[parts[-1]] = src
        return out

    return project
