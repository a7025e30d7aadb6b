"""Templating and task expansion, for every generator kind, through the spec layer's entry point."""

from __future__ import annotations

import shlex
import shutil
import textwrap
from pathlib import Path

import pytest

from batchspec.errors import SpecErrors
from batchspec.spec.build import build
from helpers import ROOT, SPECS

POOL = """\
pool:
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: ubuntu-24_04-lts, sku: server}
"""


def write_spec(tmp_path: Path, body: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text("name: t\n" + POOL + textwrap.dedent(body))
    return path


def test_container_items_are_the_blobs_the_spec_uploads():
    state = build(SPECS / "valid" / "generators.yaml")
    assert [b.ref for b in state.blobs] == [
        "input/data/a.txt",
        "input/data/b.txt",
        "input/data/sub/c.txt",
        "tools/tool.sh",
    ]
    assert [t.id for t in state.tasks] == ["t-a", "t-b", "t-c"]
    c = state.tasks[2]
    assert shlex.split(c.command_line) == ["cat", "data/sub/c.txt", "hello"]
    assert c.resource_files[0].blob == "input/data/sub/c.txt"
    assert c.resource_files[0].file_path == "data/sub/c.txt"
    assert c.output_files[0].path == "c/"
    assert dict(c.environment)["SIZE"] == "6"  # "gamma\n"
    assert dict(c.environment)["SHA"] == state.blobs[2].sha256


def test_container_items_can_be_narrowed_by_prefix(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("x.csv", "y.csv", "z.txt"):
        (tmp_path / "in" / name).write_text(name)
    spec = write_spec(
        tmp_path,
        """\
        storage:
          containers:
            input: {upload: ["in/*"]}
        job:
          tasks:
            forEach: {container: {name: input, prefix: "y"}}
            id: "t-{{ item.stem }}"
            commandLine: "cat {{ item.name }}"
        """,
    )
    assert [t.id for t in build(spec).tasks] == ["t-y"]


def test_files_items_expose_name_stem_suffix_path_and_size(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "one.tar.gz").write_bytes(b"12345")
    (tmp_path / "d" / "sub" / "two.txt").write_bytes(b"")
    spec = write_spec(
        tmp_path,
        """\
        job:
          tasks:
            forEach: {files: "d/**/*"}
            id: "f-{{ item.stem | replace('.', '_') }}"
            commandLine: "x {{ item.name }} {{ item.stem }} {{ item.suffix }} {{ item.path }} {{ item.size }}"
        """,
    )
    tasks = build(spec).tasks
    assert [t.command_line for t in tasks] == [
        "x one.tar.gz one.tar .gz d/one.tar.gz 5",
        "x sub/two.txt two .txt d/sub/two.txt 0",
    ]
    assert [t.id for t in tasks] == ["f-one_tar", "f-two"]


def test_range_items_are_integers(tmp_path):
    spec = write_spec(
        tmp_path,
        """\
        job:
          tasks:
            forEach: {range: {start: 2, stop: 10, step: 3}}
            id: "r-{{ item }}"
            commandLine: "echo {{ item * 10 }}"
        """,
    )
    tasks = build(spec).tasks
    assert [(t.id, t.command_line) for t in tasks] == [
        ("r-2", "echo 20"),
        ("r-5", "echo 50"),
        ("r-8", "echo 80"),
    ]


def test_range_count_starts_at_zero(tmp_path):
    spec = write_spec(
        tmp_path,
        """\
        job:
          tasks: {forEach: {range: 3}, id: "r-{{ item }}", commandLine: "true"}
        """,
    )
    assert [t.id for t in build(spec).tasks] == ["r-0", "r-1", "r-2"]


def test_matrix_is_the_cartesian_product_in_written_order(tmp_path):
    spec = write_spec(
        tmp_path,
        """\
        job:
          tasks:
            forEach: {matrix: {size: [1, 2], mode: [fast, slow]}}
            id: "m-{{ item.size }}-{{ item.mode }}"
            commandLine: "run --size {{ item.size }} --mode {{ item.mode }}"
        """,
    )
    assert [t.id for t in build(spec).tasks] == ["m-1-fast", "m-1-slow", "m-2-fast", "m-2-slow"]


def test_list_items_are_parameter_maps_and_shquote_keeps_names_literal(tmp_path):
    spec = write_spec(
        tmp_path,
        """\
        job:
          tasks:
            forEach:
              list:
                - {key: a, file: "$(touch pwned).txt"}
                - {key: b, file: "it's; rm -rf `x` & \\"y\\" ünï.txt"}
            id: "l-{{ item.key }}"
            commandLine: "python3 t.py --filepath {{ item.file | shquote }}"
        """,
    )
    tasks = build(spec).tasks
    assert shlex.split(tasks[0].command_line)[-1] == "$(touch pwned).txt"
    assert shlex.split(tasks[1].command_line)[-1] == 'it\'s; rm -rf `x` & "y" ünï.txt'
    assert tasks[0].command_line.endswith("'$(touch pwned).txt'")


def test_a_spec_without_foreach_gives_one_task(tmp_path):
    spec = write_spec(
        tmp_path,
        """\
        vars: {n: 4}
        job:
          tasks: {id: "single", commandLine: "echo {{ vars.n }}"}
        """,
    )
    assert [(t.id, t.command_line) for t in build(spec).tasks] == [("single", "echo 4")]


def test_merge_task_depends_on_every_task(tmp_path):
    spec = write_spec(
        tmp_path,
        """\
        job:
          tasks: {forEach: {range: 3}, id: "p-{{ item }}", commandLine: "true"}
          mergeTask:
            id: merge
            commandLine: "merge {{ tasks | join(' ') }}"
        """,
    )
    state = build(spec)
    merge = state.tasks[-1]
    assert merge.id == "merge"
    assert merge.depends_on == ("p-0", "p-1", "p-2")
    assert merge.command_line == "merge p-0 p-1 p-2"
    assert state.job.uses_task_dependencies is True


def test_var_overrides_are_typed_and_swap_inputs():
    state = build(ROOT / "specs" / "topn.yaml", {"numwords": 5, "inputs": "../tests/specs/files/in/*.txt"})
    assert [t.id for t in state.tasks] == ["topn-a", "topn-b"]
    assert all(t.command_line.endswith("--numwords 5'") for t in state.tasks)


def test_vars_render_everywhere_outside_tasks(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        textwrap.dedent("""\
        name: t
        vars: {size: standard_d4s_v3, pool: big}
        pool:
          id: "{{ vars.pool }}-pool"
          vmSize: "{{ vars.size }}"
          image: {publisher: canonical, offer: ubuntu-24_04-lts, sku: server}
        job:
          tasks: {id: one, commandLine: "true"}
        """)
    )
    state = build(spec)
    assert (state.pool.id, state.pool.vm_size, state.job.pool_id) == (
        "big-pool",
        "standard_d4s_v3",
        "big-pool",
    )


def test_a_rendered_pool_id_is_checked_after_rendering(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: t\nvars: {p: 'a b'}\n"
        + POOL.replace("pool:\n", "pool:\n  id: '{{ vars.p }}'\n")
        + "job:\n  tasks: {id: one, commandLine: 'true'}\n"
    )
    with pytest.raises(SpecErrors) as err:
        build(spec)
    assert "pool.id: invalid value 'a b'" in str(err.value)


def _copy_inputs(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copytree(ROOT / "node", tmp_path / "node")
    (tmp_path / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "topn.yaml", tmp_path / "specs" / "topn.yaml")
    return tmp_path / "specs" / "topn.yaml"


def test_task_ids_and_fingerprints_are_stable_when_an_input_is_added(tmp_path):
    spec = _copy_inputs(tmp_path)
    before = {t.id: t.fingerprint() for t in build(spec).tasks}
    (tmp_path / "data" / "another.txt").write_text("new words here\n")
    after = {t.id: t.fingerprint() for t in build(spec).tasks}
    assert set(after) == set(before) | {"topn-another"}
    assert all(after[i] == fp for i, fp in before.items())


def test_a_changed_input_changes_only_its_task_fingerprint(tmp_path):
    spec = _copy_inputs(tmp_path)
    before = {t.id: t.fingerprint() for t in build(spec).tasks}
    with (tmp_path / "data" / "taskdata1.txt").open("a") as f:
        f.write("one more line\n")
    after = {t.id: t.fingerprint() for t in build(spec).tasks}
    changed = {i for i in before if before[i] != after[i]}
    assert changed == {"topn-taskdata1"}


def test_fingerprints_do_not_depend_on_where_the_project_lives(tmp_path):
    here = build(ROOT / "specs" / "topn.yaml")
    there = build(_copy_inputs(tmp_path))
    assert [t.fingerprint() for t in here.tasks] == [t.fingerprint() for t in there.tasks]
    assert here.pool.fingerprint() == there.pool.fingerprint()
    assert [b.fingerprint() for b in here.blobs] == [b.fingerprint() for b in there.blobs]


def test_the_start_task_fingerprint_follows_the_application_files(tmp_path):
    spec = _copy_inputs(tmp_path)
    before = build(spec).pool.fingerprint()
    with (tmp_path / "node" / "topn_task.py").open("a") as f:
        f.write("# changed\n")
    assert build(spec).pool.fingerprint() != before
