"""Reading live state: one module per service, nothing here changes anything."""

# First: services/__init__.py imports azure-storage-blob without aiohttp before any module here
# imports it.
from batchspec import services  # noqa: F401
