"""Read a spec file into plain Python values, remembering where each value and key came from.

PyYAML's composer gives the node graph with marks; the conversion to values is done here rather
than by PyYAML's constructors so that duplicate keys are errors instead of last-wins, only the
plain JSON-like tags are accepted, and alias expansion is bounded (billion laughs).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from batchspec.errors import Location, SpecError, SpecErrors

# A path into the document: keys and list indexes, as jsonschema reports them.
Path_ = tuple[str | int, ...]

_MAX_NODES = 100_000  # values produced after alias expansion; far above any real spec
_MAX_DEPTH = 64
_MAX_BYTES = 5 * 1024 * 1024

_T = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_T + t for t in ("str", "int", "float", "bool", "null", "timestamp")}


@dataclass
class Document:
    """A loaded spec: its values, and the location of every value and mapping key by path."""

    path: Path
    data: dict[str, Any]
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    digest: str = ""  # sha256 of the bytes it was read from

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def location(self, path: Path_, *, key: bool = False) -> Location:
        """The location of the value at `path` (or of its key), else of its nearest ancestor."""
        p = tuple(path)
        while True:
            mark = (self.key_marks.get(p) if key else None) or self.marks.get(p)
            if mark or not p:
                break
            p = p[:-1]
        line, col = mark or (1, 1)
        return Location(str(self.path), line, col)


def load(path: str | Path) -> Document:
    """Load the spec at `path`. Raises SpecErrors (exit code 2) for anything that is not a spec."""
    p = Path(path)
    shown = str(path)
    if not p.exists():
        raise SpecErrors([SpecError("no such file", location=Location(shown))])
    if p.is_dir():
        raise SpecErrors([SpecError("is a directory, not a spec file", location=Location(shown))])
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SpecErrors([SpecError(f"cannot read: {exc.strerror}", location=Location(shown))]) from None
    if len(raw) > _MAX_BYTES:
        raise SpecErrors(
            [SpecError(f"file is larger than {_MAX_BYTES // 1024 // 1024} MiB", location=Location(shown))]
        )
    text = _decode(raw, shown)
    doc = Document(path=Path(shown), data={}, digest=hashlib.sha256(raw).hexdigest())
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise SpecErrors([_yaml_error(exc, shown)]) from None
    except yaml.YAMLError as exc:  # e.g. a reader error on control characters
        raise SpecErrors([SpecError(f"invalid YAML: {exc}", location=Location(shown))]) from None
    except RecursionError:
        # PyYAML parses nested collections recursively: thousands of levels exhaust the stack
        # before the depth check below could see them.
        raise SpecErrors(
            [SpecError(f"nested deeper than {_MAX_DEPTH} levels", location=Location(shown))]
        ) from None
    if root is None:
        raise SpecErrors([SpecError("the spec is empty", location=Location(shown, 1, 1))])
    if not isinstance(root, yaml.MappingNode):
        raise SpecErrors(
            [
                SpecError(
                    f"the top level must be a mapping of fields, not {_kind(root)}",
                    location=_loc(shown, root),
                )
            ]
        )
    converter = _Converter(doc)
    data = converter.value(root, ())
    if converter.errors:
        raise SpecErrors(converter.errors)
    doc.data = data
    return doc


def _decode(raw: bytes, shown: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SpecErrors(
            [
                SpecError(
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
                    location=Location(shown, line, col),
                )
            ]
        ) from None


def _yaml_error(exc: yaml.MarkedYAMLError, shown: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if "'\\t'" in problem or "\t" in problem:
        problem = "a tab character; YAML indents with spaces only"
    location = Location(shown, mark.line + 1, mark.column + 1) if mark else Location(shown)
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return SpecError(f"invalid YAML: {problem}{context}", location=location)


def _loc(shown: str, node: yaml.Node) -> Location:
    return Location(shown, node.start_mark.line + 1, node.start_mark.column + 1)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"a scalar ({node.value!r})"
    return "a mapping"


def _unsupported(tag: str) -> str:
    return (
        f"unsupported YAML tag {tag!r}: a spec holds only mappings, lists, strings, numbers, "
        "booleans and null"
    )


class _Converter:
    def __init__(self, doc: Document):
        self.doc = doc
        self.errors: list[SpecError] = []
        self.count = 0
        self._scalars = yaml.SafeLoader("")  # its construct_yaml_* methods resolve plain scalars

    def _error(self, message: str, node: yaml.Node) -> None:
        self.errors.append(SpecError(message, location=_loc(str(self.doc.path), node)))

    def value(self, node: yaml.Node, path: Path_, depth: int = 0) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            if self.count == _MAX_NODES + 1:
                self._error(
                    f"the document expands to more than {_MAX_NODES} values "
                    "(an alias bomb?); use fewer aliases",
                    node,
                )
            return None
        if depth > _MAX_DEPTH:
            self._error(f"nested deeper than {_MAX_DEPTH} levels (a recursive alias?)", node)
            return None
        self.doc.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _T + "seq":
                self._error(_unsupported(node.tag), node)
                return None
            return [self.value(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self._error(_unsupported(node.tag), node)
            return None
        if node.tag == _T + "timestamp":  # dates stay text: the spec has no date fields
            return node.value
        value = self._scalars.construct_object(node, deep=True)
        if isinstance(value, (_dt.date, _dt.datetime)):
            return node.value
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        if node.tag != _T + "map":
            self._error(_unsupported(node.tag), node)
            return {}
        result: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _T + "merge":
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._error("a mapping key must be a plain string", key_node)
                continue
            key = key_node.value if key_node.tag == _T + "str" else str(self._scalar(key_node))
            if key in seen:
                first = seen[key].start_mark.line + 1
                self._error(f"duplicate key {key!r} (first defined on line {first})", key_node)
                continue
            seen[key] = key_node
            child = (*path, key)
            self.doc.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.value(value_node, child, depth + 1)
        # Merged in after the explicit keys so that their marks, not the anchor's, are kept.
        merged: dict[str, Any] = {}
        for value_node in merges:
            merged.update(self._merge(value_node, path, depth))
        return {**{k: v for k, v in merged.items() if k not in result}, **result}

    def _merge(self, node: yaml.Node, path: Path_, depth: int) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):  # earlier sources win, as in YAML's merge key
            value = self.value(source, path, depth + 1)
            if not isinstance(value, dict):
                self._error("a merge key (<<) takes a mapping or a list of mappings", source)
                continue
            merged.update(value)
        return merged
