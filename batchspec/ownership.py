"""The tags that mark what batchspec created, and for which spec.

Batch metadata names may hold hyphens; blob storage metadata names must be C# identifiers, so
storage uses underscores for the same tags.
"""

from __future__ import annotations

from datetime import timedelta

OWNER = "batchspec-owner"
FINGERPRINT = "batchspec-fingerprint"

STORAGE_OWNER = "batchspec_owner"
STORAGE_FINGERPRINT = "batchspec_fingerprint"
STORAGE_SHA256 = "batchspec_sha256"

# When the SAS URLs of a pool's start task expire (ISO 8601, UTC). They live six days (within the
# seven a user-delegation key may last) and are refreshed by the plan once under half is left.
SAS_EXPIRY = "batchspec-sas-expiry"
START_TASK_SAS = timedelta(days=6)
REFRESH_BELOW = START_TASK_SAS / 2

# A task has no metadata: its fingerprint travels in an environment setting.
TASK_FINGERPRINT_ENV = "BATCHSPEC_FINGERPRINT"
