"""The /notifications page: an admin sees the workspace's channels (never a secret) and the
outbox, and sends a test notification through the real local SMTP server and webhook
receiver; a viewer and another workspace's admin are refused."""

from __future__ import annotations

from collections.abc import Callable

from koppel.config.model import NotificationSettings
from koppel.store import Store, User
from tests.fixtures_notify import SMTP_PASSWORD, WEBHOOK_SECRET, Inbox, Receiver, notifications
from tests.web.conftest import Browser, World

Client = Callable[[User], Browser]


def set_up(store: Store, tenant_id: int, inbox: Inbox, receiver: Receiver) -> None:
    section = notifications(inbox, receiver)
    section["email"]["password"] = SMTP_PASSWORD
    plain, secrets = NotificationSettings.model_validate(section).stored()
    store.notifications.put_settings(tenant_id, plain, secrets)


def test_an_admin_sees_the_channels_and_sends_a_test_through_each(
    client_for: Client, world: World, store: Store, inbox: Inbox, receiver: Receiver
) -> None:
    admin = client_for(world.a.admin)
    empty = admin.get("/notifications")
    assert empty.status_code == 200 and "No channel is set up" in empty.text
    refused = admin.form("/notifications/test")
    assert refused.status_code == 422 and "No notification channel is set up" in refused.text

    set_up(store, world.a.tenant_id, inbox, receiver)
    page = admin.get("/notifications")
    assert page.status_code == 200
    origin = receiver.url.removesuffix("/hook")
    assert "ops@example.com" in page.text and f"{origin}, signed" in page.text
    assert receiver.url not in page.text  # a webhook URL's path may be its token
    assert SMTP_PASSWORD not in page.text and WEBHOOK_SECRET not in page.text

    sent = admin.form("/notifications/test")
    assert sent.headers["location"] == "/notifications?notice=test-sent"
    [mail] = inbox.messages
    assert mail["Subject"] == "Koppel: test notification" and "acme" in mail.get_content()
    [hook] = receiver.documents()
    assert hook["kind"] == "test" and hook["workspace"] == "acme"


def test_a_channel_that_fails_the_test_says_why(
    client_for: Client, world: World, store: Store, inbox: Inbox, receiver: Receiver
) -> None:
    set_up(store, world.a.tenant_id, inbox, receiver)
    record = store.notifications.get_settings(world.a.tenant_id)
    assert record is not None
    store.notifications.put_settings(
        world.a.tenant_id, record.settings, {**record.secrets, "email_password": "wrong"}
    )
    answer = client_for(world.a.admin).form("/notifications/test")
    assert answer.status_code == 200
    assert "refused the login of &#39;koppel&#39;" in answer.text
    assert "check notifications.email.user and password" in answer.text
    assert inbox.messages == [] and len(receiver.deliveries) == 1


def test_viewers_and_other_workspaces_see_no_notifications(
    client_for: Client, world: World, store: Store, inbox: Inbox, receiver: Receiver
) -> None:
    set_up(store, world.a.tenant_id, inbox, receiver)
    assert client_for(world.a.viewer).get("/notifications").status_code == 403
    assert client_for(world.a.viewer).form("/notifications/test").status_code == 403
    other = client_for(world.b.admin).get("/notifications")
    assert other.status_code == 200 and "signed with HMAC" not in other.text
    assert client_for(world.b.admin).form("/notifications/test").status_code == 422
    assert receiver.deliveries == [] and inbox.messages == []
