"""Autoscale formulas: a parser and evaluator for the Batch formula language (the usual subset).

A formula is statements separated by `;`, each `$Name = expr` or `name = expr`. Expressions
have numbers, strings, the keywords `requeue`/`terminate`/`taskcompletion`/`retaineddata`,
variables, `+ - * /`, comparisons, `&& || !`, `cond ? a : b`, function calls (`min`, `max`,
`avg`, `sum`, `len`, `median`, `percentile`, `std`, `abs`, `ceil`, `floor`, `round`, `sqrt`,
`lg`, `ln`, `log`, `rand`, `time`) and sample methods on service metrics
(`$PendingTasks.GetSample(TimeInterval_Minute * 5)`, `.GetSamplePercent(...)`, `.Count()`, ...).

The emulator keeps no metric history: a metric's samples are its current value, and every
sample percentage is 100. The outputs are `$TargetDedicatedNodes` (or the old
`$TargetDedicated`), `$TargetLowPriorityNodes` and `$NodeDeallocationOption`.
"""

from __future__ import annotations

import math
import random
import re
import time
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<str>\"[^\"]*\")"
    r"|(?P<name>\$?[A-Za-z_][A-Za-z0-9_]*)|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/<>!?:;(),.=]))"
)
_COMMENT = re.compile(r"//[^\n]*")
_KEYWORDS = {"requeue", "terminate", "taskcompletion", "retaineddata"}
_INTERVALS = {
    "TimeInterval_Zero": 0.0,
    "TimeInterval_100ns": 1e-7,
    "TimeInterval_Microsecond": 1e-6,
    "TimeInterval_Millisecond": 1e-3,
    "TimeInterval_Second": 1.0,
    "TimeInterval_Minute": 60.0,
    "TimeInterval_Hour": 3600.0,
    "TimeInterval_Day": 86400.0,
    "TimeInterval_Week": 604800.0,
}
# Metrics the service samples; those the emulator does not measure read as 0.
METRICS = (
    "$CPUPercent", "$WallClockSeconds", "$MemoryBytes", "$DiskBytes", "$DiskReadBytes",
    "$DiskWriteBytes", "$DiskReadOps", "$DiskWriteOps", "$NetworkInBytes", "$NetworkOutBytes",
    "$SampleNodeCount", "$ActiveTasks", "$RunningTasks", "$PendingTasks", "$SucceededTasks",
    "$FailedTasks", "$TaskSlotsPerNode", "$CurrentDedicatedNodes", "$CurrentLowPriorityNodes",
    "$UsableNodeCount", "$PreemptedNodeCount",
)  # fmt: skip


class FormulaError(Exception):
    """The formula does not parse or cannot be evaluated."""


class Sample:
    """A metric: its samples are its current value (the emulator keeps no history)."""

    def __init__(self, value: float):
        self.value = value

    def call(self, method: str, args: list) -> Any:
        name = method.lower()
        if name == "getsample":
            return [self.value]
        if name == "getsamplepercent":
            return 100.0
        if name in ("count",):
            return 1.0
        if name in ("getsampleperiod", "historybegintime"):
            return 0.0
        raise FormulaError(f"unknown method {method}")


def _flat(args: list) -> list[float]:
    out: list[float] = []
    for a in args:
        if isinstance(a, Sample):
            a = a.value
        if isinstance(a, list):
            out.extend(float(x) for x in a)
        elif isinstance(a, str):
            raise FormulaError(f"a number was expected, not {a!r}")
        else:
            out.append(float(a))
    return out


def _percentile(v: list[float], p: float) -> float:
    v = sorted(v)
    if not v:
        raise FormulaError("percentile of nothing")
    k = (len(v) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def _std(v: list[float]) -> float:
    if not v:
        raise FormulaError("std of nothing")
    mean = sum(v) / len(v)
    return math.sqrt(sum((x - mean) ** 2 for x in v) / len(v))


def _need(v: list[float], name: str) -> list[float]:
    if not v:
        raise FormulaError(f"{name} of nothing")
    return v


_FUNCS = {
    "min": lambda a: min(_need(_flat(a), "min")),
    "max": lambda a: max(_need(_flat(a), "max")),
    "avg": lambda a: (lambda v: sum(v) / len(v))(_need(_flat(a), "avg")),
    "sum": lambda a: sum(_flat(a)),
    "len": lambda a: float(len(_flat(a))),
    "median": lambda a: _percentile(_flat(a), 50),
    "percentile": lambda a: _percentile(_flat(a[:-1]), _flat(a[-1:])[0]),
    "std": lambda a: _std(_flat(a)),
    "stdev": lambda a: _std(_flat(a)),
    "abs": lambda a: abs(_flat(a)[0]),
    "ceil": lambda a: float(math.ceil(_flat(a)[0])),
    "floor": lambda a: float(math.floor(_flat(a)[0])),
    "round": lambda a: float(round(_flat(a)[0])),
    "sqrt": lambda a: math.sqrt(_flat(a)[0]),
    "lg": lambda a: math.log10(_flat(a)[0]),
    "ln": lambda a: math.log(_flat(a)[0]),
    "log": lambda a: math.log(*_flat(a)[:2]) if len(_flat(a)) > 1 else math.log(_flat(a)[0]),
    "rand": lambda a: random.random(),
    "time": lambda a: time.time(),
}


def _tokens(text: str) -> list[tuple[str, str]]:
    text = _COMMENT.sub("", text)
    out, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FormulaError(f"unexpected character {text[pos:].strip()[:1]!r} at offset {pos}")
        out.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent into a tuple AST: ("num", v), ("var", n), ("bin", op, a, b), ..."""

    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, value: str | None = None) -> bool:
        return self.i < len(self.toks) and (value is None or self.toks[self.i][1] == value)

    def take(self, value: str | None = None) -> tuple[str, str]:
        if not self.peek(value):
            got = self.toks[self.i][1] if self.i < len(self.toks) else "end of formula"
            raise FormulaError(f"expected {value or 'more'}, found {got!r}")
        self.i += 1
        return self.toks[self.i - 1]

    def statements(self) -> list[tuple[str, Any]]:
        out = []
        while self.peek():
            if self.peek(";"):
                self.take(";")
                continue
            kind, name = self.take()
            if kind != "name":
                raise FormulaError(f"a statement starts with a variable, not {name!r}")
            self.take("=")
            out.append((name, self.ternary()))
            if self.peek():
                self.take(";")
        if not out:
            raise FormulaError("the formula has no statements")
        return out

    def ternary(self):
        cond = self.binary(0)
        if self.peek("?"):
            self.take("?")
            a = self.ternary()
            self.take(":")
            return ("if", cond, a, self.ternary())
        return cond

    _LEVELS = (("||",), ("&&",), ("==", "!="), ("<", "<=", ">", ">="), ("+", "-"), ("*", "/"))

    def binary(self, level: int):
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.i < len(self.toks) and self.toks[self.i][1] in self._LEVELS[level]:
            op = self.take()[1]
            left = ("bin", op, left, self.binary(level + 1))
        return left

    def unary(self):
        if self.peek("-") or self.peek("!") or self.peek("+"):
            op = self.take()[1]
            return ("un", op, self.unary())
        return self.postfix(self.primary())

    def primary(self):
        kind, value = self.take()
        if kind == "num":
            return ("num", float(value))
        if kind == "str":
            return ("num", value[1:-1])
        if value == "(":
            inner = self.ternary()
            self.take(")")
            return inner
        if kind == "name":
            if self.peek("(") and not value.startswith("$"):
                return ("call", value.lower(), self.args())
            return ("var", value)
        raise FormulaError(f"unexpected {value!r}")

    def args(self) -> list:
        self.take("(")
        out = []
        while not self.peek(")"):
            out.append(self.ternary())
            if not self.peek(")"):
                self.take(",")
        self.take(")")
        return out

    def postfix(self, node):
        while self.peek("."):
            self.take(".")
            method = self.take()[1]
            node = ("method", node, method, self.args())
        return node


def parse(text: str) -> list[tuple[str, Any]]:
    """Parse a formula into (variable, expression) statements; FormulaError if invalid."""
    return _Parser(text or "").statements()


def _eval(node, env: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "var":
        name = node[1]
        if name in env:
            return env[name]
        if name in _INTERVALS:
            return _INTERVALS[name]
        if name.lower() in _KEYWORDS:
            return name.lower()
        raise FormulaError(f"undefined symbol {name}")
    if kind == "if":
        return _eval(node[2] if _truth(_eval(node[1], env)) else node[3], env)
    if kind == "un":
        v = _num(_eval(node[2], env))
        return -v if node[1] == "-" else (v if node[1] == "+" else float(not v))
    if kind == "bin":
        op = node[1]
        if op == "&&":
            return float(_truth(_eval(node[2], env)) and _truth(_eval(node[3], env)))
        if op == "||":
            return float(_truth(_eval(node[2], env)) or _truth(_eval(node[3], env)))
        a, b = _eval(node[2], env), _eval(node[3], env)
        if op in ("==", "!="):
            same = a == b
            return float(same if op == "==" else not same)
        a, b = _num(a), _num(b)
        if op == "/" and b == 0:
            raise FormulaError("division by zero")
        return {
            "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
            "<": lambda: float(a < b), "<=": lambda: float(a <= b),
            ">": lambda: float(a > b), ">=": lambda: float(a >= b),
        }[op]()  # fmt: skip
    if kind == "call":
        fn = _FUNCS.get(node[1])
        if fn is None:
            raise FormulaError(f"unknown function {node[1]}")
        try:
            return fn([_eval(a, env) for a in node[2]])
        except (ValueError, IndexError) as exc:
            raise FormulaError(f"{node[1]}: {exc}") from None
    if kind == "method":
        target = _eval(node[1], env)
        if not isinstance(target, Sample):
            raise FormulaError(f"{node[2]} applies to a service metric only")
        return target.call(node[2], [_eval(a, env) for a in node[3]])
    raise FormulaError(f"cannot evaluate {kind}")


def _num(v: Any) -> float:
    if isinstance(v, Sample):
        return v.value
    if isinstance(v, list):
        if len(v) != 1:
            raise FormulaError("a vector was used where a number is expected")
        return float(v[0])
    if isinstance(v, str):
        raise FormulaError(f"a number was expected, not {v!r}")
    return float(v)


def _truth(v: Any) -> bool:
    return bool(_num(v))


def _show(v: Any) -> str:
    if isinstance(v, Sample):
        v = v.value
    if isinstance(v, list):
        return "[" + ",".join(_show(x) for x in v) + "]"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def evaluate(text: str, metrics: dict[str, float]) -> tuple[dict[str, Any], str]:
    """Run a formula with the given metric values.

    Returns (outputs, results) where outputs holds targetDedicatedNodes,
    targetLowPriorityNodes (ints, None if not assigned) and nodeDeallocationOption, and
    results is the service's `$Name=value;...` summary of every assigned variable.
    """
    env: dict[str, Any] = {name: Sample(metrics.get(name, 0.0)) for name in METRICS}
    env["$TargetDedicatedNodes"] = env["$TargetDedicated"] = metrics.get("$TargetDedicatedNodes", 0.0)
    env["$TargetLowPriorityNodes"] = metrics.get("$TargetLowPriorityNodes", 0.0)
    env["$NodeDeallocationOption"] = "requeue"
    assigned: dict[str, Any] = {}
    for name, expr in parse(text):
        value = _eval(expr, env)
        env[name] = assigned[name] = value
    dedicated = assigned.get("$TargetDedicatedNodes", assigned.get("$TargetDedicated"))
    low = assigned.get("$TargetLowPriorityNodes")
    option = assigned.get("$NodeDeallocationOption", "requeue")
    if option not in _KEYWORDS:
        raise FormulaError(f"$NodeDeallocationOption must be one of {sorted(_KEYWORDS)}")
    outputs = {
        "targetDedicatedNodes": None if dedicated is None else max(0, int(_num(dedicated))),
        "targetLowPriorityNodes": None if low is None else max(0, int(_num(low))),
        "nodeDeallocationOption": option,
    }
    results = ";".join(f"{k}={_show(v)}" for k, v in assigned.items())
    return outputs, results
