"""How nodes reach storage: SAS URLs whose signing key outlives them, or the pool's identity."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.storage.blob import UserDelegationKey

from batchspec.apply import payloads
from batchspec.apply.grants import IdentityGrants
from batchspec.errors import TargetError
from batchspec.plan import task_stamp
from batchspec.services.sas import SasIssuer
from batchspec.spec.build import build
from helpers import ROOT
from support import definition

IDENTITY = (
    "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/batch"
)


class _DelegatingService:
    """Stands in for Azure Storage's Get User Delegation Key (it needs Microsoft Entra ID, which
    cannot run here): hands out keys for the window asked and records each request."""

    url = "https://acct.blob.core.windows.net/"

    def __init__(self):
        self.requests: list[tuple[datetime, datetime]] = []

    def get_user_delegation_key(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        self.requests.append((start, expiry))
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid = (
            "00000000-0000-0000-0000-00000000000a",
            "00000000-0000-0000-0000-00000000000b",
        )
        key.signed_start = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_expiry = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_service, key.signed_version = "b", "2025-01-05"
        key.value = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="
        return key


def _window(url: str) -> tuple[datetime, datetime]:
    """The SAS's expiry and its signing key's, from the URL."""
    query = parse_qs(urlsplit(url).query)

    def when(name: str) -> datetime:
        return datetime.fromisoformat(query[name][0].replace("Z", "+00:00"))

    return when("se"), when("ske")


def test_each_user_delegation_key_covers_the_whole_window_of_every_sas_it_signs():
    service = _DelegatingService()
    issuer = SasIssuer(service, "acct", None, timedelta(hours=2))
    now = datetime.now(timezone.utc)
    urls = [issuer.blob_read("input", "a.txt"), issuer.container_write("output")]
    assert len(service.requests) == 1  # one key serves the SAS of the same lifetime
    week = issuer.container_read("application", expiry=now + timedelta(days=6))
    assert len(service.requests) == 2  # the start task's outlives the first key: a new one
    urls += [week, issuer.blob_read("input", "b.txt")]
    assert len(service.requests) == 2
    for url in urls:
        se, ske = _window(url)
        assert se <= ske, url
    with pytest.raises(TargetError, match="cannot outlive 7 days"):
        issuer.container_read("application", expiry=now + timedelta(days=8))


def test_with_a_pool_identity_no_sas_is_issued_and_the_requests_conform_to_the_definition(tmp_path):
    spec = (
        (ROOT / "specs" / "topn.yaml")
        .read_text()
        .replace(
            "  taskSlotsPerNode: 1\n",
            f"  taskSlotsPerNode: 1\n  identityReference: {{resourceId: {IDENTITY}}}\n",
        )
    )
    path = ROOT / "specs" / f".identity-{tmp_path.name}.yaml"  # beside topn.yaml: its globs are relative
    path.write_text(spec)
    try:
        desired = build(path)
    finally:
        path.unlink()
    assert desired.pool.identity == IDENTITY
    grants = IdentityGrants("https://acct.blob.core.windows.net/", IDENTITY)
    pool = payloads.pool(desired.pool, desired.name, "batch.node.ubuntu 24.04", grants)
    tasks = {
        "value": [payloads.task(t, task_stamp(t, desired.pool), grants, desired.pool) for t in desired.tasks]
    }
    assert definition.request_errors("POST", "/pools", pool) == []
    assert definition.request_errors("POST", "/jobs/j/addtaskcollection", tasks) == []
    sent = json.dumps([pool, tasks])
    assert "sig=" not in sent and "?" not in sent  # no SAS, no query of any kind
    assert "batchspec-sas-expiry" not in sent  # nothing expires
    [app] = pool["startTask"]["resourceFiles"]
    assert app == {
        "storageContainerUrl": "https://acct.blob.core.windows.net/application",
        "identityReference": {"resourceId": IDENTITY},
    }
    first = tasks["value"][0]
    assert first["resourceFiles"][0]["identityReference"] == {"resourceId": IDENTITY}
    assert first["outputFiles"][0]["destination"]["container"] == {
        "containerUrl": "https://acct.blob.core.windows.net/output",
        "identityReference": {"resourceId": IDENTITY},
    }


@pytest.mark.parametrize(
    ("wait", "setup", "hours"),
    [
        (2 * 3600.0, 1800.0, 3.5),  # the setup, the wait, an hour to spare
        (None, 1800.0, 25.5),  # no timeout: a day of waiting
        (30 * 86400.0, 0.0, 7 * 24 - 1),  # never past what a user-delegation key signs
    ],
)
def test_the_tasks_sas_urls_live_through_the_setup_and_the_whole_wait(wait, setup, hours):
    from batchspec.timeouts import sas_lifetime

    assert sas_lifetime(wait, setup) == timedelta(hours=hours)
