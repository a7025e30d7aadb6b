"""Local files named by globs relative to the spec: matching, blob names, content hashes."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import NamedTuple

_CHUNK = 1024 * 1024


class LocalFile(NamedTuple):
    # A tuple rather than a frozen dataclass: a glob of 100,000 files makes as many.
    path: str  # absolute, resolved
    relative: str  # relative to the glob's fixed leading folders, POSIX separators
    shown: str  # as the user wrote it: relative to the spec's folder
    size: int = 0  # bytes, when it was matched
    # (size, mtime_ns, ctime_ns, inode, device) when it was matched: what tells a file that
    # changed from one that did not without reading it (spec/cache.py)
    identity: tuple[int, ...] = ()


# A path with an empty, `.` or `..` segment, which normpath would rewrite.
_UNNORMAL = re.compile(r"(?:^|[/\\])\.{1,2}(?:[/\\]|$)|[/\\]{2}|[/\\]$")


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
    inside = anchor + os.sep if anchor != os.sep else anchor
    base = os.fspath(base_dir)
    joined = base if base.endswith(os.sep) else base + os.sep  # what os.path.join(base, x) starts with
    normal_base = os.path.normpath(base)
    normal_joined = "" if normal_base == os.curdir else os.path.join(normal_base, "")
    found: list[LocalFile] = []
    real_folders: dict[str, str] = {}
    # String paths (os.path) rather than Path objects, each folder resolved once, and joins and
    # normpath by string where a relative hit has nothing for them to rewrite: the same results,
    # several times faster for globs that match thousands of files.
    for hit in sorted(glob.glob(pattern, root_dir=base_dir, recursive=True)):
        absolute = os.path.isabs(hit)
        unresolved = hit if absolute else joined + hit
        real, st = _regular_file(unresolved, real_folders)
        if real is None or st is None:
            Path(unresolved).resolve()  # raises on a symlink loop, as before
            continue
        if absolute or _UNNORMAL.search(hit):
            normal = os.path.normpath(unresolved)
        else:
            normal = normal_joined + hit
        relative = normal[len(inside) :] if normal.startswith(inside) else os.path.relpath(normal, anchor)
        found.append(
            LocalFile(
                real,
                relative.replace(os.sep, "/"),
                hit.replace(os.sep, "/"),
                st.st_size,
                (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev),
            )
        )
    return found


def _regular_file(path: str, real_folders: dict[str, str]) -> tuple[str | None, os.stat_result | None]:
    """(what `os.path.realpath(path)` gives, its stat) if that is a regular file, else (None, None).

    A file that is not a link is its resolved folder joined with its name: one lstat instead of
    resolving every component of its path again (five lstat calls a file in /tmp/x/data/).
    """
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            st = os.stat(real)
        else:
            folder, _, name = path.rpartition(os.sep)
            real_folder = real_folders.get(folder)
            if real_folder is None:
                real_folder = real_folders[folder] = os.path.realpath(folder or os.sep)
            real = real_folder + name if real_folder.endswith(os.sep) else real_folder + os.sep + name
    except OSError:
        return None, None
    return (real, st) if stat.S_ISREG(st.st_mode) else (None, None)


def sha256_file(path: str | os.PathLike[str]) -> str:
    # os.open/os.read rather than a buffered file: ~11 us instead of ~40 for a tiny file, and
    # a 100,000-file spec hashes every file on every plan.
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
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
