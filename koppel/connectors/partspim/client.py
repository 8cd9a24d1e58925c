"""HTTP client for the Parts Pim API: API key auth, error classes, cursor paging, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx

from koppel.connectors.base import ApiClient, ClientLimits, PageGuard, Record, api_message
from koppel.connectors.errors import ConnectorError, FatalAPIError, RecordValidationError
from koppel.connectors.partspim import contract


@dataclass(frozen=True)
class FieldError:
    """One entry of a Parts Pim error body."""

    field: str
    message: str


class PartsPimValidationError(RecordValidationError):
    """A 422: the first error names field and rule; `errors` holds all of them.

    The client does not know which record it sent, so `record_key` names the request; the
    connector raises a RecordValidationError with the record's own key instead.
    """

    def __init__(self, record_key: str, errors: Sequence[FieldError]) -> None:
        first = errors[0]
        super().__init__(record_key, first.field, first.message)
        self.errors = tuple(errors)


class DuplicateRecordError(FatalAPIError):
    """A 409: the value of `field` is already used by the record `existing_id`."""

    def __init__(self, message: str, *, field: str, existing_id: int | None) -> None:
        super().__init__(message, status=409)
        self.field = field
        self.existing_id = existing_id


class WebhookSignatureError(ConnectorError):
    """A webhook delivery that is not signed by Parts Pim, or too old to trust."""


def _field_errors(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get(contract.ERRORS_FIELD) if isinstance(body, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def jsonable(value: Any) -> Any:
    """A request body as the contract wants it: amounts as decimal strings, dates as ISO text.

    Flows hand over Decimal and date values (the canonical model never uses floats); JSON has
    neither, and a float would round prices.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def api_root(base_url: str) -> str:
    """The API's root for a connection's base URL, which may be the host (`http://pim:8101`)
    or the API itself (`http://pim:8101/api/v1`), as the sandbox's banner shows both."""
    host = base_url.rstrip("/").removesuffix(contract.API_PREFIX).rstrip("/")
    return host + contract.API_PREFIX


class PartsPimClient(ApiClient):
    """One Parts Pim connection. Paths are relative to the API prefix (`/products`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        limits: ClientLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "",
    ) -> None:
        super().__init__(
            api_root(base_url),
            limits=limits,
            transport=transport,
            name=name,
        )
        self.__api_key = api_key

    def __repr__(self) -> str:
        return f"PartsPimClient({self.base_url!r})"

    async def auth_headers(self) -> dict[str, str]:
        return {contract.API_KEY_HEADER: self.__api_key}

    def validate_response(self, response: httpx.Response) -> None:
        status = response.status_code
        if status not in (409, 422):
            super().validate_response(response)
            return
        where = f"{response.request.method} {response.request.url.path}"
        errors = _field_errors(response)
        if status == 422:
            found = [
                FieldError(str(e.get("field") or "(record)"), str(e.get("message") or "invalid"))
                for e in errors
            ] or [FieldError("(record)", api_message(response))]
            raise PartsPimValidationError(where, found)
        first = errors[0] if errors else {}
        existing = first.get(contract.EXISTING_ID_FIELD)
        raise DuplicateRecordError(
            f"{where}: HTTP 409: {first.get('field')} {first.get('message')}",
            field=str(first.get("field") or ""),
            existing_id=existing if isinstance(existing, int) else None,
        )

    async def pages(
        self, path: str, *, filters: Mapping[str, str] | None = None, page_size: int | None = None
    ) -> AsyncIterator[list[Record]]:
        """Every page of a listing, following `next_cursor` until it is null."""
        size = min(page_size or contract.MAX_PAGE_SIZE, contract.MAX_PAGE_SIZE)
        params: dict[str, str] = {**(filters or {}), contract.LIMIT_PARAM: str(size)}
        guard = PageGuard(f"GET {path}", self.limits.max_pages)
        kind = f"GET {path.strip('/')}"
        while True:
            response = await self.send("GET", path, kind=kind, params=params)
            body = response.json()
            yield list(body[contract.DATA_FIELD])
            cursor = body.get(contract.NEXT_CURSOR_FIELD)
            if not cursor:
                return
            guard.advance(cursor)
            params[contract.CURSOR_PARAM] = cursor

    async def get_json(self, path: str, *, kind: str) -> Any:
        return (await self.send("GET", path, kind=kind)).json()

    async def create(self, path: str, body: Record) -> Record:
        """POST: not idempotent, so an uncertain failure raises AmbiguousWriteError."""
        kind = f"POST {path.strip('/')}"
        response = await self.send("POST", path, kind=kind, json=jsonable(body), idempotent=False)
        result: Record = response.json()
        return result

    async def update(self, path: str, record_id: object, body: Record) -> Record:
        """PATCH with absolute values: sending it twice gives the same record, so it retries."""
        kind = f"PATCH {path.strip('/')}/:id"
        response = await self.send("PATCH", f"{path}/{record_id}", kind=kind, json=jsonable(body))
        result: Record = response.json()
        return result

    async def put_stock(self, rows: Sequence[Record]) -> list[Record]:
        body = {contract.DATA_FIELD: jsonable(list(rows))}
        response = await self.send("PUT", contract.STOCK_PATH, kind="PUT stock", json=body)
        return list(response.json()[contract.DATA_FIELD])

    async def subscribe(self, url: str, events: Sequence[str]) -> Record:
        """POST /webhooks; the answer holds the subscription's `secret` (shown only once)."""
        body = {"url": url, "events": list(events)}
        response = await self.send(
            "POST", contract.WEBHOOKS_PATH, kind="POST webhooks", json=body, idempotent=False
        )
        result: Record = response.json()
        return result

    async def unsubscribe(self, webhook_id: str) -> None:
        """DELETE /webhooks/{id}; a subscription already gone counts as unsubscribed."""
        try:
            await self.send(
                "DELETE", f"{contract.WEBHOOKS_PATH}/{webhook_id}", kind="DELETE webhooks/:id"
            )
        except FatalAPIError as error:
            if error.status != 404:
                raise


def verify_webhook(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_s: float = contract.SIGNATURE_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery's signature and age; return the parsed event.

    `headers` must look names up case-insensitively (httpx/Starlette headers do). The signature is
    compared in constant time; a delivery older (or newer) than `tolerance_s` is refused so a
    captured delivery cannot be replayed later. Within that window a replay passes this check:
    the receiver refuses it by the event's `id` (signed, unlike the delivery header), which it
    accepts once (koppel.services.webhooks).
    """
    stamp = headers.get(contract.TIMESTAMP_HEADER)
    signature = headers.get(contract.SIGNATURE_HEADER)
    if not stamp or not signature:
        raise WebhookSignatureError("webhook delivery without signature or timestamp header")
    try:
        sent_at = int(stamp)
    except ValueError:
        raise WebhookSignatureError("webhook timestamp is not a number") from None
    moment = time.time() if now is None else now
    if abs(moment - sent_at) > tolerance_s:
        raise WebhookSignatureError(
            f"webhook timestamp is {abs(moment - sent_at):.0f}s off (tolerance {tolerance_s:g}s)"
        )
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"sha256={digest}".encode(), signature.encode()):
        raise WebhookSignatureError("webhook signature does not match the body")
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookSignatureError("webhook body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"]:
        raise WebhookSignatureError("webhook body has no delivery id")
    return event


__all__ = [
    "DuplicateRecordError",
    "FieldError",
    "PartsPimClient",
    "PartsPimValidationError",
    "WebhookSignatureError",
    "api_root",
    "jsonable",
    "verify_webhook",
]
