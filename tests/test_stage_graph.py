"""Stages: a job's tasks as named templates that depend on each other, built into tasks with
their dependencies, sent as the service takes them, and planned so that a change reruns what
is downstream of it and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from batchspec.apply.payloads import job_metadata
from batchspec.apply.payloads import task as task_body
from batchspec.model import TASK_FINGERPRINT_ENV, Dependencies, LiveState, dependencies
from batchspec.plan import Action, diff, task_stamp
from batchspec.spec.build import build
from helpers import ROOT

_SPEC = """\
name: st
storage:
  containers:
    st-in: {{upload: [data/*.txt]}}
    st-work: {{}}
pool:
  vmSize: standard_d2s_v3
  image: {{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}}
job:
  tasks:
{stages}
"""


def _build(tmp_path, stages: str, files: int = 3):
    (tmp_path / "data").mkdir(exist_ok=True)
    for i in range(files):
        if not (tmp_path / "data" / f"f{i}.txt").exists():
            (tmp_path / "data" / f"f{i}.txt").write_text(f"text {i}")
    (tmp_path / "spec.yaml").write_text(_SPEC.format(stages=stages))
    return build(tmp_path / "spec.yaml")


_MAP_REDUCE = """\
    - name: report
      dependsOn: [reduce]
      id: report
      commandLine: cat total.txt
      resourceFiles: [{blob: st-work/total.txt}]
    - name: map
      forEach: {container: st-in}
      id: "map-{{ item.stem }}"
      commandLine: "wc -w {{ item.name }}"
      resourceFiles: [{blob: "{{ item.ref }}"}]
      outputFiles: [{pattern: ../stdout.txt, container: st-work, path: "counts/{{ item.stem }}.txt"}]
    - name: reduce
      dependsOn: [map]
      commandLine: >-
        sum {{ stages.map.ids | join(' ') }}
        from {{ stages.map.outputs | map(attribute='ref') | join(' ') }}
      resourceFiles: [{container: st-work, blobPrefix: counts/}]
      outputFiles: [{pattern: total.txt, container: st-work, path: total.txt}]
"""


def test_stages_are_built_each_after_those_it_depends_on_with_their_dependencies(tmp_path):
    desired = _build(tmp_path, _MAP_REDUCE)
    tasks = {t.id: t for t in desired.tasks}
    assert [t.id for t in desired.tasks] == ["map-f0", "map-f1", "map-f2", "3000000", "report"]
    assert [t.stage for t in desired.tasks] == ["map"] * 3 + ["reduce", "report"]
    assert tasks["3000000"].depends_on == ("map-f0", "map-f1", "map-f2")
    assert tasks["report"].depends_on == ("3000000",)
    assert not tasks["map-f0"].depends_on
    assert desired.job.uses_task_dependencies
    # A later stage's templates see the earlier stages' ids and output blobs.
    assert tasks["3000000"].command_line == (
        "sum map-f0 map-f1 map-f2 from st-work/counts/f0.txt st-work/counts/f1.txt st-work/counts/f2.txt"
    )
    # A blob an upstream stage writes is a resource file like an uploaded one.
    (report_input,) = tasks["report"].resource_files
    assert (report_input.blob, report_input.file_path) == ("st-work/total.txt", "total.txt")


def test_the_dependencies_go_as_id_ranges_where_the_ids_are_numbers(tmp_path):
    desired = _build(
        tmp_path,
        """\
    - {name: map, forEach: {range: 2500}, commandLine: /bin/true}
    - {name: named, forEach: {list: [{k: a}, {k: b}]}, id: "n-{{ item.k }}", commandLine: /bin/true}
    - {name: reduce, dependsOn: [map, named], id: reduce, commandLine: /bin/true}
""",
    )
    reduce = desired.tasks[-1]
    assert len(reduce.depends_on) == 2502
    assert dependencies(reduce.depends_on) == Dependencies(("n-a", "n-b"), ((1_000_000, 1_002_499),))

    class _Grants:
        def blob_read(self, *a):
            raise AssertionError("no inputs")

        container_read = blob_read

        def container_write(self, container):
            return {"containerUrl": f"https://x/{container}?sig=s"}

    body = task_body(reduce, "stamp", _Grants(), desired.pool)
    assert body["dependsOn"] == {
        "taskIds": ["n-a", "n-b"],
        "taskIdRanges": [{"start": 1000000, "end": 1002499}],
    }


def test_only_canonical_whole_numbers_make_ranges():
    split = dependencies(("7", "8", "10", "007", "-3", "1e3", "2147483648", "٣"))
    assert split.ranges == ((7, 8), (10, 10))
    assert split.task_ids == ("007", "-3", "1e3", "2147483648", "٣")


def test_a_blob_no_upstream_stage_writes_is_refused(tmp_path):
    from batchspec.errors import SpecErrors

    stages = _MAP_REDUCE.replace("[{blob: st-work/total.txt}]", "[{blob: st-work/other.txt}]")
    with pytest.raises(SpecErrors) as err:
        _build(tmp_path, stages)
    assert "the spec uploads no file named 'other.txt' to 'st-work'" in str(err.value)


def _converged(desired) -> LiveState:
    tasks = [
        {
            "id": t.id,
            "state": "completed",
            "environmentSettings": [{"name": TASK_FINGERPRINT_ENV, "value": task_stamp(t, desired.pool)}],
            "executionInfo": {"result": "success", "exitCode": 0},
        }
        for t in desired.tasks
    ]
    job = {
        "id": desired.job.id,
        "state": "active",
        "poolInfo": {"poolId": desired.pool.id},
        "usesTaskDependencies": True,
        "metadata": job_metadata(desired.job, desired.name),
    }
    return LiveState(containers={}, blobs={}, pool=None, job=job, tasks=tasks)


def _task_changes(plan) -> dict[str, tuple[Action, tuple[str, ...]]]:
    return {c.id: (c.action, c.reasons) for c in plan.of("task")}


def test_a_changed_input_replaces_its_task_and_everything_downstream_and_nothing_else(tmp_path):
    desired = _build(tmp_path, _MAP_REDUCE)
    live = _converged(desired)
    (tmp_path / "data" / "f1.txt").write_text("changed")
    changes = _task_changes(diff(_build(tmp_path, _MAP_REDUCE), live))
    assert changes == {
        "map-f1": (Action.REPLACE, ("resourceFiles: inputs or their content changed",)),
        "3000000": (Action.REPLACE, ("depends on map-f1, which is replaced",)),
        "report": (Action.REPLACE, ("depends on 3000000, which is replaced",)),
    }


def test_a_failed_task_runs_again_with_what_depends_on_it(tmp_path):
    desired = _build(tmp_path, _MAP_REDUCE)
    live = _converged(desired)
    live.tasks[3]["executionInfo"] = {"result": "failure", "exitCode": 1}  # reduce
    live.tasks[4]["state"] = "active"  # report, blocked behind it
    plan = diff(desired, live)
    assert _task_changes(plan) == {
        "3000000": (Action.RERUN, ("completed with failure (exit code 1)",)),
        "report": (Action.REPLACE, ("depends on 3000000, which runs again",)),
    }
    assert plan.pending_tasks == 0


def test_a_new_input_adds_its_task_and_replaces_what_depends_on_its_stage(tmp_path):
    desired = _build(tmp_path, _MAP_REDUCE)
    live = _converged(desired)
    changes = _task_changes(diff(_build(tmp_path, _MAP_REDUCE, files=4), live))
    assert changes["map-f3"] == (Action.CREATE, ())
    assert changes["3000000"][0] == Action.REPLACE
    assert changes["report"] == (Action.REPLACE, ("depends on 3000000, which is replaced",))
    assert set(changes) == {"map-f3", "3000000", "report"}


def test_the_sweep_example_keeps_its_merge_task_and_reruns_it_when_a_draw_changes():
    desired = build(ROOT / "specs" / "sweep.yaml")
    merge = desired.tasks[-1]
    assert merge.id == "summary" and len(merge.depends_on) == 6 and merge.stage is None
    live = _converged(desired)
    changed = dataclasses.replace(desired.tasks[0], command_line="python3 -c 'print(0.5)'")
    desired = dataclasses.replace(desired, tasks=(changed, *desired.tasks[1:]))
    changes = _task_changes(diff(desired, live))
    assert changes["summary"] == (Action.REPLACE, ("depends on draw-100-1, which is replaced",))
    assert len(changes) == 2
