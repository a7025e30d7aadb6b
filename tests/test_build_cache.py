"""The build cache (spec/cache.py): a second build of an unchanged spec takes its tasks and its
files' digests from the cache, and anything the tasks are made from that changed is seen."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import textwrap
import time
from pathlib import Path

import pytest

from batchspec.spec import build as build_module
from batchspec.spec import cache as cache_module
from batchspec.spec.build import build
from batchspec.spec.cache import BuildCache
from batchspec.spec.files import LocalFile

SPEC = """\
name: cached
storage:
  containers:
    input: {upload: [data/*.txt]}
pool:
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: ubuntu-24_04-lts, sku: server}
vars: {word: hello}
job:
  tasks:
    forEach: {container: input}
    id: "t-{{ item.stem }}"
    commandLine: "echo {{ vars.word }} $HOME {{ item.name | shquote }}"
    resourceFiles: [{blob: "{{ item.ref }}"}]
"""


_RACY_NS = cache_module._RACY_NS


def _settled(racy_ns: int) -> None:
    # A file changed less than that before it is hashed is not remembered (racily clean).
    time.sleep(racy_ns / 1e9 + 0.02)


@pytest.fixture
def spec(tmp_path: Path, monkeypatch) -> Path:
    """The spec and its files, settled: the racy window is 50 ms in this process (2 s in
    batchspec), so that its files are remembered after a blink rather than two seconds; the
    rule itself is tested at its own value below."""
    monkeypatch.setattr(cache_module, "_RACY_NS", 50_000_000)
    (tmp_path / "data").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "data" / f"{name}.txt").write_text(f"text of {name}\n")
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    _settled(cache_module._RACY_NS)
    return path


@pytest.fixture
def expansions(monkeypatch) -> list[int]:
    """How many times the tasks were expanded rather than taken from the cache."""
    calls: list[int] = []
    real = build_module._Builder._tasks

    def counted(self, job):
        calls.append(1)
        return real(self, job)

    monkeypatch.setattr(build_module._Builder, "_tasks", counted)
    return calls


def _build(spec: Path, home: Path, **options):
    return build(spec, options.pop("overrides", None), cache=BuildCache(home, spec, **options))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_an_unchanged_spec_is_built_from_the_cache_and_equal_to_a_build_without_it(
    spec, tmp_path, expansions
):
    home = tmp_path / "cache"
    first = _build(spec, home)
    second = _build(spec, home)
    assert len(expansions) == 1
    plain = build(spec)
    assert second.tasks == first.tasks == plain.tasks
    assert second.blobs == plain.blobs
    assert second.to_dict() == plain.to_dict()
    # the command line's $HOME, run without a shell, warns every build, cached or not
    assert [str(w) for w in second.warnings] == [str(w) for w in plain.warnings] != []


def test_a_file_rewritten_with_its_old_size_and_modification_time_is_hashed_again(spec, tmp_path):
    home = tmp_path / "cache"
    _build(spec, home)
    target = spec.parent / "data" / "b.txt"
    before = os.stat(target)
    target.write_text("TEXT OF b\n")  # the same size
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime
    state = _build(spec, home)
    blob = next(b for b in state.blobs if b.name == "b.txt")
    assert blob.sha256 == _sha("TEXT OF b\n")
    task = next(t for t in state.tasks if t.id == "t-b")
    assert task.resource_files[0].content == blob.sha256


def test_a_file_changed_just_before_it_is_hashed_is_not_remembered(tmp_path):
    """A write in the same clock tick as the hashing would leave the stat as it was: such a
    file is hashed again next time (its stat is made here as that write would leave it)."""
    target = tmp_path / "a.txt"
    target.write_text("one\n")
    st = os.stat(target)
    now = time.time_ns()
    file = LocalFile(str(target), "a.txt", "a.txt", st.st_size, (st.st_size, now, now, st.st_ino, st.st_dev))

    def hashed(file: LocalFile) -> str:
        cache = BuildCache(tmp_path / "cache", tmp_path / "spec.yaml")
        digest = cache.sha256(file)
        cache.save_hashes()
        return digest

    assert hashed(file) == _sha("one\n")
    target.write_text("two\n")
    assert hashed(file) == _sha("two\n")
    settled = file._replace(identity=(st.st_size, now - 3 * 10**9, now - 3 * 10**9, st.st_ino, st.st_dev))
    assert hashed(settled) == _sha("two\n")
    target.write_text("six\n")
    assert hashed(settled) == _sha("two\n")  # remembered by its stat, as it should be


def test_what_the_tasks_are_made_from_changing_makes_them_again(spec, tmp_path, expansions):
    home = tmp_path / "cache"
    _build(spec, home)
    assert {t.id for t in _build(spec, home, overrides={"word": "bye"}).tasks} == {"t-a", "t-b", "t-c"}
    assert all("echo bye" in t.command_line for t in _build(spec, home, overrides={"word": "bye"}).tasks)
    (spec.parent / "data" / "d.txt").write_text("text of d\n")
    assert [t.id for t in _build(spec, home).tasks] == ["t-a", "t-b", "t-c", "t-d"]
    spec.write_text(SPEC.replace("t-{{", "u-{{"))
    assert [t.id for t in _build(spec, home).tasks] == ["u-a", "u-b", "u-c", "u-d"]
    assert len(expansions) == 4  # the vars, again from the cache, the new file, the spec's text


def test_a_new_file_in_a_foreach_files_glob_is_a_new_task(tmp_path, expansions):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.csv").write_text("1\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            name: listed
            pool:
              vmSize: standard_d2s_v3
              image: {publisher: canonical, offer: ubuntu-24_04-lts, sku: server}
            job:
              tasks:
                forEach: {files: "in/*.csv"}
                id: "t-{{ item.stem }}"
                commandLine: "wc {{ item.name }}"
            """
        )
    )
    home = tmp_path / "cache"
    assert [t.id for t in _build(spec, home).tasks] == ["t-x"]
    assert [t.id for t in _build(spec, home).tasks] == ["t-x"]
    (tmp_path / "in" / "y.csv").write_text("2\n")
    assert [t.id for t in _build(spec, home).tasks] == ["t-x", "t-y"]
    assert len(expansions) == 2


def test_refresh_hashes_every_file_again(spec, tmp_path):
    home = tmp_path / "cache"
    cache = BuildCache(home, spec)
    build(spec, cache=cache)
    # A digest the cache holds for a file whose stat did not change is believed ...
    entry = cache.folder / "files"
    with entry.open("rb") as f:
        version, kept = pickle.load(f), pickle.load(f)
    path = str((spec.parent / "data" / "a.txt").resolve())
    kept[path] = (*kept[path][:-1], "0" * 64)
    entry.write_bytes(pickle.dumps(version) + pickle.dumps(kept))
    assert _build(spec, home).blobs[0].sha256 == "0" * 64
    # ... unless the build is told to trust nothing remembered, which remembers anew.
    assert _build(spec, home, refresh=True).blobs[0].sha256 == _sha("text of a\n")
    assert _build(spec, home).blobs[0].sha256 == _sha("text of a\n")


def test_an_entry_naming_anything_but_batchspec_records_is_not_unpickled(spec, tmp_path, expansions):
    home = tmp_path / "cache"
    cache = BuildCache(home, spec)
    build(spec, cache=cache)
    witness = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {witness}",))

    for name in ("tasks", "files"):
        (cache.folder / name).write_bytes(
            pickle.dumps(cache_module._version(name == "tasks")) + pickle.dumps(Payload())
        )
    state = _build(spec, home)
    assert not witness.exists()
    assert [t.id for t in state.tasks] == ["t-a", "t-b", "t-c"]
    assert len(expansions) == 2  # the refused entry was a miss


def test_an_entry_of_other_code_or_cut_short_is_a_miss(spec, tmp_path, expansions, monkeypatch):
    home = tmp_path / "cache"
    cache = BuildCache(home, spec)
    build(spec, cache=cache)
    monkeypatch.setattr(cache_module, "_CODE", "another version")
    hashed: list[str] = []
    monkeypatch.setattr(cache_module, "sha256_file", lambda path: hashed.append(path) or "f" * 64)
    _build(spec, home)
    assert len(expansions) == 2  # the tasks are made again by the other code ...
    assert hashed == []  # ... from the files' digests, which do not depend on it
    raw = (cache.folder / "tasks").read_bytes()
    (cache.folder / "tasks").write_bytes(raw[: len(raw) // 2])
    _build(spec, home)
    assert len(expansions) == 3


def test_the_tasks_digest_is_remembered_per_pool(spec, tmp_path):
    home = tmp_path / "cache"
    cache = BuildCache(home, spec)
    made: list[str] = []

    def compute(value: str):
        return lambda: made.append(value) or value

    state = build(spec, cache=cache)
    other_pool = dataclasses.replace(state.pool, task_slots_per_node=2)
    assert cache.tasks_digest(state.pool, compute("d1")) == "d1"
    again = BuildCache(home, spec)
    build(spec, cache=again)
    assert again.tasks_digest(state.pool, compute("other")) == "d1"
    assert again.tasks_digest(other_pool, compute("d2")) == "d2"
    assert made == ["d1", "d2"]
    # a build whose tasks could not be remembered makes its digest every time
    assert BuildCache(home, spec).tasks_digest(other_pool, compute("d3")) == "d3"


def test_an_unwritable_cache_only_costs_time(spec, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache's folder would be")
    state = _build(spec, blocked)
    assert [t.id for t in state.tasks] == ["t-a", "t-b", "t-c"]


def test_the_cli_keeps_its_cache_in_the_data_folder_and_validates_from_it(cli, spec, tmp_path):
    _settled(_RACY_NS)  # for the command line, which has the rule's own window
    env = {"BATCHSPEC_HOME": str(tmp_path / "home")}
    first = cli("validate", str(spec), env=env)
    second = cli("validate", str(spec), env=env)
    assert first.returncode == second.returncode == 0, first.stderr
    assert "valid (3 blob(s), 3 task(s))" in second.stdout
    assert second.stderr == first.stderr and "warning" in second.stderr
    assert {p.name for p in (tmp_path / "home" / "cache").glob("*/*")} == {"files", "tasks"}
    strict = cli("validate", "--strict", str(spec), env=env)
    assert strict.returncode == 2


def test_the_records_a_spec_has_many_of_pickle_as_their_fields_in_order(spec):
    """_Compact records are pickled as their class called with `__slots__`' values: that holds
    only while the slots are the fields, in order, all taken by __init__."""
    from batchspec import model

    for record in (model.Blob, model.ResourceFile, model.OutputFile, model.TaskContainer, model.Task):
        fields = dataclasses.fields(record)
        assert record.__slots__ == tuple(f.name for f in fields) and all(f.init for f in fields), record
        assert not hasattr(record(*[None] * len(fields)), "__dict__")
    state = build(spec)
    assert pickle.loads(pickle.dumps(state.tasks)) == state.tasks
    assert pickle.loads(pickle.dumps(state.blobs)) == state.blobs
