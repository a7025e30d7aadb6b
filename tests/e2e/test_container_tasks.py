"""Containers end to end on the local target: the pool's container configuration and each task's
container settings reach the service as the API definition has them (a registry's password from
the environment, never printed), the local target says once that it runs the commands on this
host, and the preflight refuses a pool with containers on an image that cannot run them."""

from __future__ import annotations

import json

from support.workspace import Workspace

_POOL = """\
  containers:
    images: [python:3.12-slim]
    registries:
      - {server: myregistry.azurecr.io, username: puller, passwordEnv: TEST_REGISTRY_PASSWORD}
"""
_TASK = """\
    container: {image: "myregistry.azurecr.io/topn:1", options: "--rm", registry: myregistry.azurecr.io}
"""
_PASSWORD = "s3cret-registry-password"


def _with_containers(
    ws: Workspace, image: str = "{publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: '2404'}"
):
    text = ws.spec.read_text()
    text = text.replace(
        "image: {publisher: canonical, offer: ubuntu-24_04-lts, sku: server}\n", f"image: {image}\n"
    )
    text = text.replace("  startTask:\n", _POOL + "  startTask:\n", 1)
    task = '    resourceFiles: [{blob: "{{ item.ref }}"}]\n'  # the job's tasks, not the start task
    assert task in text
    text = text.replace(task, task + _TASK)
    ws.spec.write_text(text)


def test_container_tasks_are_sent_with_their_settings_and_run_on_the_host_locally(
    workspace: Workspace, batch_client
):
    _with_containers(workspace)
    env = {**workspace.env, "TEST_REGISTRY_PASSWORD": _PASSWORD}
    result = workspace.apply(env=env)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert said.count("the local target has no container runtime") == 1
    assert _PASSWORD not in said
    workspace.check_outputs()

    pool = batch_client.get_pool(f"{workspace.name}-pool")
    config = pool.virtual_machine_configuration.container_configuration
    assert (config.type, config.container_image_names) == ("dockerCompatible", ["python:3.12-slim"])
    (registry,) = config.container_registries
    assert (registry.registry_server, registry.username, registry.password) == (
        "myregistry.azurecr.io",
        "puller",
        None,  # the service never returns a password
    )
    task = batch_client.get_task(f"{workspace.name}-job", "topn-taskdata0")
    settings = task.container_settings
    assert (settings.image_name, settings.container_run_options) == ("myregistry.azurecr.io/topn:1", "--rm")
    assert settings.registry.registry_server == "myregistry.azurecr.io"

    plan = workspace.run("plan", "spec.yaml", "--detailed-exitcode", env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr  # converged
    workspace.spec.write_text(workspace.spec.read_text().replace("python:3.12-slim", "python:3.13-slim"))
    changes = json.loads(workspace.run("plan", "spec.yaml", "--json", env=env).stdout)["changes"]
    (pool_change,) = [c for c in changes if c["kind"] == "pool"]
    assert pool_change["action"] == "replace"
    assert pool_change["reasons"] == ["containers: changed (forces replacement)"]


def test_a_registry_password_missing_from_the_environment_stops_apply_before_anything_is_made(
    workspace: Workspace, blob_service
):
    _with_containers(workspace)
    env = {k: v for k, v in workspace.env.items() if k != "TEST_REGISTRY_PASSWORD"}
    result = workspace.apply(env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the environment variable TEST_REGISTRY_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr
    assert not [c for c in blob_service.list_containers() if c.name.startswith(workspace.name)]


def test_a_pool_with_containers_on_an_image_that_cannot_run_them_is_refused_by_the_preflight(
    workspace: Workspace, blob_service
):
    _with_containers(workspace, image="{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}")
    env = {**workspace.env, "TEST_REGISTRY_PASSWORD": _PASSWORD}
    plan = workspace.run("plan", "spec.yaml", env=env)
    said = " ".join(plan.stdout.split())
    assert "pool.containers: pool.image canonical/ubuntu-24_04-lts/server is not container capable" in said
    result = workspace.apply(env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert not [c for c in blob_service.list_containers() if c.name.startswith(workspace.name)]
