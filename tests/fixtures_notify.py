"""Local servers that notifications go to: an SMTP server (aiosmtpd, STARTTLS and login
required, with a certificate of its own) and a webhook receiver (an HTTP server in a thread)."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMTP_USER, SMTP_PASSWORD = "koppel", "smtp-password-not-in-logs"
WEBHOOK_SECRET = "webhook-secret-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.pem", directory / "smtp.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@dataclass
class Inbox:
    """What the SMTP server took (after STARTTLS and a login: it refuses anything else)."""

    port: int
    ca_file: Path
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


def _login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    good = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    # handled=False: aiosmtpd answers a refusal with 535 itself.
    return AuthResult(success=good, handled=False)


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    served = Inbox(port=free_port(), ca_file=cert_file)
    controller = Controller(
        served,
        hostname="127.0.0.1",
        port=served.port,
        tls_context=context,
        require_starttls=True,
        authenticator=_login,
        auth_require_tls=True,
    )
    controller.start()
    yield served
    controller.stop()


@dataclass
class Receiver:
    """The webhook receiver: every POST's headers and JSON; `hold` keeps the answer back."""

    url: str
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    hold: threading.Event | None = None

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.deliveries]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    received = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.deliveries.append((dict(self.headers.items()), body))
            if received.hold is not None:
                received.hold.wait(120)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received
    if received.hold is not None:
        received.hold.set()
    server.shutdown()
    server.server_close()


def notifications(inbox: Inbox, receiver: Receiver) -> dict[str, Any]:
    """A `notifications:` section for these servers; the SMTP password is `${SMTP_PASSWORD}`."""
    return {
        "link_base": "http://koppel.example",
        "email": {
            "host": "127.0.0.1",
            "port": inbox.port,
            "user": SMTP_USER,
            "password": "${SMTP_PASSWORD}",
            "from": "koppel@example.com",
            "to": ["ops@example.com"],
            "ca_file": str(inbox.ca_file),
        },
        "webhook": {"url": receiver.url, "secret": WEBHOOK_SECRET},
    }
