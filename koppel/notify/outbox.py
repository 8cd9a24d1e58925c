"""Sending the outbox: claim what is due, send it through its channel, record the result.

At most once. An entry is marked `sending` (committed) before its channel is called and `sent`
after; a failure the channel reports puts it back with a backoff, up to `MAX_ATTEMPTS`. If the
process dies after the channel took the message and before `sent` was recorded (a window of one
database write), the entry stays `sending`; once its lease has passed it becomes `uncertain` and
is not sent again. SMTP cannot tell a repeat from a new message, so a lost notification in that
window is preferred over a double one; the webhook carries the event key (`X-Koppel-Event`) so
a receiver can recognise one anyway. The `/notifications` page lists uncertain entries.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from koppel.config.model import NotificationSettings
from koppel.notify.channels import Channel, Notification, NotificationError, channels_for
from koppel.notify.events import from_payload, queue_events, workspace_settings
from koppel.store import Store
from koppel.store.tables import utc_now

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=5)
"""Longer than a send can take (its timeout is 15 s): an entry still sending after it is lost."""
NOTIFY_EVERY_S = 5.0
"""How often the worker looks for new events and sends what is due."""


def outbox_backoff(attempts: int) -> timedelta:
    """Wait before attempt `attempts + 1`: 30 s, 1 min, 2, 4 ... capped at an hour."""
    return min(timedelta(seconds=30 * 2 ** min(attempts - 1, 10)), timedelta(hours=1))


@dataclass(frozen=True, slots=True)
class DrainResult:
    queued: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0


@dataclass(frozen=True, slots=True)
class ChannelCheck:
    channel: str
    error: str | None
    """None: the channel took the test notification."""


async def send_due(store: Store, *, now: datetime | None = None) -> DrainResult:
    """Send every due entry once; entries of a dead sender become uncertain first."""
    now = now or utc_now()
    uncertain = await asyncio.to_thread(store.notifications.expire_sending, now=now, lease=LEASE)
    sent = retried = failed = 0
    channels: dict[int, dict[str, Channel]] = {}
    # One at a time: only the entry in flight can be lost to a crash, never the ones after it.
    while entries := await asyncio.to_thread(store.notifications.claim_due, now=now, limit=1):
        for entry in entries:
            if entry.tenant_id not in channels:
                settings = await asyncio.to_thread(workspace_settings, store, entry.tenant_id)
                channels[entry.tenant_id] = channels_for(settings) if settings else {}
            channel = channels[entry.tenant_id].get(entry.channel)
            if channel is None:
                message = (
                    f"the workspace has no {entry.channel} channel any more; "
                    "add it under notifications: in the integration file to send such messages"
                )
                await asyncio.to_thread(store.notifications.mark_failed, entry.id, message)
                failed += 1
                continue
            try:
                await channel.send(from_payload(entry.payload))
            except NotificationError as error:
                if entry.attempts >= MAX_ATTEMPTS:
                    reason = f"{error} (gave up after {entry.attempts} attempts)"
                    await asyncio.to_thread(store.notifications.mark_failed, entry.id, reason)
                    failed += 1
                else:
                    at = now + outbox_backoff(entry.attempts)
                    await asyncio.to_thread(
                        store.notifications.mark_retry, entry.id, str(error), at=at
                    )
                    retried += 1
            else:
                await asyncio.to_thread(store.notifications.mark_sent, entry.id, now=utc_now())
                sent += 1
    return DrainResult(sent=sent, retried=retried, failed=failed, uncertain=uncertain)


async def notify_once(store: Store, *, now: datetime | None = None) -> DrainResult:
    """Queue the new events of every workspace with notifications, then send what is due."""
    now = now or utc_now()
    queued = 0
    for tenant_id in await asyncio.to_thread(store.notifications.tenants_with_settings):
        queued += await asyncio.to_thread(queue_events, store, tenant_id, now=now)
    result = await send_due(store, now=now)
    return DrainResult(
        queued=queued,
        sent=result.sent,
        retried=result.retried,
        failed=result.failed,
        uncertain=result.uncertain,
    )


async def notify_regularly(store: Store, *, every_s: float = NOTIFY_EVERY_S) -> None:
    """`notify_once` every `every_s` until cancelled (the worker's and `koppel serve`'s)."""
    while True:
        try:
            result = await notify_once(store)
        except Exception:  # notifying must not stop the worker; it tries again shortly
            logger.exception("notifications: looking for events or sending failed")
        else:
            for count, what in (
                (result.failed, "gave up on %d notifications; see /notifications"),
                (result.uncertain, "%d notifications may not have arrived; see /notifications"),
            ):
                if count:
                    logger.warning("notifications: " + what, count)
        await asyncio.sleep(every_s)


async def send_test(settings: NotificationSettings, *, workspace: str) -> list[ChannelCheck]:
    """Send a test message through every channel at once (not through the outbox: the person
    who asked sees each channel's answer)."""
    link = settings.link_base.rstrip("/")
    notification = Notification(
        key=f"test:{utc_now().isoformat()}",
        kind="test",
        title="Koppel: test notification",
        text=(
            f"This is a test notification of workspace {workspace}. Koppel will send "
            f"failed runs, failed records and connection problems here. See {link}/notifications"
        ),
        data={"workspace": workspace, "link": f"{link}/notifications"},
    )
    results = []
    for name, channel in channels_for(settings).items():
        try:
            await channel.send(notification)
        except NotificationError as error:
            results.append(ChannelCheck(name, str(error)))
        else:
            results.append(ChannelCheck(name, None))
    return results


__all__ = [
    "LEASE",
    "MAX_ATTEMPTS",
    "NOTIFY_EVERY_S",
    "ChannelCheck",
    "DrainResult",
    "notify_once",
    "notify_regularly",
    "outbox_backoff",
    "send_due",
    "send_test",
]
