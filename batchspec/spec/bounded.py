"""A Jinja2 sandbox whose templates cannot exhaust memory or time.

Jinja's sandbox keeps templates away from Python's internals, not from resources:
`{{ 'x' * 10**10 }}`, a string doubled in a loop, or loops nested four deep over `range(100000)`
would take a plan down. This environment bounds what a template produces and the work it does:

- every string or list a template builds (`*`, `~`, `%`, `**`, filters, str methods, the
  rendered value itself) holds at most `MAX_VALUE` items, checked before the big ones are made;
- loops run at most `MAX_ITERATIONS` times and rendering takes at most `MAX_SECONDS`, summed over
  every template of a spec (a 100,000-task spec renders in a few seconds).

Past a bound, rendering stops with `TemplateBound`, which the renderer reports at the spec line.
"""

from __future__ import annotations

import functools
import operator
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import SandboxedEnvironment

MAX_VALUE = 1 << 20  # characters of a string, items of a list
MAX_ITERATIONS = 10_000_000
MAX_SECONDS = 60.0
_CHECK_TIME_EVERY = 64  # loop iterations between clock reads
_WIDTH = re.compile(r"(\d{7,})")  # a width or precision of a million or more, in a format string
_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate"})
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class TemplateBound(Exception):
    """A template went past one of the bounds; the message says which."""


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, bytes)) and len(value) > MAX_VALUE:
        raise TemplateBound(
            f"it would build a value of {len(value)} characters or items (the bound is {MAX_VALUE})"
        )
    return value


def _check_widths(fmt: Any) -> None:
    if isinstance(fmt, str) and (m := _WIDTH.search(fmt)) and int(m.group(1)) > MAX_VALUE:
        raise TemplateBound(f"a format width of {m.group(1)} would build a value over {MAX_VALUE} characters")


class _BoundedCodeGenerator(CodeGenerator):
    """Routes every loop's iterable and every `~` through the environment's bounds."""

    def visit_For(self, node: nodes.For, frame) -> None:
        node.iter = nodes.Call(nodes.EnvironmentAttribute("bounded_iter"), [node.iter], [], None, None)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(SandboxedEnvironment):
    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.iterations = 0
        self.seconds = 0.0  # spent rendering, in finished renders
        self._since: float | None = None  # when the render under way started
        for name in list(self.filters):
            self.filters[name] = _bounded_filter(self, name, self.filters[name])

    # -- accounting -------------------------------------------------------------------------

    def render(self, template: Any, context: dict[str, Any]) -> str:
        """Render within the bounds: the output streamed and measured as it comes."""
        self._since = time.perf_counter()
        try:
            parts, size = [], 0
            for chunk in template.generate(context):
                size += len(chunk)
                if size > MAX_VALUE:
                    raise TemplateBound(f"it would render more than {MAX_VALUE} characters")
                parts.append(chunk)
            return "".join(parts)
        finally:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def render_printer(self, printer: Any, context: dict[str, Any]) -> str | None:
        """What a template that only prints values (`template._printer`) renders, within the
        same bounds; None where Jinja must render it itself (it then answers as it always did)."""
        since = time.perf_counter()
        try:
            text = printer(context)
        except Exception:  # noqa: BLE001 - Jinja renders it again and reports what went wrong
            return None
        finally:
            self.seconds += time.perf_counter() - since
        return text if len(text) <= MAX_VALUE else None

    def _tick(self) -> None:
        if self._since is not None and self.seconds + time.perf_counter() - self._since > MAX_SECONDS:
            raise TemplateBound(f"the spec's templates took more than {MAX_SECONDS:g} s to render")

    # -- the hooks the compiled templates call ------------------------------------------------

    def bounded_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise TemplateBound(f"the spec's template loops ran more than {MAX_ITERATIONS} times")
            if self.iterations % _CHECK_TIME_EVERY == 0:
                self._tick()
            yield item

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        texts = [str(p) for p in parts]
        if sum(map(len, texts)) > MAX_VALUE:
            raise TemplateBound(f"`~` would build a string over {MAX_VALUE} characters")
        return "".join(texts)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "+":
            sequences = isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple))
            if sequences and len(left) + len(right) > MAX_VALUE:
                raise TemplateBound(
                    f"`+` would build a value of {len(left) + len(right)} characters or items"
                )
            return operator.add(left, right)
        if op == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_VALUE:
                    raise TemplateBound(f"`*` would build a value of {len(seq) * n} characters or items")
            return operator.mul(left, right)
        if op == "**":
            if isinstance(right, int) and right > 4096 and isinstance(left, (int, float)) and abs(left) > 1:
                raise TemplateBound(f"`**` with an exponent of {right} would build a number too large")
            return operator.pow(left, right)
        if isinstance(left, str):  # printf-style formatting
            _check_widths(left)
        return _check_size(operator.mod(left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        __self._tick()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if (
            isinstance(owner, str)
            and name in _WIDTH_METHODS
            and any(isinstance(a, int) and a > MAX_VALUE for a in args)
        ):
            raise TemplateBound(f"str.{name} with a width over {MAX_VALUE} characters")
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Any:
        # The sandbox hands templates a wrapper of str.format as soon as they read the attribute.
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_widths(value.__self__)
        return wrapped


def _bounded_filter(env: BoundedEnvironment, name: str, func: Any) -> Any:
    """A filter whose result, and any width it is given, stay within the bounds."""

    first = 2 if getattr(func, "jinja_pass_arg", None) else 1  # after the context and the value

    @functools.wraps(func)  # keeps jinja's pass_context / pass_environment marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        env._tick()
        if name in _WIDTH_FILTERS:
            widths = (*args[first:], *kwargs.values())
            if any(isinstance(a, int) and a > MAX_VALUE for a in widths):
                raise TemplateBound(f"the {name} filter with a width over {MAX_VALUE} characters")
        if name == "format" and args:
            _check_widths(args[0])
        return _check_size(func(*args, **kwargs))

    return bounded
