"""The emulator's stand-in for Azure Resource Manager (emulator/management.py): the unmodified
azure-mgmt-batch client reads the account's quotas and the VM sizes' vCPUs from it, as batchspec's
preflight does on Azure.
"""

from __future__ import annotations

import json

import pytest
import requests
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.batch import BatchManagementClient

from batchspec.emulator import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME
from batchspec.emulator.management import quotas
from batchspec.services import sdk
from emulator_support import start_server

ACCOUNT = f"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Batch/batchAccounts/{DEV_ACCOUNT_NAME}"


def _management(url: str, key: str = DEV_ACCOUNT_KEY) -> BatchManagementClient:
    credential = AzureNamedKeyCredential(DEV_ACCOUNT_NAME, key)
    return BatchManagementClient(
        credential,
        "sub",
        base_url=url,
        authentication_policy=sdk.batch_shared_key_policy(credential),
        retry_total=0,
    )


@pytest.fixture(scope="module")
def small_account(tmp_path_factory):
    given = {
        "dedicatedCoreQuota": 4,
        "lowPriorityCoreQuota": 8,
        "poolQuota": 2,
        "activeJobAndJobScheduleQuota": 3,
        "dedicatedCoreQuotaPerVMFamily": [{"name": "standardDSv3Family", "coreQuota": 2}],
        "dedicatedCoreQuotaPerVMFamilyEnforced": True,
    }
    server = start_server(tmp_path_factory.mktemp("quotas") / "data", "--quotas", json.dumps(given))
    yield server
    server.stop()


def test_the_management_sdk_reads_the_quotas_the_emulator_was_given(small_account):
    account = _management(small_account.url).batch_account.get("rg", DEV_ACCOUNT_NAME)
    assert (account.dedicated_core_quota, account.low_priority_core_quota) == (4, 8)
    assert (account.pool_quota, account.active_job_and_job_schedule_quota) == (2, 3)
    assert account.dedicated_core_quota_per_vm_family_enforced is True
    assert [(f.name, f.core_quota) for f in account.dedicated_core_quota_per_vm_family] == [
        ("standardDSv3Family", 2)
    ]
    assert account.account_endpoint == small_account.url.split("://")[1]


def test_the_vm_sizes_of_the_accounts_region_carry_their_vcpus_and_family(server):
    client = _management(server.url)
    location = client.batch_account.get("any-group", DEV_ACCOUNT_NAME).location
    skus = {s.name: s for s in client.location.list_supported_virtual_machine_skus(location)}
    d2s = skus["Standard_D2s_v3"]
    assert d2s.family_name == "standardDSv3Family"
    assert {c.name: c.value for c in d2s.capabilities}["vCPUs"] == "2"
    assert {c.value for c in skus["Standard_D3_v2"].capabilities} == {"4"}  # Dv2 is not named by vCPUs


def test_without_quotas_the_account_is_generous_and_in_batch_service_mode(server):
    account = _management(server.url).batch_account.get("rg", DEV_ACCOUNT_NAME)
    assert account.pool_allocation_mode == "BatchService"
    assert (
        min(account.dedicated_core_quota, account.pool_quota, account.active_job_and_job_schedule_quota)
        >= 1000
    )
    assert account.dedicated_core_quota_per_vm_family_enforced is False


def test_an_account_in_user_subscription_mode_gives_no_core_quotas(tmp_path):
    given = json.dumps({"poolAllocationMode": "UserSubscription", "poolQuota": 5})
    server = start_server(tmp_path / "data", "--quotas", given)
    try:
        account = _management(server.url).batch_account.get("rg", DEV_ACCOUNT_NAME)
    finally:
        server.stop()
    assert account.pool_allocation_mode == "UserSubscription" and account.pool_quota == 5
    assert account.dedicated_core_quota is None and account.dedicated_core_quota_per_vm_family is None


def test_what_resource_manager_refuses_is_refused_in_its_shape(server):
    client = _management(server.url)
    with pytest.raises(ResourceNotFoundError) as missing:
        client.batch_account.get("rg", "another-account")
    assert missing.value.error.code == "ResourceNotFound"
    with pytest.raises(HttpResponseError) as refused:
        _management(server.url, key="d3Jvbmcga2V5").batch_account.get("rg", DEV_ACCOUNT_NAME)
    assert refused.value.status_code == 403 and refused.value.error.code == "AuthenticationFailed"
    answer = requests.get(server.url + ACCOUNT, timeout=30)  # no api-version, no credential
    assert answer.status_code == 401 and set(answer.json()) == {"error"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"poolQuota": -1}', "poolQuota is a whole number"),
        ('{"dedicatedCores": 4}', "unknown quota(s): dedicatedCores"),
        ('{"dedicatedCoreQuotaPerVMFamily": {"standardDSv3Family": 2}}', "is a list of"),
        ("[1]", "a JSON object is expected"),
    ],
)
def test_quotas_that_are_not_right_are_refused_with_the_reason(text, says):
    with pytest.raises(ValueError) as refused:
        quotas(text)
    assert says in str(refused.value)
