"""REST handlers for what an administrator does on a node: user accounts, remote login
settings, the VM extensions it runs, and uploading its service logs for support.

The emulator's nodes are directories on this host: a user account is recorded (without its
password, which the service never returns either) but no login is possible; the remote login
settings name this host.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from aiohttp import web

from . import errors, model, transfer
from .api_nodes import USERS, get_node_doc, idle_or_running
from .api_pools import get_pool_doc
from .common import Ctx, empty, entity, json_response, paged
from .store import key

_REMOTE_LOGIN_PORT = 50000  # the first port of the service's inbound NAT pool for SSH/RDP


def _user(ctx: Ctx, pool_id: str, node_id: str, name: str) -> tuple[dict, dict]:
    node = idle_or_running(ctx, pool_id, node_id)
    users = node.setdefault(USERS, {})
    if name.lower() not in users:
        raise errors.not_found("Node user")
    return node, users


def _account(name: str, body: dict) -> dict:
    for prop in ("expiryTime", "sshPublicKey"):
        model.check_type(body, prop, str)
    model.check_type(body, "isAdmin", bool)
    kept = {k: body[k] for k in ("isAdmin", "expiryTime", "sshPublicKey") if body.get(k) is not None}
    return {"name": name, **kept}


def create_node_user(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """POST .../users: 201; only on an idle or running node (Nodes_CreateNodeUser)."""
    node = idle_or_running(ctx, pool_id, node_id)
    body = ctx.body()
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise errors.missing_property("name")
    users = node.setdefault(USERS, {})
    if name.lower() in users:
        raise errors.conflict("NodeUserExists", "The specified node user already exists.")
    users[name.lower()] = _account(name, body)
    ctx.store.put_node(key(pool_id), node)
    url = f"{ctx.base_url}/pools/{pool_id}/nodes/{node_id}/users/{name}"
    return web.Response(status=201, headers={"Location": url, "DataServiceId": url})


def replace_node_user(ctx: Ctx, pool_id: str, node_id: str, user_name: str) -> web.Response:
    """PUT .../users/{userName}: 200; every updatable property is replaced ("if the expiryTime
    element is not specified, the current value is replaced with the default value")."""
    node, users = _user(ctx, pool_id, node_id, user_name)
    old = users[user_name.lower()]
    body = {k: v for k, v in ctx.body().items() if k != "isAdmin"}  # not updatable
    users[user_name.lower()] = {
        **_account(old["name"], body),
        **{k: old[k] for k in ("isAdmin",) if k in old},
    }
    ctx.store.put_node(key(pool_id), node)
    return empty(200)


def delete_node_user(ctx: Ctx, pool_id: str, node_id: str, user_name: str) -> web.Response:
    """DELETE .../users/{userName}: 200."""
    node, users = _user(ctx, pool_id, node_id, user_name)
    del users[user_name.lower()]
    ctx.store.put_node(key(pool_id), node)
    return empty(200)


def remote_login_settings(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """GET .../remoteloginsettings: this host, and a port per node as the service's NAT pool
    hands them out."""
    get_node_doc(ctx, pool_id, node_id)
    index = sorted(ctx.store.nodes.get(key(pool_id), {})).index(key(node_id))
    return json_response(
        200,
        {"remoteLoginIPAddress": "127.0.0.1", "remoteLoginPort": _REMOTE_LOGIN_PORT + index},
    )


def _extensions(ctx: Ctx, pool_id: str, node_id: str) -> list[dict]:
    node = get_node_doc(ctx, pool_id, node_id)
    pool = get_pool_doc(ctx, pool_id)
    declared = (pool.get("virtualMachineConfiguration") or {}).get("extensions") or []
    when = node.get("lastBootTime") or model.now_iso()
    return [
        {
            "provisioningState": "Succeeded",
            # Protected settings are write-only, as for any Azure VM extension.
            "vmExtension": {k: v for k, v in ext.items() if k != "protectedSettings"},
            "instanceView": {
                "name": ext.get("name"),
                "statuses": [
                    {
                        "code": "ProvisioningState/succeeded",
                        "level": "Info",
                        "displayStatus": "Provisioning succeeded",
                        "message": "The emulator does not run extensions: recorded as provisioned.",
                        "time": when,
                    }
                ],
            },
        }
        for ext in declared
        if isinstance(ext, dict)
    ]


def list_node_extensions(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """GET .../extensions: the pool's VM extensions, as the node reports them."""
    return paged(ctx, "extensions", _extensions(ctx, pool_id, node_id))


def get_node_extension(ctx: Ctx, pool_id: str, node_id: str, extension_name: str) -> web.Response:
    """GET .../extensions/{extensionName}."""
    for ext in _extensions(ctx, pool_id, node_id):
        if (ext["vmExtension"].get("name") or "").lower() == extension_name.lower():
            return entity(ctx, ext, "extensions")
    raise errors.not_found("Extension")


async def upload_service_logs(ctx: Ctx, pool_id: str, node_id: str) -> web.Response:
    """POST .../uploadbatchservicelogs: the node's log files touched since `startTime` go to
    `containerUrl` under `<pool>/<node>/<guid>/`. Here the node's logs are its start task's
    stdout and stderr and the output-file upload journals of its tasks."""
    node = get_node_doc(ctx, pool_id, node_id)
    body = ctx.body()
    container_url = body.get("containerUrl")
    if not isinstance(container_url, str) or not container_url:
        raise errors.missing_property("containerUrl")
    since = _time(body, "startTime", required=True)
    until = _time(body, "endTime")
    root = ctx.sched.nodes.context(key(pool_id), key(node["id"])).root
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and _is_log(p, root)):
        touched = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        if touched >= since and (until is None or touched <= until):
            files.append(path)
    directory = f"{pool_id}/{node['id']}/{uuid.uuid4()}"
    try:
        named = [(p, f"{directory}/{p.relative_to(root)}") for p in files]
        await transfer.upload_files(named, container_url)
    except transfer.TransferError as exc:
        raise errors.invalid_value("containerUrl", transfer.redact(container_url), exc.message) from None
    return json_response(200, {"virtualDirectoryName": directory, "numberOfFilesUploaded": len(files)})


def _is_log(path, root) -> bool:
    parts = path.relative_to(root).parts
    start_task_output = parts[0] == "startup" and parts[-1] in ("stdout.txt", "stderr.txt")
    return start_task_output or parts[-1].startswith("fileupload")


def _time(body: dict, name: str, *, required: bool = False) -> datetime | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.missing_property(name)
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise errors.invalid_value(name, value) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
