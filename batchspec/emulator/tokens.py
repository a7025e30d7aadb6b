"""Microsoft Entra ID bearer tokens, checked the way the Batch service checks them.

The service takes a token whose audience is the Batch resource, `https://batch.core.windows.net/`
("Batch resource endpoint", Authenticate Azure Batch services with Microsoft Entra ID,
learn.microsoft.com/azure/batch/batch-aad-auth; azure-batch asks for the scope
`https://batch.core.windows.net//.default`), issued by a Microsoft Entra authority, within its
lifetime, and only over HTTPS. The emulator cannot reach Entra's signing keys: like Azurite's
`--oauth basic`, it checks the claims and not the signature, unless it is given a public key
(`--token-key`), when only tokens signed (RS256) with its private twin are taken.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import jwt

from .errors import BatchServiceError

AUDIENCES = ("https://batch.core.windows.net/", "https://batch.core.windows.net")
# The token services of the public and sovereign clouds (v1 tokens name sts.*, v2 ones the
# login authority), as Azurite accepts them.
ISSUERS = (
    "https://sts.windows.net/",
    "https://sts.chinacloudapi.cn/",
    "https://sts.microsoftonline.de/",
    "https://login.microsoftonline.com/",
    "https://login.chinacloudapi.cn/",
    "https://login.microsoftonline.us/",
)
LEEWAY = 300  # seconds of clock skew tolerated on nbf/exp, as Entra's own validators do


def _refused(message: str) -> BatchServiceError:
    # A Bearer challenge, as RFC 6750 (section 3) asks of a 401 to a refused token; the
    # service's exact challenge value is not documented.
    challenge = 'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"'
    return BatchServiceError(
        401,
        "AuthenticationFailed",
        f"Server failed to authenticate the request. {message}",
        headers={"WWW-Authenticate": challenge},
    )


def verify(
    header: str, *, secure: bool, public_key: str | None = None, audiences: tuple[str, ...] = AUDIENCES
) -> Mapping:
    """The claims of the `Authorization: Bearer ...` header's token; raise 401 if it is refused.
    `audiences`: whom the token must be for (Resource Manager's stand-in takes its own)."""
    if not secure:
        raise _refused("Bearer tokens are accepted only over HTTPS.")
    token = header.partition(" ")[2].strip()
    try:
        if public_key:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False},
            )
        else:
            claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidSignatureError:
        raise _refused("The token's signature is invalid.") from None
    except jwt.PyJWTError:
        raise _refused("The bearer token is malformed.") from None
    now = time.time()
    try:
        not_before, expires = float(claims.get("nbf", 0)), float(claims["exp"])
    except (KeyError, TypeError, ValueError):
        raise _refused("The token has no valid lifetime.") from None
    if now + LEEWAY < not_before:
        raise _refused("The token is not yet valid.")
    if now - LEEWAY > expires:
        raise _refused("The token is expired.")
    issuer = str(claims.get("iss", ""))
    if not issuer.startswith(ISSUERS):
        raise _refused(f"The token's issuer {issuer!r} is not a Microsoft Entra authority.")
    audience = claims.get("aud")
    given = audience if isinstance(audience, list) else [audience]
    if not any(a in audiences for a in given):
        raise _refused(f"The token's audience {audience!r} is not this service's ({audiences[0]}).")
    return claims
