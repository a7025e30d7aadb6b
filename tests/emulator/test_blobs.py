"""Resource files and output files through Azurite, with SAS URLs as on Azure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from emulator_support import pool_options, unique, wait_job_done, wait_pool_ready


def test_resource_files_from_sas_urls_are_in_the_working_dir(client, job, container):
    container.blobs.upload_blob("inputs/a.txt", b"alpha")
    container.blobs.upload_blob("inputs/b.txt", b"beta")
    container.blobs.upload_blob("single.txt", b"one")
    client.create_task(
        job,
        bm.BatchTaskCreateOptions(
            id="rf",
            command_line="/bin/sh -c 'cat in/inputs/a.txt in/inputs/b.txt renamed.txt'",
            resource_files=[
                bm.ResourceFile(
                    storage_container_url=container.sas("rl"), blob_prefix="inputs/", file_path="in"
                ),
                bm.ResourceFile(http_url=container.blob_sas("single.txt"), file_path="renamed.txt"),
            ],
        ),
    )
    wait_job_done(client, job, 1)
    t = client.get_task(job, "rf")
    assert t.execution_info.result == "success", t.execution_info.failure_info
    assert b"".join(client.download_task_file(job, "rf", "stdout.txt")) == b"alphabetaone"


def test_resource_file_with_bad_sas_fails_the_task_before_it_runs(client, job, container):
    container.blobs.upload_blob("secret.txt", b"x")
    bad = container.blob_sas("secret.txt").replace("sig=", "sig=AAAA")
    client.create_task(
        job,
        bm.BatchTaskCreateOptions(
            id="badsas",
            command_line="/bin/true",
            resource_files=[bm.ResourceFile(http_url=bad, file_path="secret.txt")],
        ),
    )
    wait_job_done(client, job, 1)
    info = client.get_task(job, "badsas").execution_info
    assert info.result == "failure"
    assert info.exit_code is None
    assert info.failure_info.category == "usererror"
    assert info.failure_info.code == "BlobAccessDenied"
    assert "sig=" not in (info.failure_info.message or "")


def _output(container, pattern: str, condition: str, path: str | None = None) -> bm.OutputFile:
    return bm.OutputFile(
        file_pattern=pattern,
        destination=bm.OutputFileDestination(
            container=bm.OutputFileBlobContainerDestination(container_url=container.sas(), path=path)
        ),
        upload_options=bm.OutputFileUploadConfiguration(upload_condition=condition),
    )


def test_output_files_are_uploaded_only_on_their_condition(client, job, container):
    write = "echo result > out.txt; echo log > log.txt"
    for task_id, code in (("ok", 0), ("ko", 5)):
        client.create_task(
            job,
            bm.BatchTaskCreateOptions(
                id=task_id,
                command_line=f"/bin/sh -c '{write}; exit {code}'",
                output_files=[
                    _output(container, "out.txt", "tasksuccess", f"{task_id}/success.txt"),
                    _output(container, "out.txt", "taskfailure", f"{task_id}/failure.txt"),
                    _output(container, "*.txt", "taskcompletion", f"{task_id}/all"),
                ],
            ),
        )
    wait_job_done(client, job, 2)
    names = sorted(b.name for b in container.blobs.list_blobs())
    assert names == [
        "ko/all/log.txt",
        "ko/all/out.txt",
        "ko/failure.txt",
        "ok/all/log.txt",
        "ok/all/out.txt",
        "ok/success.txt",
    ]
    assert container.blobs.download_blob("ok/success.txt").readall() == b"result\n"
    assert client.get_task(job, "ko").execution_info.exit_code == 5


def test_service_logs_of_a_node_are_uploaded_to_the_container_given(client, container):
    """Nodes_UploadNodeLogs: the node's logs since startTime go under <pool>/<node>/<guid>/ of
    the container (here: its start task's output), through a write-only container SAS."""
    pool_id = unique("logs")
    start = bm.BatchStartTask(
        command_line="/bin/sh -c 'echo hello from the start task'", wait_for_success=True
    )
    client.create_pool(pool_options(pool_id, nodes=1, start_task=start))
    wait_pool_ready(client, pool_id, 1)
    node_id = next(iter(client.list_nodes(pool_id))).id
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    result = client.upload_node_logs(
        pool_id,
        node_id,
        bm.UploadBatchServiceLogsOptions(container_url=container.sas("cw"), start_time=since),
    )
    assert result.virtual_directory_name.startswith(f"{pool_id}/{node_id}/")
    names = sorted(b.name for b in container.blobs.list_blobs())
    assert names == [f"{result.virtual_directory_name}/startup/{n}" for n in ("stderr.txt", "stdout.txt")]
    assert result.number_of_files_uploaded == 2
    stdout = container.blobs.download_blob(names[1]).readall()
    assert stdout == b"hello from the start task\n"
    later = datetime.now(timezone.utc) + timedelta(hours=1)  # nothing logged since then
    none = client.upload_node_logs(
        pool_id,
        node_id,
        bm.UploadBatchServiceLogsOptions(container_url=container.sas("cw"), start_time=later),
    )
    assert none.number_of_files_uploaded == 0
    with pytest.raises(HttpResponseError) as info:  # no SAS: the store refuses the upload
        client.upload_node_logs(
            pool_id, node_id, bm.UploadBatchServiceLogsOptions(container_url=container.url, start_time=since)
        )
    assert (info.value.status_code, info.value.error.code) == (400, "InvalidPropertyValue")
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()
