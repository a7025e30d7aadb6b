"""The exception hierarchy. The CLI catches `BatchspecError` once and maps it to an exit code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where in a spec file something is: 1-based line and column."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


class BatchspecError(Exception):
    """Base of every expected failure: printed as one clear line, never as a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(BatchspecError):
    """Bad command-line input (a malformed --var, a missing file)."""

    exit_code = 2


class SpecError(BatchspecError):
    """One problem in a spec file."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        field: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, location=location, hint=hint)
        self.field = field

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        field = f"{self.field}: " if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{field}{self.message}{hint}"


@dataclass(frozen=True)
class SpecWarning:
    """Something a spec may say but that would likely fail on the service; `--strict` refuses it."""

    message: str
    location: Location | None = None
    field: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        field = f"{self.field}: " if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}warning: {field}{self.message}{hint}"

    def as_error(self) -> SpecError:
        return SpecError(self.message, location=self.location, field=self.field, hint=self.hint)

    def to_dict(self) -> dict[str, str | int | None]:
        loc = self.location
        return {
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
        }


class SpecErrors(BatchspecError):
    """Every problem found in a spec, reported together."""

    exit_code = 2

    def __init__(self, errors: list[SpecError]):
        super().__init__(f"{len(errors)} error(s) in spec")
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class TargetError(BatchspecError):
    """A target cannot be reached or configured (missing credential, service not running)."""


class LocalServiceError(TargetError):
    """The local services (Azurite, the Batch emulator) failed to start or stop."""


class PlanError(BatchspecError):
    """The plan cannot be made (a clash with a resource batchspec does not own, a stale plan)."""


class PreflightError(BatchspecError):
    """The plan's preflight found what would fail once resources exist: nothing was created."""

    exit_code = 2


class ApplyError(BatchspecError):
    """Applying failed part-way; running apply again resumes from live state."""


class ApplyTimeout(ApplyError):
    """A wait passed its limit (the tasks, or the pool and job before them); exit code 4."""

    exit_code = 4


class LockError(BatchspecError):
    """Another apply or destroy of the same spec holds the lock."""
