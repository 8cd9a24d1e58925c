"""AccountView.Net Web API v3 over HTTP: OAuth2 with rotating refresh tokens, paged reads, posts.

The refresh token changes on every refresh and the old one stops working, so a refresh is done
by one holder of the connection at a time (`CredentialStore.exclusive`: across tasks, threads and
processes), starts from the credentials as stored (another holder may have refreshed them: then
their access token is used, not a second refresh), and stores the new credentials before anything
uses them. POST /token is never sent again after an answer that may have been lost: the token may
already be spent. A refused refresh token means the grant is gone (`GrantLost`, and the store marks
the connection). Secrets are SecretStr: they never show in a repr, log or error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from koppel.connectors.accountview.dictionary import table_fields
from koppel.connectors.base import ApiClient, ClientLimits, PageGuard, Record, api_message
from koppel.connectors.credentials import CredentialStore, MemoryCredentials
from koppel.connectors.errors import (
    AmbiguousWriteError,
    AuthenticationError,
    ConnectorError,
    FatalAPIError,
    GrantLost,
    RefreshAnswerLost,
)

log = logging.getLogger(__name__)

AV_TIMEZONE = ZoneInfo("Europe/Amsterdam")
"""AccountView datetimes are zone-less local time of a Dutch installation (assumed)."""

MAX_PAGE_SIZE = 1000
"""The sandbox refuses larger pages (assumed, as the real maximum is unknown)."""
LIST_SEPARATOR = ","
"""FilterIsListOfValues separator (assumed; see the sandbox's assumptions)."""

# The sandbox's (assumed) row error text: "SO_LINE row 2 (RowId 2, HeaderId 1): field X: rule".
_ROW_ERROR = re.compile(
    r"^(?P<table>[A-Z_0-9]+) row (?P<row>\d+) \(RowId (?P<row_id>[^,)]*)"
    r"(?:, HeaderId (?P<header_id>[^)]*))?\): field (?P<field>[A-Za-z_0-9]+): (?P<rule>.*)$",
    re.DOTALL,
)
_TOKEN_PATH = "/token"
SCOPES = "readaccountviewdata updateaccountviewdata deleteaccountviewdata"
"""What Koppel asks for when a connection is authorised: read, update and delete data."""


class AccountViewCredentials(BaseModel):
    """What a connection stores; secrets are SecretStr so no repr or log shows them."""

    model_config = ConfigDict(extra="ignore")

    base_url: str
    client_id: str
    client_secret: SecretStr
    company_id: str
    refresh_token: SecretStr | None = None
    """None until the connection is authorised (`koppel connection authorize`)."""
    access_token: SecretStr | None = None
    expires_at: float | None = None
    """Epoch seconds when the access token expires."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AccountViewCredentials:
        """From stored credentials or a token answer (`expires_in` becomes `expires_at`)."""
        data = dict(values)
        if data.get("expires_at") is None and data.get("expires_in") is not None:
            data["expires_at"] = time.time() + float(data["expires_in"])
        return cls.model_validate(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the credential store (which encrypts them)."""
        return {
            "base_url": self.base_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
            "company_id": self.company_id,
            "refresh_token": self.refresh_token.get_secret_value() if self.refresh_token else None,
            "access_token": self.access_token.get_secret_value() if self.access_token else None,
            "expires_at": self.expires_at,
        }


class AccountViewError(FatalAPIError):
    """An AccountViewError body; `row`/`field` are set when the message names a posted row."""

    def __init__(self, where: str, text: str, *, status: int | None) -> None:
        super().__init__(f"{where}: HTTP {status}: {text}", status=status)
        match = _ROW_ERROR.match(text)
        self.table = match["table"] if match else None
        self.row = int(match["row"]) if match else None
        self.row_id = match["row_id"] if match else None
        self.header_id = match["header_id"] if match else None
        self.field = match["field"].upper() if match else None
        self.rule = match["rule"] if match else text


@dataclass(frozen=True)
class Filter:
    """One numbered filter of GET /accountviewdata."""

    field: str
    value: str | Sequence[str]
    operator: str = "Equal"
    value_type: str = "C"

    def params(self, n: int) -> dict[str, str]:
        is_list = not isinstance(self.value, str)
        value = LIST_SEPARATOR.join(self.value) if not isinstance(self.value, str) else self.value
        return {
            f"FilterControlSource{n}": self.field,
            f"FilterOperator{n}": self.operator,
            f"FilterValueType{n}": self.value_type,
            f"FilterValue{n}": value,
            f"FilterIsListOfValues{n}": "true" if is_list else "false",
        }


def foxpro_datetime(moment: datetime) -> str:
    """`{^2020-01-01 12:00:00}`, the literal date filters take."""
    return "{^" + moment.strftime("%Y-%m-%d %H:%M:%S") + "}"


def _json_value(value: Any) -> Any:
    """A value as posted: datetimes always in AccountView's local time, without a zone."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        local = value.astimezone(AV_TIMEZONE) if value.tzinfo is not None else value
        return local.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%dT00:00:00")
    return value


class AccountViewClient(ApiClient):
    """One AccountView connection (one company)."""

    def __init__(
        self,
        credentials: Mapping[str, Any] | AccountViewCredentials,
        *,
        credential_store: CredentialStore | None = None,
        limits: ClientLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "",
    ) -> None:
        if not isinstance(credentials, AccountViewCredentials):
            credentials = AccountViewCredentials.from_mapping(credentials)
        super().__init__(credentials.base_url, limits=limits, transport=transport, name=name)
        self._credentials = credentials
        self._store = credential_store or MemoryCredentials(credentials.to_dict())
        self._refresh_lock = asyncio.Lock()
        self._lifetime_s: float | None = None

    def __repr__(self) -> str:
        return f"AccountViewClient({self.base_url!r}, company={self.company_id!r})"

    @property
    def company_id(self) -> str:
        return self._credentials.company_id

    # -- auth --------------------------------------------------------------------------------

    def _token_is_fresh(self) -> bool:
        creds = self._credentials
        if creds.access_token is None or creds.expires_at is None:
            return creds.access_token is not None
        margin = min(30.0, (self._lifetime_s or 120.0) / 4)
        return creds.expires_at - margin > time.time()

    async def auth_headers(self) -> dict[str, str]:
        if not self._token_is_fresh():
            await self._renew(self._credentials.access_token)
        token = self._credentials.access_token
        assert token is not None
        return {
            "Authorization": f"Bearer {token.get_secret_value()}",
            "x-company": self.company_id,
            "Accept": "application/json",
        }

    async def refresh_auth(self) -> bool:
        await self._renew(self._credentials.access_token)
        return True

    async def _renew(self, stale: SecretStr | None) -> None:
        """A usable access token instead of `stale`: one a holder got since, or a refresh."""
        async with self._refresh_lock:
            if self._credentials.access_token != stale and self._token_is_fresh():
                return  # another task of this client renewed it
            async with self._store.exclusive():
                stored = AccountViewCredentials.from_mapping(
                    {**await self._store.load(), "base_url": self._credentials.base_url}
                )
                if stored.refresh_token != self._credentials.refresh_token:
                    self._credentials = stored  # another holder refreshed: its tokens are ours
                    if stored.access_token != stale and self._token_is_fresh():
                        return
                await self._refresh()

    async def _refresh(self) -> None:
        """Trade the refresh token for new tokens; store them before they are used."""
        creds = self._credentials
        if creds.refresh_token is None:
            reason = "the connection has no refresh token: it has not been authorised yet"
            await self._store.grant_lost(reason)
            raise GrantLost(reason)
        await self._token_request(
            {
                "grant_type": "refresh_token",
                "refresh_token": creds.refresh_token.get_secret_value(),
                "client_id": creds.client_id,
                "client_secret": creds.client_secret.get_secret_value(),
            }
        )

    async def authorize(self, code: str, redirect_uri: str) -> None:
        """Trade an authorization code (from the login page's redirect) for a new grant; the
        tokens are stored before anything uses them."""
        creds = self._credentials
        await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": creds.client_id,
                "client_secret": creds.client_secret.get_secret_value(),
            }
        )

    async def _token_request(self, form: dict[str, str]) -> None:
        creds = self._credentials
        try:
            # Not idempotent: after an answer that may be lost the token may be spent, and a
            # second try with it would be refused (or, on stricter servers, revoke the grant).
            response = await self.send(
                "POST",
                "token",
                kind="POST token",
                data=form,
                authenticated=False,
                idempotent=False,
            )
        except AmbiguousWriteError as error:
            raise RefreshAnswerLost(
                f"the answer to AccountView's token request was lost ({error}); AccountView "
                "may have rotated the refresh token. It is not sent again now: the next run "
                "tries the stored token once, and if AccountView refuses it, the connection "
                "must be authorised again"
            ) from None
        except GrantLost as error:
            await self._store.grant_lost(str(error))
            raise
        answer = _body(response)
        if not isinstance(answer, dict) or not answer.get("access_token"):
            raise AuthenticationError("AccountView's token answer has no access_token")
        expires_in = answer.get("expires_in")
        self._lifetime_s = float(expires_in) if expires_in is not None else None
        new_refresh = answer.get("refresh_token")
        renewed = creds.model_copy(
            update={
                "access_token": SecretStr(str(answer["access_token"])),
                "refresh_token": SecretStr(str(new_refresh))
                if new_refresh
                else creds.refresh_token,
                "expires_at": None if expires_in is None else time.time() + float(expires_in),
            }
        )
        await self._store.save(renewed.to_dict())
        self._credentials = renewed

    # -- responses ---------------------------------------------------------------------------

    def validate_response(self, response: httpx.Response) -> None:
        """An AccountViewError body is an error whatever the status (one client checks 2xx)."""
        status = response.status_code
        where = f"{response.request.method} {response.request.url.path}"
        if response.request.url.path.endswith(_TOKEN_PATH) and status in (400, 401):
            body = _body(response)
            refused = body.get("error") if isinstance(body, dict) else None
            if refused == "invalid_grant":
                raise GrantLost(
                    f"AccountView refused the refresh token ({where}: HTTP {status}: "
                    f"{api_message(response)}): the authorisation is gone (revoked, expired, "
                    "or spent by a refresh whose answer was lost)",
                    status=status,
                )
            raise AuthenticationError(
                f"{where}: AccountView refused the credentials (HTTP {status}: "
                f"{api_message(response)}); check client_id and client_secret",
                status=status,
            )
        body = _body(response, keep=True)
        message = body.get("ErrorMessage") if isinstance(body, dict) else None
        if not message or status in (429,) or status >= 500:
            super().validate_response(response)
            return
        if status in (401, 403):
            raise AuthenticationError(
                f"{where}: AccountView refused the credentials (HTTP {status}: {message}); "
                "authorise the connection again or check the company id",
                status=status,
            )
        raise AccountViewError(where, str(message), status=status)

    # -- typed helpers -----------------------------------------------------------------------

    async def companies(self) -> list[dict[str, Any]]:
        response = await self.send("GET", "companies", kind="GET companies")
        body = _body(response)
        return list(body) if isinstance(body, list) else []

    async def pages(
        self,
        business_object: str,
        *,
        table: str,
        key_field: str,
        filters: Sequence[Filter] = (),
        match_any: bool = False,
        fields: Sequence[str] | None = None,
        page_size: int = 100,
        after: str | None = None,
    ) -> AsyncIterator[dict[str, list[Record]]]:
        """Every page (table-keyed, detail tables beside the main one), keyset paged on lastKey.

        Stops on a short page. A full last page is followed by one more call, whose answer ends
        the read whether it is an empty list, an error body or a 404: what AccountView answers
        there is not known. A request without lastKey that fails is an error. `after` starts
        after that key, as a resumed run does.
        """
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        base: dict[str, str] = {"BusinessObject": business_object, "PageSize": str(page_size)}
        for n, flt in enumerate(filters, start=1):
            base.update(flt.params(n))
        if match_any:
            base["matchAnyFilter"] = "true"
        if fields:
            base["Fields"] = ",".join(fields)
        guard = PageGuard(f"AccountView {business_object}", self.limits.max_pages)
        last_key: str | None = after
        while True:
            params = dict(base) if last_key is None else {**base, "lastKey": last_key}
            try:
                response = await self.send(
                    "GET",
                    "accountviewdata",
                    kind=f"GET accountviewdata {business_object}",
                    params=params,
                )
            except FatalAPIError as error:
                if last_key is None or not _means_no_more_rows(error):
                    raise
                log.debug(
                    "AccountView %s after %r: %s; no more rows", business_object, last_key, error
                )
                return
            body = _body(response)
            if not isinstance(body, dict):
                raise FatalAPIError(f"AccountView {business_object}: the answer is not an object")
            rows = body.get(table) or []
            if rows:
                yield body
            if len(rows) < page_size:
                return
            last_key = str(rows[-1][key_field])
            guard.advance(last_key)

    async def post(
        self,
        business_object: str,
        table: str,
        rows: Sequence[Record],
        *,
        detail_table: str | None = None,
        idempotent: bool = False,
    ) -> dict[str, list[Record]]:
        """POST several rows (all with the same fields); each may carry its detail rows under
        the detail table's name. Returns the echoed rows, table-keyed."""
        header_fields = [f for f in rows[0] if f != detail_table]
        if any(set(r) - {detail_table} != set(header_fields) for r in rows):
            raise ValueError("every posted row must have the same fields")
        types = table_fields()[table]
        definition = {
            "Name": table,
            "Fields": [{"Name": "RowId", "FieldType": "C"}]
            + [{"Name": f, "FieldType": types[f].type} for f in header_fields],
        }
        data = []
        for i, r in enumerate(rows, start=1):
            values: list[Any] = [str(i)]
            for f in header_fields:  # one loop, no call for a text: this runs for every value
                value = r[f]
                values.append(value if type(value) is str else _json_value(value))
            data.append({"Values": values})
        body: dict[str, Any] = {
            "BookDate": "",
            "BusinessObject": business_object,
            "Table": {"Definition": definition},
            "TableData": {"Data": {"Rows": data}},
        }
        if detail_table is not None:
            lines = [
                (i, line) for i, r in enumerate(rows, start=1) for line in r.get(detail_table, [])
            ]
            line_fields: list[str] = []
            for _, line in lines:
                line_fields += [f for f in line if f not in line_fields]
            detail_types = table_fields()[detail_table]
            body["Table"]["DetailDefinitions"] = [
                {
                    "Name": detail_table,
                    "Fields": [
                        {"Name": "RowId", "FieldType": "C"},
                        {"Name": "HeaderId", "FieldType": "C"},
                    ]
                    + [{"Name": f, "FieldType": detail_types[f].type} for f in line_fields],
                }
            ]
            body["TableData"]["DetailData"] = [
                {
                    "Rows": [
                        {
                            "Values": [
                                str(n),
                                str(i),
                                *(_json_value(line.get(f, "")) for f in line_fields),
                            ]
                        }
                        for n, (i, line) in enumerate(lines, start=1)
                    ]
                }
            ]
        response = await self.send(
            "POST",
            "accountviewdata",
            kind=f"POST accountviewdata {business_object}",
            json=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
            idempotent=idempotent,
        )
        answer = _body(response)
        if not isinstance(answer, dict):
            raise ConnectorError(f"AccountView {business_object}: the answer is not an object")
        return answer


def _means_no_more_rows(error: FatalAPIError) -> bool:
    """A refused page after a full one: 404, or an AccountViewError body (a refused login is
    an AuthenticationError, neither of these)."""
    return error.status == 404 or isinstance(error, AccountViewError)


_DECODED: weakref.WeakKeyDictionary[httpx.Response, Any] = weakref.WeakKeyDictionary()
"""A body `validate_response` decoded, until the caller reads it: every answer is decoded to
look for an AccountViewError, and the caller then reads the same body (every page and every
post's echoed rows were decoded twice, with a Decimal made per number). Taken out on that read,
so no body lives longer than its caller holds it."""
_UNREAD = object()


def _body(response: httpx.Response, *, keep: bool = False) -> Any:
    """The JSON body with exact decimals, or None when it is not JSON; `keep` holds it for the
    next read of the same response."""
    body = _DECODED.pop(response, _UNREAD)
    if body is _UNREAD:
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            body = None
    if keep:
        _DECODED[response] = body
    return body


__all__ = [
    "AV_TIMEZONE",
    "LIST_SEPARATOR",
    "MAX_PAGE_SIZE",
    "SCOPES",
    "AccountViewClient",
    "AccountViewCredentials",
    "AccountViewError",
    "Filter",
    "foxpro_datetime",
]
