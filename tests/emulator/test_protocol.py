"""Authentication, api-version, error documents and response headers, as the SDK sees them."""

from __future__ import annotations

import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.rest import HttpRequest

from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME
from emulator_support import pool_options, unique
from support import bodies

API = "2025-06-01"


def test_wrong_key_is_rejected_with_403_authentication_failed(server):
    other_key = DEV_ACCOUNT_KEY[:-6] + "AAAA=="
    bad = BatchClient(server.url, AzureNamedKeyCredential(DEV_ACCOUNT_NAME, other_key))
    with pytest.raises(HttpResponseError) as info:
        bad.get_job("anything")
    assert info.value.status_code == 403
    assert info.value.error.code == "AuthenticationFailed"


def test_wrong_account_name_is_rejected_with_403(server):
    bad = BatchClient(server.url, AzureNamedKeyCredential("someoneelse", DEV_ACCOUNT_KEY))
    with pytest.raises(HttpResponseError) as info:
        list(bad.list_pools())
    assert info.value.status_code == 403


def test_request_without_authorization_is_rejected_with_401(server):
    anonymous = BatchClient(
        server.url,
        AzureNamedKeyCredential(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY),
        authentication_policy=SansIOHTTPPolicy(),  # signs nothing
    )
    with pytest.raises(HttpResponseError) as info:
        list(anonymous.list_jobs())
    assert info.value.status_code == 401
    assert info.value.error.code == "MissingRequiredHeader"


def test_unknown_api_version_is_refused(server):
    old = server.client(api_version="2001-01-01")
    with pytest.raises(HttpResponseError) as info:
        list(old.list_pools())
    assert info.value.status_code == 400
    assert info.value.error.code == "InvalidQueryParameterValue"


@pytest.mark.parametrize("version", ["2025-06-01.21.0", "2024-07-01.20.0"])
def test_the_definitions_and_older_dotted_api_versions_are_accepted(server, version):
    assert len(list(server.client(api_version=version).list_supported_images())) >= 3


def _raw(client, method: str, path: str, **kwargs):
    """Send a hand-built request through the SDK pipeline (signing, error policy)."""
    try:
        return client.send_request(HttpRequest(method, f"{path}?api-version={API}", **kwargs))
    except HttpResponseError as exc:  # the SDK's error policy raises for every non-2xx
        return exc.response


def test_malformed_json_body_gives_invalid_request_body_not_a_traceback(client):
    response = _raw(
        client,
        "POST",
        "/jobs",
        content=b"{not json",
        headers={"Content-Type": "application/json; odata=minimalmetadata"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidRequestBody"
    assert body["message"]["lang"] == "en-US"
    assert "Traceback" not in response.text()


def test_body_over_one_megabyte_is_request_body_too_large(client):
    big = b'{"id": "x", "displayName": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    response = _raw(client, "POST", "/jobs", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "RequestBodyTooLarge"


def test_missing_required_property_is_named_in_the_error(client):
    with pytest.raises(HttpResponseError) as info:
        client.create_job(bm.BatchJobCreateOptions(id=unique("j"), pool_info=bm.BatchPoolInfo()))
    assert info.value.status_code == 400
    assert info.value.error.code == "MissingRequiredProperty"
    assert any(d.message == "poolInfo.poolId" for d in info.value.error.details)


def test_invalid_id_is_invalid_property_value(client):
    with pytest.raises(HttpResponseError) as info:
        client.create_pool(pool_options("bad id with spaces"))
    assert info.value.error.code == "InvalidPropertyValue"


def test_get_missing_job_is_job_not_found(client):
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_job(unique("missing"))
    assert info.value.error.code == "JobNotFound"


def test_get_missing_pool_is_pool_not_found(client):
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_pool(unique("missing"))
    assert info.value.error.code == "PoolNotFound"


def test_creating_an_existing_pool_is_pool_exists_case_insensitively(client):
    pool_id = unique("Dup")
    client.create_pool(pool_options(pool_id, nodes=0))
    with pytest.raises(ResourceExistsError) as info:
        client.create_pool(pool_options(pool_id.lower(), nodes=0))
    assert info.value.error.code == "PoolExists"
    assert client.get_pool(pool_id.upper()).id == pool_id


def test_responses_carry_request_id_etag_and_echo_client_request_id_only_when_asked(client, job):
    def get(headers):
        return client.send_request(HttpRequest("GET", f"/jobs/{job}?api-version={API}", headers=headers))

    assert "client-request-id" not in get({"client-request-id": "abc-123"}).headers
    response = get({"client-request-id": "abc-123", "return-client-request-id": "true"})
    assert response.status_code == 200
    assert response.headers["client-request-id"] == "abc-123"
    assert response.headers["request-id"]
    assert response.headers["ETag"].startswith("0x")
    assert response.headers["Last-Modified"].endswith("GMT")
    assert response.json()["odata.metadata"].endswith("$metadata#jobs/@Element")


def test_create_returns_201_with_location(client):
    job_payload = {"id": unique("j"), "poolInfo": {"poolId": "somepool"}}
    response = client.send_request(HttpRequest("POST", f"/jobs?api-version={API}", json=job_payload))
    assert response.status_code == 201
    assert response.headers["Location"].endswith(f"/jobs/{job_payload['id']}")
    assert response.headers["DataServiceId"] == response.headers["Location"]


def test_if_match_with_a_stale_etag_is_condition_not_met(client, job):
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    etag = client.get_job(job).etag
    client.update_job(
        job,
        bm.BatchJobUpdateOptions(priority=5),
        etag=etag,
        match_condition=MatchConditions.IfNotModified,
    )
    with pytest.raises(ResourceModifiedError) as info:
        client.update_job(
            job,
            bm.BatchJobUpdateOptions(priority=6),
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )
    assert info.value.status_code == 412
    assert info.value.error.code == "ConditionNotMet"
    assert client.get_job(job).priority == 5


def test_reads_honour_if_match_and_if_none_match_on_get_and_head(client):
    """The definition gives Pools_GetPool and Pools_PoolExists If-Match and If-None-Match: a
    stale If-Match is 412 ConditionNotMet, a current If-None-Match 304 Not Modified."""
    pool_id = unique("cond")
    client.create_pool(pool_options(pool_id, nodes=0))
    etag = client.get_pool(pool_id).etag
    for method in ("GET", "HEAD"):

        def status(method=method, **headers) -> int:
            url = f"/pools/{pool_id}?api-version={API}"
            try:
                return client.send_request(HttpRequest(method, url, headers=headers)).status_code
            except HttpResponseError as exc:  # the SDK's send_request raises for some statuses
                return exc.status_code

        assert status(**{"If-Match": etag}) == 200, method
        assert status(**{"If-Match": "0x8D0000000000000"}) == 412, method
        assert status(**{"If-None-Match": etag}) == 304, method
        assert status(**{"If-None-Match": "0x8D0000000000000"}) == 200, method
    client.begin_delete_pool(pool_id, polling_interval=0.05).result()


def test_a_path_that_is_no_operation_is_invalid_uri(client):
    for method, path in (("POST", "/pools/p/nosuchoperation"), ("GET", "/jobs/j/nosuchlisting")):
        try:
            status = client.send_request(HttpRequest(method, f"{path}?api-version={API}")).status_code
        except HttpResponseError as exc:
            status, code = exc.status_code, exc.error.code
            assert code == "InvalidUri"
        assert status == 400, path


def test_supported_images_include_ubuntu_24_04_and_22_04_and_debian(client):
    images = {
        (i.image_reference.publisher, i.image_reference.offer, i.image_reference.sku): i
        for i in client.list_supported_images()
    }
    assert images[("canonical", "ubuntu-24_04-lts", "server")].node_agent_sku_id == "batch.node.ubuntu 24.04"
    skus = {i.node_agent_sku_id for i in images.values()}
    assert "batch.node.ubuntu 22.04" in skus
    assert any(s.startswith("batch.node.debian") for s in skus)


def test_supported_images_carry_the_end_of_life_dates_of_batchs_retirement_notices(client):
    """ImageInformation.batchSupportEndOfLife, as github.com/Azure/Batch's retirement notices
    date it: per node agent SKU (Ubuntu 20.04: #174) or per image (Windows Server 2016: #197);
    an image without a notice has none."""
    images = {i.image_reference.sku: i for i in client.list_supported_images()}
    assert images["20_04-lts"].batch_support_end_of_life.isoformat() == "2025-04-23T00:00:00+00:00"
    assert images["2016-datacenter"].batch_support_end_of_life.year == 2027
    assert images["2022-datacenter"].batch_support_end_of_life is None
    assert images["server"].batch_support_end_of_life is None
    assert images["20-04-lts"].capabilities == ["DockerCompatible"]


def test_if_unmodified_since_before_a_change_is_condition_not_met(client, job):
    from datetime import datetime, timedelta, timezone

    from azure.core.exceptions import ResourceModifiedError

    long_ago = datetime.now(timezone.utc) - timedelta(days=1)
    with pytest.raises((ResourceModifiedError, HttpResponseError)) as info:
        client.update_job(job, bm.BatchJobUpdateOptions(priority=1), if_unmodified_since=long_ago)
    assert info.value.status_code == 412
    later = datetime.now(timezone.utc) + timedelta(days=1)
    client.update_job(job, bm.BatchJobUpdateOptions(priority=2), if_unmodified_since=later)
    assert client.get_job(job).priority == 2


def _pool_body(**overrides):
    body = bodies.pool(unique("p"))
    body.update(overrides)
    return body


_TASK_OK = {"id": "t", "commandLine": "/bin/true"}

BAD_BODIES = [
    ("POST", "/pools", _pool_body(targetDedicatedNodes="three")),
    ("POST", "/pools", _pool_body(targetDedicatedNodes=-1)),
    ("POST", "/pools", _pool_body(virtualMachineConfiguration="ubuntu")),
    ("POST", "/pools", _pool_body(startTask=[])),
    ("POST", "/pools", _pool_body(startTask={"commandLine": 5})),
    ("POST", "/pools", _pool_body(startTask={"commandLine": "x", "environmentSettings": ["A=1"]})),
    ("POST", "/pools", _pool_body(taskSlotsPerNode=0)),
    ("POST", "/pools", _pool_body(taskSchedulingPolicy={"nodeFillType": "random"})),
    (
        "POST",
        "/pools",
        _pool_body(
            virtualMachineConfiguration={
                "imageReference": {},
                "nodeAgentSKUId": "batch.node.windows amd64",
            }
        ),
    ),
    (
        "POST",
        "/pools",
        _pool_body(
            virtualMachineConfiguration={
                "imageReference": {"virtualMachineImageId": "/subscriptions/s/images/not-a-gallery-image"},
                "nodeAgentSKUId": "batch.node.ubuntu 24.04",
            }
        ),
    ),
    ("POST", "/pools", _pool_body(networkConfiguration={"subnetId": "vnet/default"})),
    ("POST", "/pools", [1, 2, 3]),
    ("POST", "/jobs", {"id": "j", "poolInfo": "p"}),
    ("POST", "/jobs", {"id": "j", "poolInfo": {"poolId": "p"}, "priority": "high"}),
    (
        "POST",
        "/jobs",
        {"id": "j", "poolInfo": {"poolId": "p"}, "constraints": {"maxWallClockTime": "1h"}},
    ),
    ("POST", "/jobs", {"id": "j", "poolInfo": {"poolId": "p"}, "onAllTasksComplete": "explode"}),
    ("POST", "/jobs", {"id": "j" * 65, "poolInfo": {"poolId": "p"}}),
    ("POST", "{job}/tasks", {"id": "t"}),
    ("POST", "{job}/tasks", {**_TASK_OK, "commandLine": ["ls"]}),
    ("POST", "{job}/tasks", {**_TASK_OK, "environmentSettings": [{"value": "no name"}]}),
    ("POST", "{job}/tasks", {**_TASK_OK, "resourceFiles": [{"filePath": "x"}]}),
    ("POST", "{job}/tasks", {**_TASK_OK, "outputFiles": [{"filePattern": "*"}]}),
    ("POST", "{job}/tasks", {**_TASK_OK, "constraints": {"maxTaskRetryCount": "x"}}),
    ("POST", "{job}/tasks", {**_TASK_OK, "exitConditions": {"exitCodes": [{"code": "1"}]}}),
    ("POST", "{job}/tasks", {**_TASK_OK, "exitConditions": {"default": {"jobAction": "boom"}}}),
    ("POST", "{job}/tasks", {**_TASK_OK, "requiredSlots": 0}),
    ("POST", "{job}/addtaskcollection", {"value": "not a list"}),
    ("POST", "{job}/addtaskcollection", {}),
    ("PATCH", "{job}", {"priority": 5000}),
    ("PUT", "{job}", {"poolInfo": {}}),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_BODIES)
def test_invalid_bodies_get_a_400_batch_error_never_a_500(client, job, method, path, body):
    response = _raw(client, method, path.replace("{job}", f"/jobs/{job}"), json=body)
    assert response.status_code == 400, response.text()
    payload = response.json()
    assert payload["code"] in {
        "InvalidPropertyValue",
        "MissingRequiredProperty",
        "InvalidRequestBody",
    }, payload
    assert payload["message"]["value"]


def test_invalid_task_in_a_collection_is_a_per_task_client_error(client, job):
    result = _raw(
        client,
        "POST",
        f"/jobs/{job}/addtaskcollection",
        json={"value": [_TASK_OK, {"id": "u", "commandLine": "x", "dependsOn": {"taskIds": "t"}}, _TASK_OK]},
    ).json()
    assert [(r["taskId"], r["status"]) for r in result["value"]] == [
        ("t", "success"),
        ("u", "clienterror"),
        ("t", "clienterror"),
    ]
    assert result["value"][2]["error"]["code"] == "TaskExists"


def test_a_collection_with_a_task_that_is_no_object_or_has_no_id_is_refused_whole(client, job):
    for bad in ("not an object", {"commandLine": "x"}, {"id": 7, "commandLine": "x"}):
        answer = _raw(client, "POST", f"/jobs/{job}/addtaskcollection", json={"value": [_TASK_OK, bad]})
        assert (answer.status_code, answer.json()["code"]) == (400, "InvalidRequestBody"), bad
    assert list(client.list_tasks(job)) == []


class _LegacySigner:
    """Signs like azure-batch 14.x's msrest SharedKeyAuth (what `az batch` uses): %2F and %5C
    in the path are signed as "/", and a body-less request signs no content-length."""

    def __init__(self, name: str, key: str):
        from azure.batch._patch import BatchSharedKeyAuthPolicy

        class Policy(BatchSharedKeyAuthPolicy):
            def on_request(self, request):
                http = request.http_request
                original = http.url
                path, sep, query = original.partition("?")
                http.url = path.replace("%5C", "/").replace("%2F", "/") + sep + query
                try:
                    super().on_request(request)
                finally:
                    http.url = original

        self.policy = Policy(AzureNamedKeyCredential(name, key))


def test_msrest_style_signature_with_decoded_path_is_accepted(server, client, shared_pool):
    legacy = BatchClient(
        server.url,
        AzureNamedKeyCredential(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY),
        authentication_policy=_LegacySigner(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY).policy,
    )
    node = next(iter(legacy.list_nodes(shared_pool)))
    data = b"".join(legacy.download_node_file(shared_pool, node.id, "shared/marker.txt"))
    assert data == b"prepared\n"
    # And a wrong key still fails with the legacy signing.
    wrong = BatchClient(
        server.url,
        AzureNamedKeyCredential(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY),
        authentication_policy=_LegacySigner(DEV_ACCOUNT_NAME, DEV_ACCOUNT_KEY[:-6] + "AAAA==").policy,
    )
    with pytest.raises(HttpResponseError) as info:
        b"".join(wrong.download_node_file(shared_pool, node.id, "shared/marker.txt"))
    assert info.value.status_code == 403


def test_custom_account_name_and_key_replace_the_development_ones(tmp_path):
    import base64

    from emulator_support import start_server

    key = base64.b64encode(b"k" * 64).decode()
    srv = start_server(tmp_path / "data", "--account-name", "myaccount", "--account-key", key)
    try:
        mine = BatchClient(srv.url, AzureNamedKeyCredential("myaccount", key))
        assert list(mine.list_supported_images())
        with pytest.raises(HttpResponseError) as info:
            list(srv.client().list_supported_images())  # the dev credentials
        assert info.value.status_code == 403
    finally:
        srv.stop()


def test_request_dated_far_from_now_is_refused(client):
    from datetime import datetime, timedelta, timezone

    stale = datetime.now(timezone.utc) - timedelta(hours=1)
    with pytest.raises(HttpResponseError) as info:
        list(client.list_supported_images(ocp_date=stale))
    assert info.value.status_code == 403
    assert info.value.error.code == "AuthenticationFailed"
    recent = datetime.now(timezone.utc) - timedelta(minutes=1)
    assert list(client.list_supported_images(ocp_date=recent))
