"""The HTTP front end: one aiohttp handler that authenticates, routes and answers like Batch.

Every request goes through the same steps, in the service's order: fault injection (if on),
body size, SharedKey authentication, api-version, routing, the operation; any expected failure
becomes the service's error JSON, and an unexpected one a 500 InternalServerError without a
Python trace (the trace goes to the log).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from . import (
    api_account,
    api_autoscale,
    api_files,
    api_jobs,
    api_node_admin,
    api_nodes,
    api_pools,
    api_schedules,
    api_tasks,
    auth,
    errors,
    management,
    tokens,
)
from .common import MAX_BODY, Ctx, json_response, standard_headers
from .faults import Faults
from .incidents import Incidents
from .record import Recorder
from .scheduler import Scheduler
from .store import Store
from .timing import Timing

log = logging.getLogger("batchspec.emulator")
access_log = logging.getLogger("batchspec.emulator.access")

# The api-versions of the current data-plane SDKs (azure-batch 15.x sends 2025-06-01; the
# 14.x line, az batch and the .NET/Java SDKs send the dotted versions; the API definition and its
# examples name 2025-06-01.21.0).
API_VERSIONS = frozenset(
    {
        "2025-06-01",
        "2025-06-01.21.0",
        "2024-07-01.20.0",
        "2024-02-01.19.0",
        "2023-11-01.18.0",
        "2023-05-01.17.0",
        "2022-10-01.16.0",
        "2022-01-01.15.0",
    }
)

_SEG = r"(?P<{}>[^/]+)"


def _route(pattern: str) -> re.Pattern:
    out = re.sub(r"\{(\w+)\}", lambda m: _SEG.format(m.group(1)), pattern)
    out = out.replace(_SEG.format("path"), r"(?P<path>.+)")
    return re.compile(f"^{out}/?$", re.IGNORECASE)


_TABLE: list[tuple[str, dict[str, Callable]]] = [
    ("/supportedimages", {"GET": api_pools.list_supported_images}),
    ("/nodecounts", {"GET": api_nodes.list_pool_node_counts}),
    ("/pools", {"GET": api_pools.list_pools, "POST": api_pools.create_pool}),
    (
        "/pools/{pool_id}",
        {
            "GET": api_pools.get_pool,
            "HEAD": api_pools.pool_exists,
            "DELETE": api_pools.delete_pool,
            "PATCH": api_pools.patch_pool,
        },
    ),
    ("/pools/{pool_id}/resize", {"POST": api_pools.resize_pool}),
    ("/pools/{pool_id}/stopresize", {"POST": api_pools.stop_resize}),
    ("/pools/{pool_id}/updateproperties", {"POST": api_pools.replace_pool_properties}),
    ("/pools/{pool_id}/removenodes", {"POST": api_nodes.remove_nodes}),
    ("/pools/{pool_id}/enableautoscale", {"POST": api_autoscale.enable_auto_scale}),
    ("/pools/{pool_id}/disableautoscale", {"POST": api_autoscale.disable_auto_scale}),
    ("/pools/{pool_id}/evaluateautoscale", {"POST": api_autoscale.evaluate_auto_scale}),
    ("/pools/{pool_id}/nodes", {"GET": api_nodes.list_nodes}),
    ("/pools/{pool_id}/nodes/{node_id}", {"GET": api_nodes.get_node}),
    ("/pools/{pool_id}/nodes/{node_id}/reboot", {"POST": api_nodes.reboot_node}),
    ("/pools/{pool_id}/nodes/{node_id}/reimage", {"POST": api_nodes.reimage_node}),
    ("/pools/{pool_id}/nodes/{node_id}/disablescheduling", {"POST": api_nodes.disable_scheduling}),
    ("/pools/{pool_id}/nodes/{node_id}/enablescheduling", {"POST": api_nodes.enable_scheduling}),
    ("/pools/{pool_id}/nodes/{node_id}/deallocate", {"POST": api_nodes.deallocate_node}),
    ("/pools/{pool_id}/nodes/{node_id}/start", {"POST": api_nodes.start_node}),
    ("/pools/{pool_id}/nodes/{node_id}/users", {"POST": api_node_admin.create_node_user}),
    (
        "/pools/{pool_id}/nodes/{node_id}/users/{user_name}",
        {"PUT": api_node_admin.replace_node_user, "DELETE": api_node_admin.delete_node_user},
    ),
    ("/pools/{pool_id}/nodes/{node_id}/remoteloginsettings", {"GET": api_node_admin.remote_login_settings}),
    ("/pools/{pool_id}/nodes/{node_id}/extensions", {"GET": api_node_admin.list_node_extensions}),
    (
        "/pools/{pool_id}/nodes/{node_id}/extensions/{extension_name}",
        {"GET": api_node_admin.get_node_extension},
    ),
    ("/pools/{pool_id}/nodes/{node_id}/uploadbatchservicelogs", {"POST": api_node_admin.upload_service_logs}),
    ("/pools/{pool_id}/nodes/{node_id}/files", {"GET": api_files.list_node_files}),
    (
        "/pools/{pool_id}/nodes/{node_id}/files/{path}",
        {
            "GET": api_files.get_node_file,
            "HEAD": api_files.node_file_properties,
            "DELETE": api_files.delete_node_file,
        },
    ),
    ("/jobs", {"GET": api_jobs.list_jobs, "POST": api_jobs.create_job}),
    (
        "/jobs/{job_id}",
        {
            "GET": api_jobs.get_job,
            "PATCH": api_jobs.update_job,
            "PUT": api_jobs.replace_job,
            "DELETE": api_jobs.delete_job,
        },
    ),
    ("/jobs/{job_id}/terminate", {"POST": api_jobs.terminate_job}),
    ("/jobs/{job_id}/disable", {"POST": api_jobs.disable_job}),
    ("/jobs/{job_id}/enable", {"POST": api_jobs.enable_job}),
    ("/jobs/{job_id}/taskcounts", {"GET": api_jobs.task_counts}),
    ("/jobs/{job_id}/jobpreparationandreleasetaskstatus", {"GET": api_jobs.list_prep_release_status}),
    ("/jobs/{job_id}/tasks", {"GET": api_tasks.list_tasks, "POST": api_tasks.create_task}),
    ("/jobs/{job_id}/addtaskcollection", {"POST": api_tasks.add_task_collection}),
    (
        "/jobs/{job_id}/tasks/{task_id}",
        {"GET": api_tasks.get_task, "PUT": api_tasks.replace_task, "DELETE": api_tasks.delete_task},
    ),
    ("/jobs/{job_id}/tasks/{task_id}/terminate", {"POST": api_tasks.terminate_task}),
    ("/jobs/{job_id}/tasks/{task_id}/reactivate", {"POST": api_tasks.reactivate_task}),
    ("/jobs/{job_id}/tasks/{task_id}/subtasksinfo", {"GET": api_tasks.list_subtasks}),
    ("/jobs/{job_id}/tasks/{task_id}/files", {"GET": api_files.list_task_files}),
    (
        "/jobs/{job_id}/tasks/{task_id}/files/{path}",
        {
            "GET": api_files.get_task_file,
            "HEAD": api_files.task_file_properties,
            "DELETE": api_files.delete_task_file,
        },
    ),
    ("/jobschedules", {"GET": api_schedules.list_schedules, "POST": api_schedules.create_schedule}),
    (
        "/jobschedules/{schedule_id}",
        {
            "GET": api_schedules.get_schedule,
            "HEAD": api_schedules.schedule_exists,
            "PATCH": api_schedules.update_schedule,
            "PUT": api_schedules.replace_schedule,
            "DELETE": api_schedules.delete_schedule,
        },
    ),
    ("/jobschedules/{schedule_id}/disable", {"POST": api_schedules.disable_schedule}),
    ("/jobschedules/{schedule_id}/enable", {"POST": api_schedules.enable_schedule}),
    ("/jobschedules/{schedule_id}/terminate", {"POST": api_schedules.terminate_schedule}),
    ("/jobschedules/{schedule_id}/jobs", {"GET": api_schedules.list_schedule_jobs}),
    ("/applications", {"GET": api_account.list_applications}),
    ("/applications/{application_id}", {"GET": api_account.get_application}),
    ("/poolusagemetrics", {"GET": api_account.list_pool_usage_metrics}),
]
ROUTES = [(_route(p), methods) for p, methods in _TABLE]


def resolve(method: str, raw_path: str) -> tuple[Callable, dict[str, str]]:
    """The handler and decoded path parameters for a request, or InvalidUri / verb errors."""
    for rx, methods in ROUTES:
        m = rx.match(raw_path)
        if not m:
            continue
        handler = methods.get(method)
        if handler is None:
            raise errors.BatchServiceError(
                405,
                "UnsupportedHttpVerb",
                f"The resource doesn't support the specified HTTP verb {method}.",
            )
        params = {k: unquote(v) for k, v in m.groupdict().items() if k != "op"}
        return handler, params
    raise errors.BatchServiceError(
        400, "InvalidUri", "The requested URI does not represent any resource on the server."
    )


@dataclass
class Settings:
    """What the command line configures."""

    data_dir: Path
    account_name: str
    account_key: str
    faults: Faults
    timing: Timing = Timing()
    record: Path | None = None  # a folder for every answer (record.py)
    token_key: str | None = None  # PEM public key bearer tokens must be signed with (tokens.py)
    incidents: Incidents = Incidents()  # what goes wrong in every pool (incidents.py)
    quotas: management.Quotas = management.Quotas()  # the account's, as Resource Manager gives them


class Emulator:
    """The service: store + scheduler + HTTP app."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = Store(settings.data_dir)
        self.sched: Scheduler | None = None
        self.account_url = ""
        self.recorder = Recorder(settings.record) if settings.record else None
        self.app = web.Application(client_max_size=MAX_BODY * 8)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def start(self, account_url: str) -> None:
        """Recover state and start scheduling."""
        self.account_url = account_url
        self.sched = Scheduler(
            self.store,
            self.settings.data_dir,
            self.settings.account_name,
            account_url,
            self.settings.timing,
            self.settings.incidents,
        )
        await self.sched.start()

    async def stop(self) -> None:
        """Kill running tasks and close the database."""
        if self.sched is not None:
            await self.sched.stop()
        from . import transfer  # the agent's shared HTTP session for blob transfers

        close = getattr(transfer, "close_session", None)
        if close is not None:
            await close()
        self.store.close()
        if self.recorder is not None:
            self.recorder.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request (see the module docstring for the steps)."""
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        base_url = f"{request.scheme}://{request.host}"
        response = await self._answer(request, request_id, base_url)
        if not response.prepared:  # a streamed file sent its headers already (api_files)
            response.headers.update(standard_headers(request, request_id))
        if self.recorder is not None:
            self.recorder.write(request, response)
        access_log.info(
            "%s %s %d %.1fms",
            request.method,
            request.rel_url.raw_path,
            response.status,
            (time.perf_counter() - started) * 1000,
        )
        return response

    async def _answer(self, request: web.Request, request_id: str, base_url: str) -> web.StreamResponse:
        faults = self.settings.faults
        try:
            if faults.enabled:
                await faults.delay()
                if faults.should_drop():
                    if request.transport is not None:
                        request.transport.abort()
                    raise errors.BatchServiceError(503, "ServerBusy", "connection dropped")
                if faults.should_503():
                    raise errors.BatchServiceError(
                        503,
                        "ServerBusy",
                        "The server is currently unable to receive requests. Please retry your request.",
                    )
            try:
                raw_body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise errors.BatchServiceError(
                    413,
                    "RequestBodyTooLarge",
                    "The request body is too large and exceeds the maximum permissible limit.",
                ) from None
            raw_path = request.rel_url.raw_path
            raw_query = request.rel_url.raw_query_string
            authorization = request.headers.get("Authorization", "")
            arm = management.is_management(raw_path)  # the stand-in for Resource Manager
            if authorization[:7].lower() == "bearer ":
                tokens.verify(
                    authorization,
                    secure=request.secure,
                    public_key=self.settings.token_key,
                    audiences=management.AUDIENCES if arm else tokens.AUDIENCES,
                )
            else:
                auth.verify(
                    request.method,
                    request.headers,
                    raw_path,
                    raw_query,
                    self.settings.account_name,
                    self.settings.account_key,
                )
            query = Ctx.parse_query(raw_query)
            if arm:
                return management.answer(
                    request.method,
                    raw_path,
                    query,
                    self.settings.account_name,
                    self.account_url,
                    self.settings.quotas,
                )
            version = query.get("api-version")
            if not version:
                raise errors.BatchServiceError(
                    400,
                    "MissingRequiredQueryParameter",
                    "A query parameter that's mandatory for this request is not specified.",
                    [("QueryParameterName", "api-version")],
                )
            if version not in API_VERSIONS:
                raise errors.invalid_query(
                    "api-version", version, "The specified api-version is not supported."
                )
            handler, params = resolve(request.method, raw_path)
            if self.sched is None:  # the port is open a moment before recovery is done
                raise errors.BatchServiceError(
                    503, "ServerBusy", "The service is starting. Please retry your request."
                )
            ctx = Ctx(request, self.store, self.sched, base_url, request_id, query, raw_body)
            result = handler(ctx, **params)
            if inspect.isawaitable(result):
                result = await result
            return result
        except errors.BatchServiceError as exc:
            if management.is_management(request.rel_url.raw_path):
                return management.management_error(exc)
            if request.method == "HEAD":
                return web.Response(status=exc.status, headers=exc.headers)
            return json_response(exc.status, exc.body(base_url, request_id), exc.headers)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("internal error on %s %s", request.method, request.rel_url)
            return json_response(
                500,
                errors.error_body(
                    base_url,
                    "InternalServerError",
                    "The server encountered an internal error. Please retry the request.",
                    request_id,
                ),
            )
