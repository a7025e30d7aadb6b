"""The graph of a job's named stages: the order they are built and submitted in, what each
depends on (directly or not), and the cycles and unknown names that make a spec invalid."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

# Default task ids: a stage's position times this, plus the item's index, so that a later stage
# depends on the whole stage as one id range however many tasks it has.
ID_BLOCK = 1_000_000


@dataclass(frozen=True)
class Problem:
    message: str
    index: int  # the stage it is found at (its position in job.tasks)
    field: str  # "name" or "dependsOn"


@dataclass(frozen=True)
class Graph:
    order: tuple[int, ...]  # positions in job.tasks, each after the stages it depends on
    upstream: dict[str, tuple[str, ...]]  # each stage's ancestors, nearest first


def graph(stages: list[dict[str, Any]]) -> Graph | list[Problem]:
    """The stages in an order that puts each after its dependencies (the spec's own order where
    it allows), or every problem found."""
    problems: list[Problem] = []
    position: dict[str, int] = {}
    for i, stage in enumerate(stages):
        name = stage["name"]
        if name.lower() in position:
            problems.append(
                Problem(
                    f"stage {name!r} is defined twice (also job.tasks[{position[name.lower()]}])", i, "name"
                )
            )
        position.setdefault(name.lower(), i)
    names = [s["name"] for s in stages]
    for i, stage in enumerate(stages):
        for dep in stage.get("dependsOn") or []:
            if dep.lower() not in position:
                close = difflib.get_close_matches(dep, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (stages: {', '.join(names)})"
                problems.append(Problem(f"dependsOn names no stage {dep!r}{hint}", i, "dependsOn"))
            elif position[dep.lower()] == i:
                problems.append(Problem(f"stage {stage['name']!r} depends on itself", i, "dependsOn"))
    deps = {
        i: [position[d.lower()] for d in s.get("dependsOn") or [] if position.get(d.lower(), i) != i]
        for i, s in enumerate(stages)
    }
    order: list[int] = []
    state: dict[int, str] = {}

    def visit(i: int, trail: list[int]) -> list[int] | None:
        """Depth first; returns a cycle's positions if one is met."""
        if state.get(i) == "done":
            return None
        if state.get(i) == "open":
            return [*trail[trail.index(i) :], i]
        state[i] = "open"
        for d in deps[i]:
            cycle = visit(d, [*trail, i])
            if cycle:
                return cycle
        state[i] = "done"
        order.append(i)
        return None

    for i in range(len(stages)):
        cycle = visit(i, [])
        if cycle:
            path = " -> ".join(stages[j]["name"] for j in cycle)
            problems.append(
                Problem(f"the stages depend on each other in a cycle: {path}", cycle[0], "dependsOn")
            )
            break
    if problems:
        return problems
    upstream = {}
    for i in order:
        seen: list[str] = []
        for d in deps[i]:
            for name in (stages[d]["name"], *upstream[stages[d]["name"]]):
                if name not in seen:
                    seen.append(name)
        upstream[stages[i]["name"]] = tuple(seen)
    return Graph(tuple(order), upstream)
