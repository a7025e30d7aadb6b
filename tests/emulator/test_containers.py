"""Containers: the service's container settings are taken and checked as the service checks them
at add; with no container runtime here, the command runs on this host (docs/emulator.md)."""

from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import unique, wait_for, wait_pool_ready
from support import bodies

REGISTRY = {"registryServer": "myregistry.azurecr.io", "username": "me", "password": "s3cret"}


def test_a_container_pool_and_task_are_taken_their_commands_run_here_and_no_password_is_kept(client):
    pool_id = unique("cpool")
    containers = {
        "type": "dockerCompatible",
        "containerImageNames": ["ubuntu"],
        "containerRegistries": [REGISTRY],
    }
    vm = {**bodies.UBUNTU_VM, "containerConfiguration": containers}
    client.create_pool(bodies.pool(pool_id, 1, virtualMachineConfiguration=vm))
    wait_pool_ready(client, pool_id, 1)
    job_id = unique("cjob")
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    settings = {"imageName": "ubuntu", "containerRunOptions": "--rm", "registry": REGISTRY}
    client.create_task(
        job_id, {"id": "c", "commandLine": "/bin/sh -c 'echo in'", "containerSettings": settings}
    )
    wait_for(lambda: client.get_task(job_id, "c").state == "completed", 30)
    task = client.get_task(job_id, "c")
    assert task.execution_info.exit_code == 0
    assert task.container_settings.image_name == "ubuntu"
    assert task.container_settings.registry.password is None  # x-ms-secret: never returned
    registries = client.get_pool(
        pool_id
    ).virtual_machine_configuration.container_configuration.container_registries
    assert registries[0].registry_server == "myregistry.azurecr.io" and registries[0].password is None
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        ({"containerRunOptions": "--rm"}, "MissingRequiredProperty"),  # imageName is required
        ({"imageName": "ubuntu", "workingDirectory": "elsewhere"}, "InvalidPropertyValue"),
        (
            {"imageName": "ubuntu", "containerHostBatchBindMounts": [{"source": "Home"}]},
            "InvalidPropertyValue",
        ),
    ],
)
def test_container_settings_the_service_refuses(client, job, settings, code):
    with pytest.raises(HttpResponseError) as info:
        client.create_task(
            job, {"id": unique("c"), "commandLine": "/bin/true", "containerSettings": settings}
        )
    assert (info.value.status_code, info.value.error.code) == (400, code)
