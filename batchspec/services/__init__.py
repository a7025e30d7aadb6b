"""The clients of each target, their credentials, SAS issuing, and every use of SDK internals."""

from batchspec.services import sdk

# Before any module of batchspec imports azure-storage-blob (live/ and apply/ import this package
# first): its sync client without aiohttp (services/sdk.py), which only transfers of many small
# blobs need, ~0.15 s of every command that reaches storage.
sdk.import_storage_without_aiohttp()
