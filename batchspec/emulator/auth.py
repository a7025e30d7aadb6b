"""SharedKey authentication, verified the way the Batch service does it.

The string to sign is built exactly as `azure.batch._patch.BatchSharedKeyAuthPolicy` builds it:
the method, eleven standard headers, the sorted `ocp-*` headers, `/<account><path>` and the
sorted, URL-decoded query parameters. Clients disagree on small points (the SDK signs
`content-length: 0` for a body-less POST where others sign an empty value; the msrest-based
signer of azure-batch 14.x, which `az batch` uses, signs `%2F`/`%5C` in the path as `/`), so
the verifier accepts each of those variants.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs

from .errors import BatchServiceError

# Like Azure, a signed request is only good for a while around the time it says it was made.
MAX_CLOCK_SKEW = timedelta(minutes=15)

_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def string_to_sign(
    method: str,
    headers: Mapping[str, str],
    account: str,
    raw_path: str,
    raw_query: str,
    content_length: str | None = None,
) -> str:
    """The canonical string; `content_length` overrides the header value when not None."""
    lowered = {k.lower(): v for k, v in headers.items() if v}
    if content_length is not None:
        lowered["content-length"] = content_length
    parts = [method.upper()]
    parts.extend(str(lowered.get(h, "")) for h in _SIGNED_HEADERS)
    out = "\n".join(parts) + "\n"
    ocp = sorted((k, v) for k, v in lowered.items() if "ocp-" in k)
    for name, value in ocp:
        out += f"{name}:{value}\n"
    out += f"/{account}{raw_path}"
    query = parse_qs(raw_query, keep_blank_values=False)
    for name in sorted(query):
        value = query[name][0]
        if value:
            out += f"\n{name}:{value}"
    return out


def sign(key: str, text: str) -> str:
    """Base64 HMAC-SHA256 of `text` under the base64 account `key`."""
    digest = hmac.new(base64.b64decode(key), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _unauthenticated(code: str, message: str, status: int) -> BatchServiceError:
    return BatchServiceError(status, code, message, headers={"WWW-Authenticate": "SharedKey"})


def verify(
    method: str,
    headers: Mapping[str, str],
    raw_path: str,
    raw_query: str,
    account: str,
    key: str,
) -> None:
    """Raise a BatchServiceError unless the request carries a valid SharedKey signature.

    No Authorization header -> 401 (the service asks for credentials); a malformed header, a
    foreign account or a wrong signature -> 403 AuthenticationFailed, as Azure answers.
    """
    auth = headers.get("Authorization")
    if not auth:
        raise _unauthenticated(
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified.",
            401,
        )
    scheme, _, cred = auth.partition(" ")
    name, _, signature = cred.strip().partition(":")
    if scheme != "SharedKey" or not name or not signature:
        raise _unauthenticated(
            "AuthenticationFailed",
            "Server failed to authenticate the request. The Authorization header is malformed.",
            403,
        )
    if name != account:
        raise _unauthenticated(
            "AuthenticationFailed",
            f"Server failed to authenticate the request. The account '{name}' is not served here.",
            403,
        )
    # The SDK signs "0" for a body-less POST/PUT/PATCH/DELETE when no length is set yet; other
    # clients sign an empty value, or "0" even on GET. Accept each of those.
    variants: list[str | None] = [None, "0", ""]
    # The msrest-based signer (azure-batch 14.x, hence `az batch`) signs %2F and %5C in the
    # path as "/", e.g. in file paths.
    paths = [raw_path]
    legacy = raw_path.replace("%5C", "/").replace("%2F", "/")
    if legacy != raw_path:
        paths.append(legacy)
    for path in paths:
        for cl in variants:
            expected = sign(key, string_to_sign(method, headers, account, path, raw_query, cl))
            if hmac.compare_digest(expected, signature):
                _check_date(headers)
                return
    raise _unauthenticated(
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header "
        "is formed correctly including the signature.",
        403,
    )


def _check_date(headers: Mapping[str, str]) -> None:
    """The request's ocp-date (or Date) must be within MAX_CLOCK_SKEW of now: a replayed or
    long-delayed signed request is refused, as the service does."""
    value = headers.get("ocp-date") or headers.get("Date")
    if not value:
        return
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        when = None
    if when is None:
        raise _unauthenticated(
            "AuthenticationFailed",
            "Server failed to authenticate the request. The date header is invalid.",
            403,
        )
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if abs(datetime.now(timezone.utc) - when) > MAX_CLOCK_SKEW:
        raise _unauthenticated(
            "AuthenticationFailed",
            "Server failed to authenticate the request. The request date is more than 15 minutes "
            "away from the server's time.",
            403,
        )
