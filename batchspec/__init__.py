"""batchspec: a declarative runner for Azure Batch."""

__version__ = "0.1.0"
