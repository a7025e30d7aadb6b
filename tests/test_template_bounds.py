"""Templates cannot exhaust memory or time: each way to blow up is stopped at a bound, early."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchspec.errors import SpecError
from batchspec.spec import bounded
from batchspec.spec.loader import Document
from batchspec.spec.template import Renderer

HOSTILE = {
    "repeat a string": ("{{ 'x' * 10**10 }}", "`*` would build a value of 10000000000"),
    "repeat a list": ("{{ ([1] * 100000000) | length }}", "`*` would build a value of 100000000"),
    "a huge power": ("{{ 10 ** 100000000 }}", "`**` with an exponent of 100000000"),
    "double with ~": (
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "`~` would build a string over 1048576 characters",
    ),
    "double with +": (
        "{% set ns = namespace(s=['a']) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "`+` would build a value of 2097152",
    ),
    "grow with replace": (
        "{% set ns = namespace(s='a') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s.replace('a', 'aa') %}{% endfor %}",
        "it would build a value of 2097152",
    ),
    "loops nested deep": (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "the spec's template loops ran more than 10000000 times",
    ),
    "a wide filter": ("{{ 'x' | center(10**9) }}", "the center filter with a width over 1048576"),
    "a wide method": ("{{ 'x'.rjust(10**9) }}", "str.rjust with a width over 1048576"),
    "a wide printf": ("{{ '%999999999d' % 1 }}", "a format width of 999999999"),
    "a wide format filter": ("{{ '%999999999d' | format(1) }}", "a format width of 999999999"),
    "a wide str.format": ("{{ '{:>999999999}'.format(1) }}", "a format width of 999999999"),
    "too much output": (
        "{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}",
        "it would render more than 1048576 characters",
    ),
}


def _render(template: str):
    doc = Document(path=Path("spec.yaml"), data={}, marks={("job", "tasks", "commandLine"): (9, 18)})
    return Renderer(doc).render(template, ("job", "tasks", "commandLine"), {"vars": {}})


@pytest.mark.parametrize("template, message", HOSTILE.values(), ids=list(HOSTILE))
def test_a_template_past_a_bound_is_refused_at_its_line(template, message):
    with pytest.raises(SpecError) as info:
        _render(template)
    assert str(info.value).startswith("spec.yaml:9:18: job.tasks.commandLine: template exceeds a bound: "), (
        info.value
    )
    assert message in str(info.value)


def test_templates_within_the_bounds_render_as_before():
    template = (
        "{{ 'a' ~ 'b' }}-{% for i in range(3) %}{{ i }}{% endfor %}-{{ '%05d' % 7 }}-{{ 'x' | center(5) }}"
        "-{{ 2 ** 10 }}-{{ '{:>4}'.format(1) }}-{{ [1, 2] + [3] }}-{{ 'ab' * 2 }}-{{ 7 % 3 }}"
    )
    assert _render(template) == "ab-012-00007-  x  -1024-   1-[1, 2, 3]-abab-1"


def test_the_time_bound_counts_every_render_of_a_spec(monkeypatch):
    monkeypatch.setattr(bounded, "MAX_SECONDS", 0.2)
    renderer = Renderer(Document(path=Path("spec.yaml"), data={}))
    quick = "{% for i in range(20000) %}{{ i | string }}{% endfor %}"
    with pytest.raises(SpecError, match="templates took more than 0.2 s to render"):
        for _ in range(1000):  # each render is quick; together they pass the bound
            renderer.render(quick, ("x",), {})


PRINTED = [
    "t-{{ item.stem }}",
    "{{ item.name | shquote }} --n {{ vars.numwords }}",
    "{{ item['stem'] }}x{{ 3 }}{{ 'a' }}",
    "{{ vars.missing_ok }}",
    "{{ item.items }}",
    "{{ item.stem | upper }}\n",
]
FAILING = [
    "{{ item.nope }}",
    "{{ nope }}",
    "{{ item.__class__ }}",
    "{{ item.name | shquote(1) }}",
    "{{ 'x' * 2000000 }}",
]


@pytest.mark.parametrize("template", PRINTED + FAILING)
def test_templates_that_only_print_values_render_as_jinja_renders_them(template):
    """Such templates skip Jinja's per-render context (spec/template.py, `_printer`); what
    they give, and every error, must be Jinja's own."""
    import jinja2

    doc = Document(path=Path("spec.yaml"), data={})
    context = {"vars": {"numwords": 3, "missing_ok": None}, "item": {"stem": "in0", "name": "a b'c.txt"}}
    renderer = Renderer(doc)
    env = renderer.env
    try:
        expected = env.render(env.from_string(template), context)
    except (jinja2.TemplateError, bounded.TemplateBound, TypeError) as exc:
        expected = type(exc)
    try:
        got = renderer.render(template, ("x",), context)
    except SpecError:
        assert expected in (
            jinja2.UndefinedError,
            jinja2.exceptions.SecurityError,
            bounded.TemplateBound,
            TypeError,
        )
        return
    assert got == expected
