"""The clients of each target, their credentials, SAS issuing, and every use of SDK internals."""
