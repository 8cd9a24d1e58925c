"""Where notifications go: e-mail over SMTP and a signed webhook, behind one method.

A channel raises `NotificationError` (with what to change) when the message did not go; the
outbox then tries again later. Neither a password nor a signing secret is ever in an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from koppel.config.model import EmailSettings, NotificationSettings, WebhookSettings
from koppel.errors import ErrorCategory, KoppelError

SIGNATURE_HEADER = "X-Koppel-Signature"
TIMESTAMP_HEADER = "X-Koppel-Timestamp"
EVENT_HEADER = "X-Koppel-Event"
TIMEOUT_S = 15.0


class NotificationError(KoppelError):
    """A channel did not take a notification; the message says which and what to check."""

    category = ErrorCategory.CONNECTION


@dataclass(frozen=True, slots=True)
class Notification:
    """One message: `key` names its event (`run-failed:<run id>`), `title` is an e-mail's
    subject, `text` what a person reads, `data` the structured fields a webhook carries."""

    key: str
    kind: str
    title: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "event": self.key,
            "kind": self.kind,
            "title": self.title,
            "text": self.text,
            **self.data,
        }


class Channel(Protocol):
    async def send(self, notification: Notification) -> None:
        """Deliver it, or raise NotificationError."""


class SmtpChannel:
    """E-mail: STARTTLS (unless turned off), then a login when a user is set."""

    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings

    async def send(self, notification: Notification) -> None:
        await asyncio.to_thread(self._send, notification)

    def _send(self, notification: Notification) -> None:
        settings = self._settings
        message = EmailMessage()
        message["From"] = settings.sender
        message["To"] = ", ".join(settings.to)
        message["Subject"] = notification.title
        message["X-Koppel-Event"] = notification.key
        message.set_content(notification.text)
        where = f"the SMTP server {settings.host}:{settings.port}"
        try:
            with smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT_S) as smtp:
                if settings.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=settings.ca_file))
                if settings.user is not None:
                    password = settings.password.get_secret_value() if settings.password else ""
                    smtp.login(settings.user, password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as error:
            raise NotificationError(
                f"{where} refused the login of {settings.user!r} ({error.smtp_code}); "
                "check notifications.email.user and password"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise NotificationError(
                f"{where} does not offer STARTTLS or login; "
                "check notifications.email.port (587 is usual) and starttls"
            ) from None
        except smtplib.SMTPRecipientsRefused:
            raise NotificationError(
                f"{where} refused the recipients {', '.join(settings.to)}; "
                "check notifications.email.to"
            ) from None
        except smtplib.SMTPResponseException as error:
            answer = error.smtp_error
            said = answer.decode(errors="replace") if isinstance(answer, bytes) else answer
            raise NotificationError(
                f"{where} answered {error.smtp_code} {said[:200]}; it is tried again later"
            ) from None
        except ssl.SSLError as error:
            raise NotificationError(
                f"{where}: TLS failed ({error.reason or error}); check its certificate or "
                "notifications.email.ca_file"
            ) from None
        except (OSError, smtplib.SMTPException) as error:
            raise NotificationError(
                f"{where} could not be reached ({type(error).__name__}: {error}); "
                "check notifications.email.host and port; it is tried again later"
            ) from None


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `<timestamp>.<body>`, hex: what the receiver recomputes."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookChannel:
    """POST the notification as JSON, signed (`X-Koppel-Signature` over the timestamp and the
    body), its event key in `X-Koppel-Event` so a receiver can drop a repeat. Redirects are
    not followed."""

    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings

    async def send(self, notification: Notification) -> None:
        body = json.dumps(notification.document(), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        secret = self._settings.secret.get_secret_value()
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(secret, timestamp, body),
            EVENT_HEADER: notification.key,
        }
        where = f"the notification webhook at {self._settings.origin()}"
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
                response = await client.post(
                    self._settings.url.get_secret_value(), content=body, headers=headers
                )
        except httpx.HTTPError as error:
            raise NotificationError(
                f"{where} could not be reached ({type(error).__name__}); "
                "check notifications.webhook.url; it is tried again later"
            ) from None
        if not response.is_success:
            raise NotificationError(
                f"{where} answered HTTP {response.status_code}; check that it accepts "
                "Koppel's signed JSON; it is tried again later"
            )


def channels_for(settings: NotificationSettings) -> dict[str, Channel]:
    """The channels the settings configure, by name (the outbox's `channel` column)."""
    channels: dict[str, Channel] = {}
    if settings.email is not None:
        channels["email"] = SmtpChannel(settings.email)
    if settings.webhook is not None:
        channels["webhook"] = WebhookChannel(settings.webhook)
    return channels


__all__ = [
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Channel",
    "Notification",
    "NotificationError",
    "SmtpChannel",
    "WebhookChannel",
    "channels_for",
    "signature",
]
