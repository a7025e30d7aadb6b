"""REST handlers for pool autoscale: enable, disable, evaluate; and the create-time checks."""

from __future__ import annotations

from aiohttp import web

from . import autoscale, errors
from .api_pools import get_pool_doc
from .common import Ctx, check_conditions, empty, json_response
from .scaling import DEFAULT_INTERVAL, interval_seconds
from .store import key


def check_formula(body: dict) -> None:
    """autoScaleFormula must parse; autoScaleEvaluationInterval must be 5 min - 168 h."""
    formula = body.get("autoScaleFormula")
    if not isinstance(formula, str) or not formula.strip():
        raise errors.missing_property("autoScaleFormula")
    try:
        autoscale.parse(formula)
    except autoscale.FormulaError as exc:
        raise errors.invalid_value("autoScaleFormula", formula, str(exc)) from None
    interval = body.get("autoScaleEvaluationInterval")
    if interval is not None and (not isinstance(interval, str) or interval_seconds(interval) is None):
        raise errors.invalid_value("autoScaleEvaluationInterval", interval, "between 5 minutes and 168 hours")


def check_create(body: dict) -> dict:
    """The autoscale part of a pool create body, validated: the fields to store."""
    if not body.get("enableAutoScale"):
        return {"enableAutoScale": False}
    for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
        if body.get(name):
            raise errors.invalid_value(name, body[name], "not allowed with enableAutoScale")
    check_formula(body)
    return {
        "enableAutoScale": True,
        "autoScaleFormula": body["autoScaleFormula"],
        "autoScaleEvaluationInterval": body.get("autoScaleEvaluationInterval") or DEFAULT_INTERVAL,
    }


def enable_auto_scale(ctx: Ctx, pool_id: str) -> web.Response:
    """POST /pools/{poolId}/enableautoscale: the formula runs now and on its interval (200)."""
    pool = get_pool_doc(ctx, pool_id, allow_deleting=False)
    body = ctx.body()
    check_conditions(ctx, pool)
    merged = {
        "autoScaleFormula": body.get("autoScaleFormula") or pool.get("autoScaleFormula"),
        "autoScaleEvaluationInterval": body.get("autoScaleEvaluationInterval")
        or pool.get("autoScaleEvaluationInterval"),
    }
    check_formula(merged)
    if pool.get("allocationState") != "steady" and not pool.get("enableAutoScale"):
        raise errors.conflict("PoolNotSteady", "The pool is resizing; wait until it is steady.")
    pool["enableAutoScale"] = True
    pool["autoScaleFormula"] = merged["autoScaleFormula"]
    pool["autoScaleEvaluationInterval"] = merged["autoScaleEvaluationInterval"] or DEFAULT_INTERVAL
    ctx.sched.autoscaler.enable(key(pool_id))
    return empty(200, pool, ctx, f"/pools/{pool_id}/enableautoscale")


def disable_auto_scale(ctx: Ctx, pool_id: str) -> web.Response:
    """POST /pools/{poolId}/disableautoscale: the pool keeps its current targets (200)."""
    pool = get_pool_doc(ctx, pool_id, allow_deleting=False)
    pool["enableAutoScale"] = False
    for name in ("autoScaleFormula", "autoScaleEvaluationInterval", "autoScaleRun"):
        pool.pop(name, None)
    ctx.sched.autoscaler.disable(key(pool_id))
    ctx.store.put_pool(pool)
    return empty(200, pool, ctx, f"/pools/{pool_id}/disableautoscale")


def evaluate_auto_scale(ctx: Ctx, pool_id: str) -> web.Response:
    """POST /pools/{poolId}/evaluateautoscale: run a formula without applying it."""
    pool = get_pool_doc(ctx, pool_id, allow_deleting=False)
    body = ctx.body()
    formula = body.get("autoScaleFormula")
    if not isinstance(formula, str) or not formula.strip():
        raise errors.missing_property("autoScaleFormula")
    if not pool.get("enableAutoScale"):
        raise errors.conflict(
            "AutoScalingNotEnabled", "Autoscale must be enabled on the pool to evaluate a formula."
        )
    doc, _ = ctx.sched.autoscaler.run(key(pool_id), formula)
    entity_set = "Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun"
    return json_response(200, {"odata.metadata": f"{ctx.base_url}/$metadata#{entity_set}", **doc})
