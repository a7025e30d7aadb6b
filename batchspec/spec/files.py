"""Local files named by globs relative to the spec: matching, blob names, content hashes."""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    path: Path  # absolute
    relative: str  # relative to the glob's fixed leading folders, POSIX separators
    shown: str  # as the user wrote it: relative to the spec's folder


def match(base_dir: Path, pattern: str) -> list[LocalFile]:
    """The regular files `pattern` matches (sorted), each named below the glob's fixed prefix.

    `../data/*.txt` names `../data/a.txt` as `a.txt`; a plain path names the file by its name;
    `in/**/*.csv` keeps the folders below `in/`.
    """
    parts = PurePosixPath(pattern.replace(os.sep, "/")).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    anchor = os.path.normpath((base_dir / Path(*fixed)) if fixed else base_dir)
    base = os.fspath(base_dir)
    found: list[LocalFile] = []
    # String paths (os.path) rather than Path objects: the same results, several times faster
    # for globs that match thousands of files.
    for hit in sorted(glob.glob(pattern, root_dir=base_dir, recursive=True)):
        unresolved = hit if os.path.isabs(hit) else os.path.join(base, hit)
        real = os.path.realpath(unresolved)  # what Path.resolve() computes
        if not os.path.isfile(real):
            Path(unresolved).resolve()  # raises on a symlink loop, as before
            continue
        relative = os.path.relpath(os.path.normpath(unresolved), anchor)
        found.append(
            LocalFile(path=Path(real), relative=relative.replace(os.sep, "/"), shown=hit.replace(os.sep, "/"))
        )
    return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_safe_relative(path: str) -> bool:
    """Whether `path` stays inside the folder it is relative to (no absolute path, no `..`)."""
    if not path or path.startswith(("/", "\\")) or "\\" in path or (len(path) > 1 and path[1] == ":"):
        return False
    return ".." not in PurePosixPath(path).parts


def safe_local_path(root: Path, blob_name: str, *, resolved_root: Path | None = None) -> Path | None:
    """Where blob `blob_name` goes under `root`, or None if the name would leave it.

    Refused: absolute names, backslashes, drive letters, `.`/`..` segments, empty segments, and
    names that resolve outside `root` through a symlink already in it. `resolved_root` is
    `root.resolve()` when the caller already has it (once per download, not once per blob).
    """
    if (
        not blob_name
        or "\\" in blob_name
        or blob_name.startswith("/")
        or re.match(r"^[A-Za-z]:", blob_name)
        or "\x00" in blob_name
    ):
        return None
    parts = blob_name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    path = root.joinpath(*PurePosixPath(blob_name).parts)
    base = resolved_root if resolved_root is not None else root.resolve()
    try:
        path.resolve().relative_to(base)
    except ValueError:
        return None
    return path
