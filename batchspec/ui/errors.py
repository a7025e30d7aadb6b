"""Expected failures as the lines a user reads: a refused or unreachable service, with a hint."""

from __future__ import annotations

import os
import traceback


def service_error(exc: Exception, hint: str | None = None) -> str:
    """The first line of a service's error, and for a refused request (401/403) `hint`."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None) or getattr(getattr(exc, "error", None), "code", None)
    code = getattr(code, "value", code)  # storage gives an enum
    text = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if status is None:
        return f"error: a service could not be reached: {first}"
    line = f"error: the service refused a request ({status}{f' {code}' if code else ''}): {first}"
    if status in (401, 403):
        hint = hint or (
            "check the account name and key (AZURE_BATCH_ACCOUNT_KEY, AZURE_STORAGE_ACCOUNT_KEY "
            "or the connection string) or the credential's role"
        )
        line += f"\nhint: {hint}"
    return line


def debug_traceback() -> None:
    """The traceback, when BATCHSPEC_DEBUG asks for it."""
    if os.environ.get("BATCHSPEC_DEBUG"):
        traceback.print_exc()
