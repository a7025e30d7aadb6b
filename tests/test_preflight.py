"""The plan's preflight of the pool's image (plan/preflight.py), on hand-built live states."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from batchspec.model import LiveState
from batchspec.plan.preflight import image
from batchspec.plan.records import Action, Change
from batchspec.spec.build import build
from helpers import ROOT

NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)
CREATE = Change("pool", "topn-pool", Action.CREATE)


@pytest.fixture(scope="module")
def desired():
    return build(ROOT / "specs" / "topn.yaml")


def _live(**image) -> LiveState:
    return LiveState(containers={}, blobs={}, pool=None, job=None, tasks=[], **image)


@pytest.mark.parametrize(
    ("end_of_life", "pool", "level", "says"),
    [
        ("2025-04-23T00:00:00Z", CREATE, "error", "ended on 2025-04-23: the service creates no pool of it"),
        ("2025-04-23T00:00:00Z", None, "warning", "the pool keeps running, but cannot be made again"),
        ("2027-01-12T00:00:00Z", CREATE, "warning", "ends on 2027-01-12, in 38 days"),
    ],
)
def test_batchs_end_of_support_for_the_image_is_told_before_anything_is_made(
    desired, end_of_life, pool, level, says
):
    (check,) = image(desired, _live(image_listed=True, image_end_of_life=end_of_life), pool, NOW)
    assert check.level == level and says in check.message


def test_an_image_far_from_its_end_or_without_one_passes(desired):
    assert (
        image(desired, _live(image_listed=True, image_end_of_life="2028-01-01T00:00:00Z"), CREATE, NOW) == []
    )
    assert image(desired, _live(image_listed=True), CREATE, NOW) == []


def test_an_image_the_account_does_not_list_is_an_error_unless_the_agent_is_given(desired):
    (check,) = image(desired, _live(image_listed=False), CREATE, NOW)
    assert check.level == "error" and "not among the account's supported images" in check.message
    given = dataclasses.replace(
        desired, pool=dataclasses.replace(desired.pool, node_agent_sku_id="batch.node.x")
    )
    assert image(given, _live(image_listed=False), CREATE, NOW) == []
