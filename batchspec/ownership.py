"""The tags that mark what batchspec created, and for which spec.

Batch metadata names may hold hyphens; blob storage metadata names must be C# identifiers, so
storage uses underscores for the same tags.
"""

from __future__ import annotations

OWNER = "batchspec-owner"
FINGERPRINT = "batchspec-fingerprint"

STORAGE_OWNER = "batchspec_owner"
STORAGE_FINGERPRINT = "batchspec_fingerprint"
STORAGE_SHA256 = "batchspec_sha256"

# A task has no metadata: its fingerprint travels in an environment setting.
TASK_FINGERPRINT_ENV = "BATCHSPEC_FINGERPRINT"
