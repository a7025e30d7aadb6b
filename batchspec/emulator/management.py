"""A stand-in for the little of the management plane (Azure Resource Manager) a Batch client
reads: the Batch account with its quotas, and the VM sizes Batch supports in a region.

The local service has no Resource Manager, so it answers these two reads itself, in Resource
Manager's shape and at its paths, and the real `azure-mgmt-batch` client reads them unchanged
when pointed at the emulator (`base_url`) with the account's shared key:

    GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Batch/batchAccounts/{name}
    GET /subscriptions/{sub}/providers/Microsoft.Batch/locations/{location}/virtualMachineSkus

Any subscription and resource group name the emulator's one account. The quotas are the
emulator's `--quotas` JSON, in the account resource's own property names:

    {"dedicatedCoreQuota": 20, "lowPriorityCoreQuota": 100, "poolQuota": 100,
     "activeJobAndJobScheduleQuota": 300,
     "dedicatedCoreQuotaPerVMFamily": [{"name": "standardDSv3Family", "coreQuota": 8}],
     "dedicatedCoreQuotaPerVMFamilyEnforced": true,
     "poolAllocationMode": "UserSubscription"}   (the core quotas are then not returned, as
                                                  the service leaves them out on such accounts)

Without `--quotas` every quota is generous, so that no plan meets one by accident. Nothing here
enforces them: pools and jobs are created past them (docs/emulator.md says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from .common import json_response, json_settings
from .errors import BatchServiceError

LOCATION = "local"
# The Resource Manager api-versions of Microsoft.Batch that azure-mgmt-batch 17 to 19 send.
API_VERSIONS = frozenset({"2025-06-01", "2024-07-01", "2024-02-01", "2023-11-01", "2023-05-01", "2022-10-01"})
# Bearer tokens for Resource Manager are issued for its audience, not Batch's.
AUDIENCES = (
    "https://management.azure.com/",
    "https://management.azure.com",
    "https://management.core.windows.net/",
)

_GENEROUS = 10_000

# The vCPUs of common VM sizes and the quota family each counts against. vCPUs: the sizes pages
# of the Azure documentation (learn.microsoft.com/azure/virtual-machines/sizes/overview, one page
# per series); in every series below but Dv2 the number in a size's name is its vCPU count.
# Families: the names Batch's supported-SKU listing and the account's per-family quotas use
# (`az batch location list-skus --location <region>`, familyName).
_SERIES = (
    ("standardAv2Family", "Standard_A{}_v2", (1, 2, 4, 8)),
    ("standardDv3Family", "Standard_D{}_v3", (2, 4, 8, 16, 32, 48, 64)),
    ("standardDSv3Family", "Standard_D{}s_v3", (2, 4, 8, 16, 32, 48, 64)),
    ("standardDv4Family", "Standard_D{}_v4", (2, 4, 8, 16, 32, 48, 64)),
    ("standardDSv4Family", "Standard_D{}s_v4", (2, 4, 8, 16, 32, 48, 64)),
    ("standardDv5Family", "Standard_D{}_v5", (2, 4, 8, 16, 32, 48, 64, 96)),
    ("standardDSv5Family", "Standard_D{}s_v5", (2, 4, 8, 16, 32, 48, 64, 96)),
    ("standardDDSv5Family", "Standard_D{}ds_v5", (2, 4, 8, 16, 32, 48, 64, 96)),
    ("standardDASv5Family", "Standard_D{}as_v5", (2, 4, 8, 16, 32, 48, 64, 96)),
    ("standardESv3Family", "Standard_E{}s_v3", (2, 4, 8, 16, 32, 48, 64)),
    ("standardESv5Family", "Standard_E{}s_v5", (2, 4, 8, 16, 32, 48, 64, 96)),
    ("standardFSv2Family", "Standard_F{}s_v2", (2, 4, 8, 16, 32, 48, 64, 72)),
    ("standardDCSv2Family", "Standard_DC{}s_v2", (1, 2, 4, 8)),
    ("standardNCSv3Family", "Standard_NC{}s_v3", (6, 12, 24)),
    ("standardHBrsv3Family", "Standard_HB{}rs_v3", (120,)),
)
# Dv2 is numbered by size, not by vCPUs: D1_v2 has 1, D2_v2 2, D3_v2 4, D4_v2 8, D5_v2 16.
_DV2 = {
    "Standard_D1_v2": 1,
    "Standard_D2_v2": 2,
    "Standard_D3_v2": 4,
    "Standard_D4_v2": 8,
    "Standard_D5_v2": 16,
}
VM_SIZES: dict[str, tuple[int, str]] = {
    **{template.format(n): (n, family) for family, template, sizes in _SERIES for n in sizes},
    **{name: (vcpus, "standardDv2Family") for name, vcpus in _DV2.items()},
}

_INTS = ("dedicatedCoreQuota", "lowPriorityCoreQuota", "poolQuota", "activeJobAndJobScheduleQuota")
_CORE_QUOTAS = ("dedicatedCoreQuota", "lowPriorityCoreQuota", "dedicatedCoreQuotaPerVMFamily")


@dataclass(frozen=True)
class Quotas:
    dedicated_cores: int = _GENEROUS
    low_priority_cores: int = _GENEROUS
    pools: int = _GENEROUS
    active_jobs: int = _GENEROUS
    per_family: tuple[tuple[str, int], ...] | None = None  # None: every family the dedicated quota
    per_family_enforced: bool = False
    user_subscription: bool = False

    def properties(self) -> dict:
        """The account resource's quota properties, as Resource Manager gives them."""
        families = self.per_family
        if families is None:
            families = tuple((f, self.dedicated_cores) for f in sorted({f for _, f in VM_SIZES.values()}))
        props = {
            "dedicatedCoreQuota": self.dedicated_cores,
            "lowPriorityCoreQuota": self.low_priority_cores,
            "dedicatedCoreQuotaPerVMFamily": [{"name": n, "coreQuota": q} for n, q in families],
            "dedicatedCoreQuotaPerVMFamilyEnforced": self.per_family_enforced,
            "poolQuota": self.pools,
            "activeJobAndJobScheduleQuota": self.active_jobs,
        }
        if self.user_subscription:  # quota is the subscription's: "this value is not returned"
            props = {k: v for k, v in props.items() if k not in _CORE_QUOTAS}
        mode = "UserSubscription" if self.user_subscription else "BatchService"
        return {**props, "poolAllocationMode": mode}


def quotas(text: str | None) -> Quotas:
    """The emulator's `--quotas` (ValueError with the reason if it is not right)."""
    if not text:
        return Quotas()
    known = (*_INTS, "dedicatedCoreQuotaPerVMFamily", "dedicatedCoreQuotaPerVMFamilyEnforced")
    given = json_settings(text, (*known, "poolAllocationMode"), "quota")
    for name in _INTS:
        if not _count(given.get(name, 0)):
            raise ValueError(f"{name} is a whole number, 0 or more")
    families = given.get("dedicatedCoreQuotaPerVMFamily")
    if families is not None and not (
        isinstance(families, list)
        and all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and _count(f.get("coreQuota"))
            for f in families
        )
    ):
        raise ValueError('dedicatedCoreQuotaPerVMFamily is a list of {"name": ..., "coreQuota": ...}')
    enforced = given.get("dedicatedCoreQuotaPerVMFamilyEnforced", False)
    if not isinstance(enforced, bool):
        raise ValueError("dedicatedCoreQuotaPerVMFamilyEnforced is true or false")
    mode = given.get("poolAllocationMode", "BatchService")
    if mode not in ("BatchService", "UserSubscription"):
        raise ValueError("poolAllocationMode is BatchService or UserSubscription")
    return Quotas(
        dedicated_cores=given.get("dedicatedCoreQuota", _GENEROUS),
        low_priority_cores=given.get("lowPriorityCoreQuota", _GENEROUS),
        pools=given.get("poolQuota", _GENEROUS),
        active_jobs=given.get("activeJobAndJobScheduleQuota", _GENEROUS),
        per_family=None if families is None else tuple((f["name"], f["coreQuota"]) for f in families),
        per_family_enforced=enforced,
        user_subscription=mode == "UserSubscription",
    )


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_ACCOUNT = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Batch/"
    r"batchAccounts/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)
_SKUS = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Batch/locations/(?P<location>[^/]+)/"
    r"virtualMachineSkus/?$",
    re.IGNORECASE,
)


def is_management(raw_path: str) -> bool:
    return raw_path.lower().startswith("/subscriptions/")


def answer(method: str, raw_path: str, query: dict[str, str], account: str, account_url: str, q: Quotas):
    """The Resource Manager answer to one request (errors in its `{"error": {...}}` shape)."""
    try:
        version = query.get("api-version")
        if not version:
            raise BatchServiceError(
                400, "MissingApiVersionParameter", "The api-version query parameter is required."
            )
        if version not in API_VERSIONS:
            raise BatchServiceError(
                400,
                "NoRegisteredProviderFound",  # Resource Manager's code for a version it has not
                f"No registered resource provider found for API version '{version}'. The supported "
                f"api-versions are '{', '.join(sorted(API_VERSIONS))}'.",
            )
        if method != "GET":
            raise BatchServiceError(
                405, "MethodNotAllowed", f"The emulator answers only GET here, not {method}."
            )
        if m := _ACCOUNT.match(raw_path):
            return json_response(200, _account(m, account, account_url, q))
        if m := _SKUS.match(raw_path):
            skus = [
                {"name": name, "familyName": family, "capabilities": [{"name": "vCPUs", "value": str(n)}]}
                for name, (n, family) in VM_SIZES.items()
            ]
            return json_response(200, {"value": skus})
        raise BatchServiceError(
            404, "NotFound", "The emulator's Resource Manager stand-in has no such resource."
        )
    except BatchServiceError as exc:
        return management_error(exc)


def _account(m: re.Match, account: str, account_url: str, q: Quotas) -> dict:
    if m["name"].lower() != account.lower():
        raise BatchServiceError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.Batch/batchAccounts/{m['name']}' under resource group "
            f"'{m['rg']}' was not found.",
        )
    endpoint = account_url.split("://", 1)[-1]  # Resource Manager gives it without a scheme
    group = f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}"
    return {
        "id": f"{group}/providers/Microsoft.Batch/batchAccounts/{account}",
        "name": account,
        "type": "Microsoft.Batch/batchAccounts",
        "location": LOCATION,
        "properties": {
            "accountEndpoint": endpoint,
            "provisioningState": "Succeeded",
            "publicNetworkAccess": "Enabled",
            **q.properties(),
            "allowedAuthenticationModes": ["SharedKey", "AAD"],
        },
    }


def management_error(exc: BatchServiceError) -> web.Response:
    """Any error on these paths, in Resource Manager's shape (ErrorResponse), which the
    management SDKs parse (ARMErrorFormat), with the error's own headers (a 401's challenge)."""
    return json_response(exc.status, {"error": {"code": exc.code, "message": exc.message}}, exc.headers)
