"""Which of the definition's operations the emulator serves, and how it answers the others.

NOT_EMULATED is the list docs/emulator.md gives; the test fails when the emulator and the list
part, so the documented coverage is always the real one.
"""

from __future__ import annotations

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from batchspec.emulator import server
from batchspec.emulator.api_pools import not_supported
from support import definition, services

NOT_EMULATED = {
    "Jobs_ListJobPreparationAndReleaseTaskStatus",
}


def _path(op: definition.Operation) -> str:
    path = op.template.replace("{filePath}", "wd/x")
    for name in ("poolId", "nodeId", "jobId", "taskId", "jobScheduleId", "applicationId", "userName"):
        path = path.replace("{" + name + "}", "x")
    return path.replace("{extensionName}", "x")


def _current() -> list[definition.Operation]:
    return [o for o in definition.operations() if not o.deprecated]


def test_the_operations_the_emulator_serves_are_those_the_docs_say():
    not_served = set()
    for op in _current():
        handler, _ = server.resolve(op.method, _path(op))
        if handler is not_supported:
            not_served.add(op.id)
    assert not_served == NOT_EMULATED
    served = len(_current()) - len(not_served)
    docs = " ".join((definition.DEFINITION.parents[3] / "docs" / "emulator.md").read_text().split())
    assert f"{served} are emulated" in docs


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> BatchClient:
    service = services.emulator(tmp_path_factory.mktemp("coverage") / "data").start()
    yield BatchClient(
        service.url, AzureNamedKeyCredential(services.DEV_ACCOUNT_NAME, services.DEV_ACCOUNT_KEY)
    )
    service.stop()


def test_an_operation_not_emulated_answers_501_not_supported_by_emulator(client):
    for op in (o for o in _current() if o.id in NOT_EMULATED):
        request = HttpRequest(op.method, f"{_path(op)}?api-version=2025-06-01", json={} if op.body else None)
        try:
            answer = client.send_request(request)
            status, code = answer.status_code, answer.json().get("code")
        except HttpResponseError as exc:  # the SDK raises for some statuses
            status, code = exc.status_code, exc.error.code if exc.error else None
        assert status == 501, op.id
        assert code == ("NotSupportedByEmulator" if op.method != "HEAD" else None), op.id  # HEAD: no body
