"""Batch service errors: the exception the handlers raise and the JSON body the service returns.

Every expected failure becomes a `BatchServiceError`; the server turns it into the service's
error document (`odata.metadata`, `code`, `message.lang/value`, optional `values`) so that the
SDK's `BatchErrorFormat` parses it exactly as it parses Azure's.
"""

from __future__ import annotations

from datetime import datetime, timezone


class BatchServiceError(Exception):
    """An error response: HTTP status, Batch error code, message and optional detail pairs."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        values: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.values = values or []
        self.headers = headers or {}

    def body(self, base_url: str, request_id: str) -> dict:
        """The service's JSON error document for this error."""
        return error_body(base_url, self.code, self.message, request_id, self.values)


_ERRORS_SET = "Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"


def error_body(
    base_url: str, code: str, message: str, request_id: str, values: list[tuple[str, str]] = ()
) -> dict:
    """Build the Batch error document; the message carries RequestId and Time like Azure's."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    doc: dict = {
        "odata.metadata": f"{base_url}/$metadata#{_ERRORS_SET}",
        "code": code,
        "message": {"lang": "en-US", "value": f"{message}\nRequestId:{request_id}\nTime:{now}"},
    }
    if values:
        doc["values"] = [{"key": k, "value": v} for k, v in values]
    return doc


# Constructors for the codes the handlers use, so wording and status stay consistent.


def _code(kind: str) -> str:
    """A kind as error codes spell it: "Job schedule" -> JobSchedule."""
    return "".join(word[:1].upper() + word[1:] for word in kind.split())


def not_found(kind: str) -> BatchServiceError:
    """`<Kind>NotFound` (404), e.g. PoolNotFound, JobScheduleNotFound."""
    return BatchServiceError(404, f"{_code(kind)}NotFound", f"The specified {kind.lower()} does not exist.")


def exists(kind: str) -> BatchServiceError:
    """`<Kind>Exists` (409), e.g. JobExists."""
    return BatchServiceError(409, f"{kind}Exists", f"The specified {kind.lower()} already exists.")


def being_deleted(kind: str) -> BatchServiceError:
    """`<Kind>BeingDeleted` (409), worded as the REST reference's "Batch status and error codes"."""
    done = "garbage collected" if kind == "Job" else "reclaimed"
    return BatchServiceError(
        409,
        f"{_code(kind)}BeingDeleted",
        f"The specified {kind.lower()} has been marked for deletion and is being {done}.",
    )


def invalid_value(name: str, value: object, reason: str | None = None) -> BatchServiceError:
    """InvalidPropertyValue (400) naming the property and its rejected value."""
    values = [("PropertyName", name), ("PropertyValue", str(value))]
    if reason:
        values.append(("Reason", reason))
    return BatchServiceError(
        400,
        "InvalidPropertyValue",
        "The value provided for one of the properties in the request body is invalid.",
        values,
    )


def missing_property(name: str) -> BatchServiceError:
    """MissingRequiredProperty (400)."""
    return BatchServiceError(
        400,
        "MissingRequiredProperty",
        "A required property was not specified in the request body.",
        [("PropertyName", name)],
    )


def invalid_body(reason: str) -> BatchServiceError:
    """InvalidRequestBody (400): the body is not JSON of the expected shape."""
    return BatchServiceError(
        400,
        "InvalidRequestBody",
        "The specified Request Body is not syntactically valid.",
        [("Reason", reason)],
    )


def invalid_query(name: str, value: str, reason: str) -> BatchServiceError:
    """InvalidQueryParameterValue (400), e.g. an unparsable $filter."""
    return BatchServiceError(
        400,
        "InvalidQueryParameterValue",
        "Value for one of the query parameters specified in the request URI is invalid.",
        [("QueryParameterName", name), ("QueryParameterValue", value), ("Reason", reason)],
    )


def condition_not_met() -> BatchServiceError:
    """ConditionNotMet (412): an If-Match / If-None-Match precondition failed."""
    return BatchServiceError(
        412,
        "ConditionNotMet",
        "The condition specified using HTTP conditional header(s) is not met.",
    )


def conflict(code: str, message: str) -> BatchServiceError:
    """A 409 with an operation-specific code (e.g. JobCompleted, TaskCompleted)."""
    return BatchServiceError(409, code, message)
