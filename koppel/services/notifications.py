"""A workspace's notifications for its admins: the channels as set, what the outbox holds, and
a test message through every channel."""

from __future__ import annotations

from dataclasses import dataclass

from koppel.config.model import NotificationSettings
from koppel.errors import ErrorCategory, KoppelError
from koppel.notify.events import workspace_settings
from koppel.notify.outbox import ChannelCheck, send_test
from koppel.store import Store
from koppel.store.notifications import OutboxEntry

RECENT = 50


def N_(message: str) -> str:
    """Marks a message for the web app's catalogue without translating it here."""
    return message


NOT_SET_UP = N_(
    "No notification channel is set up: add a notifications section with email or webhook "
    "to the integration file and apply it (docs/monitoring.md)."
)


class NotificationsNotSetUp(KoppelError):
    """The workspace has no channel to send to. The web app shows `message_id` translated."""

    category = ErrorCategory.CONFIGURATION
    message_id = NOT_SET_UP

    def __init__(self) -> None:
        super().__init__(NOT_SET_UP)


@dataclass(frozen=True, slots=True)
class NotificationsView:
    settings: NotificationSettings | None
    recent: list[OutboxEntry]


def overview(store: Store, tenant_id: int) -> NotificationsView:
    return NotificationsView(
        settings=workspace_settings(store, tenant_id),
        recent=store.notifications.list_recent(tenant_id, limit=RECENT),
    )


async def test_channels(store: Store, tenant_id: int) -> list[ChannelCheck]:
    """Send a test message through each channel now; each one's answer."""
    settings = workspace_settings(store, tenant_id)
    if settings is None or not settings.channels():
        raise NotificationsNotSetUp
    tenant = store.tenants.get(tenant_id)
    return await send_test(settings, workspace=tenant.name if tenant else str(tenant_id))


__all__ = ["NotificationsNotSetUp", "NotificationsView", "overview", "test_channels"]
