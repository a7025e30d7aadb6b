"""REST handlers for the account's applications and pool usage metrics.

Applications are packages uploaded through the management plane (Azure Resource Manager), which
the local service does not have: the account has none, as a new account has none. Usage metrics
are aggregated by the service in hourly intervals available hours later; the emulator keeps no
such history, so the listing is empty, as it is for a new account.
"""

from __future__ import annotations

from aiohttp import web

from . import errors
from .common import Ctx, paged


def list_applications(ctx: Ctx) -> web.Response:
    """GET /applications."""
    return paged(ctx, "applications", [])


def get_application(ctx: Ctx, application_id: str) -> web.Response:
    """GET /applications/{applicationId}: ApplicationNotFound (404)."""
    raise errors.not_found("Application")


def list_pool_usage_metrics(ctx: Ctx) -> web.Response:
    """GET /poolusagemetrics."""
    return paged(ctx, "poolusagemetrics", [])
