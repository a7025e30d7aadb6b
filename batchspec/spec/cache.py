"""What building a spec remembers between runs: a plan of 100,000 tasks that finds nothing
changed does not hash 100,000 files and expand 100,000 task templates again (~6 s of its ~10).

A memo of local inputs only, never of live state, which every run reads (docs/architecture.md):
- each upload's sha256 by the file's stat (size, mtime, ctime, inode, device). A file whose
  change time is within two seconds of its hashing is not remembered: a write in the same clock
  tick would leave its stat as it was (git's "racily clean" index entries);
- the expanded tasks, with the warnings their expansion gave, by a digest of everything they
  are made from: batchspec's own code, the spec's path and bytes, the resolved vars, every
  upload's name, source, size and sha256, and what each forEach.files matches;
- the spec's TasksDigest (plan/stamps), by that digest and the pool's.

Losing it loses nothing but time: a cache miss builds as if there were none. One folder per
spec file; its entries are pickles written whole (a temporary file renamed over the old) and
read back by an unpickler that makes nothing but batchspec's records.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchspec.model import Pool
from batchspec.spec.files import LocalFile, sha256_file

_RACY_NS = 2_000_000_000
_FORMAT = 2  # bumped when what an entry holds changes shape


class BuildCache:
    """The memo of one spec file's builds, in `root` (the user's batchspec data folder's cache)."""

    def __init__(self, root: Path, spec_path: str | os.PathLike[str], *, refresh: bool = False):
        self.refresh = refresh  # trust nothing remembered (but remember anew)
        where = hashlib.sha256(os.path.realpath(spec_path).encode()).hexdigest()[:32]
        self.folder = Path(root) / where
        # path -> (*its identity (files.LocalFile), its sha256): one flat tuple, the least memory
        self._hashes: dict[str, tuple[Any, ...]] | None = None
        self._used: dict[str, tuple[Any, ...]] = {}
        self.tasks_key: str | None = None  # set by the build that used this cache

    # -- files' digests --------------------------------------------------------------------

    def sha256(self, file: LocalFile) -> str:
        """The file's sha256: remembered if its stat is what it was, else read."""
        if self._hashes is None:
            self._hashes = self._load("files", dict, by_code=False) or {}
        known = self._hashes.get(file.path)
        if known is not None and file.identity and known[:-1] == file.identity:
            self._used[file.path] = known
            return known[-1]
        digest = sha256_file(file.path)
        if file.identity and time.time_ns() - max(file.identity[1], file.identity[2]) > _RACY_NS:
            self._used[file.path] = (*file.identity, digest)
        return digest

    def save_hashes(self) -> None:
        """Keep the digests this build used (a file no longer uploaded is forgotten), and let
        go of the rest: ~50 MB for 100,000 files, which the tasks loaded next need more."""
        if self._hashes is not None and self._used != self._hashes:
            self._store("files", self._used, by_code=False)
        self._hashes, self._used = None, {}

    # -- tasks --------------------------------------------------------------------------------

    def tasks(self, key: str) -> Any | None:
        """What `put_tasks` kept under `key`, or None."""
        self.tasks_key = key
        found = self._load("tasks", tuple)
        return found[1] if found is not None and found[0] == key else None

    def put_tasks(self, key: str, value: Any) -> None:
        self._store("tasks", (key, value))

    def tasks_digest(self, pool: Pool, compute: Callable[[], str]) -> str:
        """The spec's TasksDigest (`compute()`) for the tasks this build made and `pool` (a
        task's stamp holds the pool's application packages)."""
        if self.tasks_key is None:
            return compute()
        key = f"{self.tasks_key}:{pool.fingerprint()}"
        found = self._load("digest", tuple)
        if found is not None and found[0] == key:
            return found[1]
        digest = compute()
        self._store("digest", (key, digest))
        return digest

    # -- entries ------------------------------------------------------------------------------

    def _load(self, name: str, kind: type, *, by_code: bool = True) -> Any | None:
        """The entry `name` if it is a `kind` of this format (and, `by_code`, made by this code:
        a file's digest does not depend on it, the tasks do)."""
        if self.refresh:
            return None
        # Unpickling 100,000 tasks makes ~500,000 objects: without the collector running over
        # them as they come it takes half the time. Read from the file as it goes, not whole
        # first (25 MB more at the peak).
        enabled = gc.isenabled()
        gc.disable()
        try:
            with open(self.folder / name, "rb") as entry:
                if _Records(entry).load() != _version(by_code):  # first, alone: no use reading on
                    return None
                found = _Records(entry).load()
        except Exception:  # none, cut short, or not ours: a miss
            return None
        finally:
            if enabled:
                gc.enable()
        return found if isinstance(found, kind) else None

    def _store(self, name: str, value: Any, *, by_code: bool = True) -> None:
        # A cache that cannot be written (a read-only home, a full disk) only costs time.
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{name}-")
            try:
                with os.fdopen(fd, "wb") as out:
                    pickle.dump(_version(by_code), out, protocol=pickle.HIGHEST_PROTOCOL)
                    pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(temporary, self.folder / name)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise


class _Records(pickle.Unpickler):
    """Makes batchspec's records and the builtins pickle itself encodes, and refuses any other
    class or function an entry might name (a pickle can name any)."""

    _MODULES = ("batchspec.model", "batchspec.errors")

    def find_class(self, module: str, name: str) -> Any:
        if module in self._MODULES:
            found = getattr(__import__(module, fromlist=[name]), name, None)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not a batchspec record")


def _version(by_code: bool) -> tuple[int, str]:
    return (_FORMAT, code_digest() if by_code else "")


_CODE: str | None = None


def code_digest() -> str:
    """A digest of batchspec's own source (the emulator's aside): an entry made by other code
    is not used."""
    global _CODE
    if _CODE is None:
        package = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(package).as_posix()
            if not relative.startswith("emulator/"):
                digest.update(b"\0" + relative.encode() + b"\0" + path.read_bytes())
        _CODE = digest.hexdigest()
    return _CODE
