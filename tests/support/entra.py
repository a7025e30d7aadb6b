"""Microsoft Entra ID, locally: a TLS certificate for the services, and a token service that
mints signed tokens the way a managed identity's endpoint does.

The token service answers the App Service managed-identity protocol (IDENTITY_ENDPOINT and
IDENTITY_HEADER; azure-identity's ManagedIdentityCredential, hence DefaultAzureCredential,
uses it when both are set), so the azure target's unmodified credential chain takes its tokens.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ISSUER = f"https://sts.windows.net/{TENANT}/"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key: (cert.pem, key.pem).
    Clients trust it through REQUESTS_CA_BUNDLE (requests) and SSL_CERT_FILE (OpenSSL)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batchspec test services")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem(key))
    return cert_path, key_path


class TokenService:
    """A managed-identity token endpoint on a free loopback port (in a thread of this process).

    Tokens are RS256-signed with a key of this service (`public_key_file` is its public twin,
    for the emulator's `--token-key`), for the resource asked, with the claims Entra's v1 tokens
    carry (iss, aud, iat, nbf, exp, oid, tid). `resources` lists what was asked, in order.
    """

    def __init__(self, folder: Path, *, lifetime: int = 3600):
        self._key = _key()
        self.public_key_file = folder / "token-signing.pem"
        folder.mkdir(parents=True, exist_ok=True)
        self.public_key_file.write_bytes(
            self._key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.secret = secrets.token_hex(16)
        self.object_id = str(uuid.uuid4())
        self.lifetime = lifetime
        self.resources: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                query = parse_qs(urlsplit(self.path).query)
                if self.headers.get("X-IDENTITY-HEADER") != service.secret:
                    return self._answer(401, {"error": "invalid_request"})
                resource = (query.get("resource") or [""])[0]
                service.resources.append(resource)
                expires = int(time.time()) + service.lifetime
                body = {
                    "access_token": service.mint(resource, expires=expires),
                    "expires_on": str(expires),
                    "resource": resource,
                    "token_type": "Bearer",
                }
                return self._answer(200, body)

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/msi/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def mint(self, audience: str, *, expires: int | None = None, issuer: str = ISSUER, key=None) -> str:
        """A signed token for `audience` (another `key` signs a forged one)."""
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": expires if expires is not None else now + self.lifetime,
            "oid": self.object_id,
            "tid": TENANT,
            "sub": self.object_id,
            "appid": self.object_id,
            "ver": "1.0",
        }
        return jwt.encode(claims, _pem(key or self._key), algorithm="RS256")

    @staticmethod
    def other_key() -> rsa.RSAPrivateKey:
        return _key()

    def env(self) -> dict[str, str]:
        """The environment a managed identity's host gives its programs."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.secret}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
