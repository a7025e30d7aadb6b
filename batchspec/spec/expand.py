"""The items a task template is expanded over: files, a container's blobs, ranges, matrices, lists."""

from __future__ import annotations

import itertools
import os
from pathlib import Path, PurePosixPath
from typing import Any

from batchspec.model import Blob
from batchspec.spec.files import LocalFile, match


def file_item(name: str, path: str, size: int) -> dict[str, Any]:
    basename = name.rpartition("/")[2]
    if basename in ("", ".") or "//" in name or "/./" in name or name.startswith("./"):
        pure = PurePosixPath(name)  # what the string operations below assume away
        basename, stem, suffix = pure.name, pure.stem, pure.suffix
    else:  # PurePosixPath's name, stem and suffix, by string (a 100,000-task spec asks each)
        dot = basename.rfind(".")
        stem, suffix = (basename[:dot], basename[dot:]) if 0 < dot < len(basename) - 1 else (basename, "")
    return {
        "name": name,
        "basename": basename,
        "stem": stem,
        "suffix": suffix,
        "path": path,
        "size": size,
    }


def blob_item(blob: Blob, base_dir: Path, *, resolved_base: Path | None = None) -> dict[str, Any]:
    base = resolved_base if resolved_base is not None else base_dir.resolve()
    item = file_item(blob.name, _shown(blob.source, base), blob.size)
    return {**item, "container": blob.container, "ref": blob.ref, "sha256": blob.sha256}


def _shown(source: str, resolved_base: Path) -> str:
    """`source` (absolute, resolved) relative to the spec's folder where it is inside it."""
    inside = os.path.join(resolved_base, "")
    if source.startswith(inside):
        return source[len(inside) :]
    try:
        return Path(source).relative_to(resolved_base).as_posix()
    except ValueError:
        return Path(source).as_posix()


def items(
    for_each: dict[str, Any] | None,
    base_dir: Path,
    blobs_by_container: dict[str, list[Blob]],
    listed: dict[str, list[LocalFile]] | None = None,
) -> list[Any] | str:
    """The items of a forEach, or an error message (the caller knows the location). `listed`
    holds the globs already matched, by pattern."""
    if for_each is None:
        return [None]
    kind, spec = next(iter(for_each.items()))
    if kind == "files":
        found = (listed or {}).get(spec)
        if found is None:
            found = match(base_dir, spec)
        if not found:
            return f"forEach.files {spec!r} matches no file (relative to {base_dir or '.'})"
        return [file_item(f.relative, f.shown, f.size) for f in found]
    if kind == "container":
        name, prefix = (spec, "") if isinstance(spec, str) else (spec["name"], spec.get("prefix", ""))
        if name not in blobs_by_container:
            return f"forEach.container {name!r} is not a container of this spec"
        base = base_dir.resolve()  # once, not per blob
        return [
            blob_item(b, base_dir, resolved_base=base)
            for b in blobs_by_container[name]
            if b.name.startswith(prefix)
        ]
    if kind == "range":
        start, stop, step = (
            (0, spec, 1)
            if isinstance(spec, int)
            else (spec.get("start", 0), spec["stop"], spec.get("step", 1))
        )
        values = range(start, stop, step)
        if len(values) > 100_000:
            return f"forEach.range gives {len(values)} items; at most 100000 are allowed"
        return list(values)
    if kind == "matrix":
        names = list(spec)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*spec.values())]
    return list(spec)  # list


def describe(item: Any) -> str:
    """A short name for an item, for error messages."""
    if isinstance(item, dict) and "basename" in item:  # a file or a blob
        return repr(item["name"])
    return repr(item)
