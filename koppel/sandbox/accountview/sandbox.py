"""`AccountViewSandbox`: the emulator as the CLI, the demo and the tests hold it."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from starlette.types import ASGIApp

from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.app import API, CaseInsensitivePaths, build_app, kind_of
from koppel.sandbox.accountview.auth import Auth
from koppel.sandbox.accountview.data import FIXTURE_ORDER, generate_company
from koppel.sandbox.accountview.dictionary import business_objects, tables
from koppel.sandbox.accountview.errors import ApiError
from koppel.sandbox.accountview.reads import rendered_rows
from koppel.sandbox.accountview.store import COMPANY, Store, key_order, quote, table_sql
from koppel.sandbox.accountview.system_data import refresh_dictionary
from koppel.sandbox.accountview.writes import PostedRow, PostedTable, PostRequest, run_post
from koppel.sandbox.common import FaultConfig, FaultMiddleware, admin_router

_DEFAULT_COMPANIES = (("DEMO1", "Koppel Demo B.V."), ("DEMO2", "Koppel Demo GmbH"))
_TIMEZONE = ZoneInfo(assumptions.TIMEZONE)


class AccountViewSandbox:
    """AccountView.Net Web API v3 on SQLite, with two companies and one registered client app."""

    name = "accountview"

    def __init__(
        self,
        db_path: str = ":memory:",
        faults: FaultConfig | None = None,
        seed: int = 0,
        *,
        access_token_lifetime_s: float = assumptions.ACCESS_TOKEN_LIFETIME_S,
        validation_error_status: int = assumptions.VALIDATION_ERROR_STATUS,
        past_last_page: assumptions.PastLastPage = assumptions.PAST_LAST_PAGE,
    ) -> None:
        self.store = Store(db_path)
        self.auth = Auth(self.store, access_token_lifetime_s=access_token_lifetime_s)
        self.client_app = self.auth.ensure_client("Koppel")
        self.validation_error_status = validation_error_status
        # What a page past the last row answers (assumptions.PAST_LAST_PAGE); tests switch it.
        self.past_last_page = past_last_page
        self.clock: Callable[[], datetime] = lambda: datetime.now(_TIMEZONE)
        if not self.companies():
            self._create_companies(
                [{"Code": c, "Description": d} for c, d in _DEFAULT_COMPANIES], seed
            )
        else:
            with self.store.transaction() as conn:
                for company in self.companies():
                    refresh_dictionary(conn, company["Id"])
        app: FastAPI = build_app(self)
        self.faults = FaultMiddleware(
            CaseInsensitivePaths(app),
            faults,
            kind_of=kind_of,
            error_body=lambda message: json.dumps(ApiError(0, message).body()).encode(),
        )
        app.include_router(admin_router(self.faults))

    # -- the common sandbox API -------------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        return self.faults

    def generate(
        self,
        products: int,
        *,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Realistic data (Faker nl_NL and de_DE): `products` articles in the first company and a
        tenth of that in the second, with VAT codes, payment terms and methods, employees,
        debtors with delivery addresses, article groups and sales orders."""
        first, *others = self.companies()
        now = self.now()
        with self.store.transaction() as conn:
            generate_company(conn, first["Id"], products, seed, now, progress)
            for offset, company in enumerate(others, start=1):
                generate_company(conn, company["Id"], max(10, products // 10), seed + offset, now)

    def load_fixture(self, path: Path) -> None:
        """Replace every company and its data with a fixture (format: docs page, "Fixtures")."""
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM companies")
            for table in tables():
                conn.execute(f"DELETE FROM {table_sql(table)}")
            self._create_companies(document["companies"], seed=0)
            for company in document["companies"]:
                company_id = company.get("Id") or self._company_by_code(company["Code"])
                data: Mapping[str, list[dict[str, Any]]] = company.get("tables", {})
                for table in FIXTURE_ORDER:
                    rows = data.get(table, [])
                    if rows:
                        self.write(table, rows, company_id=company_id, system=True)

    def credentials(self, base_url: str) -> dict[str, Any]:
        """How to connect: a fresh grant (access + refresh token), as after the OAuth login."""
        tokens = self.auth.issue_tokens(self.client_app.client_id)
        companies = self.companies()
        return {
            "base_url": base_url.rstrip("/") + API,
            "authorize_url": base_url.rstrip("/") + "/ams/authorize.aspx",
            "client_id": self.client_app.client_id,
            "client_secret": self.client_app.client_secret,
            "company_id": companies[0]["Id"],
            "company_ids": [c["Id"] for c in companies],
            "refresh_token": tokens["refresh_token"],
            "access_token": tokens["access_token"],
            "expires_in": tokens["expires_in"],
        }

    def describe(self, base_url: str) -> str:
        creds = self.credentials(base_url)
        lines = [
            "AccountView.Net Web API v3 sandbox",
            f"  API base URL   {creds['base_url']}",
            f"  OAuth login    {creds['authorize_url']}",
            f"  client id      {creds['client_id']}",
            f"  client secret  {creds['client_secret']}",
            f"  refresh token  {creds['refresh_token']}",
            "  companies (x-company header):",
        ]
        for company in self.companies():
            counts = ", ".join(
                f"{self.count(t, company_id=company['Id'])} {t}" for t in ("ARTICLE", "CONTACT")
            )
            lines.append(
                f"    {company['Id']}  {company['Code']}  {company['Description']}  ({counts})"
            )
        lines.append("  admin: /_admin/faults, /_admin/requests, /_admin/docs")
        return "\n".join(lines)

    # -- state from Python: what a user would do in AccountView, and what tests inspect ------

    def now(self) -> str:
        return self.clock().strftime(assumptions.DATETIME_FORMAT)

    def companies(self) -> list[dict[str, str]]:
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT * FROM companies ORDER BY position").fetchall()
        return [{"Id": r["id"], "Description": r["description"], "Code": r["code"]} for r in rows]

    def default_company(self) -> str:
        return self.companies()[0]["Id"]

    def post(
        self,
        company_id: str,
        request: PostRequest,
        user: str = assumptions.API_USER,
        *,
        system: bool = False,
    ) -> dict[str, Any]:
        """Carry out a parsed POST in one transaction; RowError rolls all of it back."""
        with self.store.transaction() as conn:
            return run_post(conn, company_id, request, self.now(), user, system=system)

    def write(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        company_id: str | None = None,
        system: bool = False,
    ) -> dict[str, Any]:
        """Insert or update rows as a user of AccountView would (the API's rules apply).

        A row of SO_HDR may carry its lines under "SO_LINE". `system=True` also accepts
        read-only fields (CNG_DATE, REC_ID...) as fixtures need.
        """
        bo = next(b for b in business_objects().values() if b.table == table.upper())
        headers: list[PostedRow] = []
        details: dict[str, list[PostedRow]] = {name: [] for name in bo.details}
        for position, row in enumerate(rows, start=1):
            values = {k.upper(): v for k, v in row.items() if k.upper() not in details}
            headers.append(PostedRow(position, str(position), None, values))
            for detail in details:
                for line in row.get(detail, []):
                    lines = details[detail]
                    values = {k.upper(): v for k, v in line.items()}
                    lines.append(
                        PostedRow(len(lines) + 1, str(len(lines) + 1), str(position), values)
                    )
        request = PostRequest(
            bo,
            PostedTable(tables()[bo.table], tuple(headers)),
            tuple(PostedTable(tables()[name], tuple(r)) for name, r in details.items()),
        )
        return self.post(company_id or self.default_company(), request, "SANDBOX", system=system)

    def edit(
        self, table: str, key: str, changes: Mapping[str, Any], *, company_id: str | None = None
    ) -> dict[str, Any]:
        """A manual edit of one row, found by its key (ART_CODE, SUB_NR, REC_ID...)."""
        table_def = tables()[table.upper()]
        if table_def.key is None:
            raise ValueError(f"{table_def.name} rows have no key to edit them by")
        row = {table_def.key: key, **changes}
        [written] = self.write(table, [row], company_id=company_id)[table_def.name]
        return dict(written)

    def rows(
        self, table: str, *, company_id: str | None = None, **equal: Any
    ) -> list[dict[str, Any]]:
        """Raw rows of a table as the API would show them, in key order; `equal` filters."""
        table_def = tables()[table.upper()]
        where = [f"{COMPANY} = ?", *(f"{quote(k.upper())} = ?" for k in equal)]
        with self.store.transaction() as conn:
            found = conn.execute(
                f"SELECT * FROM {table_sql(table_def.name)} WHERE {' AND '.join(where)} "
                f"ORDER BY {key_order(table_def)}",
                (company_id or self.default_company(), *equal.values()),
            ).fetchall()
        return rendered_rows(list(table_def.fields.values()), found, None, ext_key=True)

    def count(self, table: str, *, company_id: str | None = None) -> int:
        with self.store.transaction() as conn:
            row = conn.execute(
                f"SELECT COUNT(*) FROM {table_sql(table.upper())} WHERE {COMPANY} = ?",
                (company_id or self.default_company(),),
            ).fetchone()
        return int(row[0])

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now; clients must refresh."""
        self.auth.expire_access_tokens()

    # -- internals --------------------------------------------------------------------------

    def _create_companies(self, companies: Sequence[Mapping[str, Any]], seed: int) -> None:
        rng = random.Random(seed)
        with self.store.transaction() as conn:
            for position, company in enumerate(companies):
                company_id = company.get("Id") or str(
                    uuid.UUID(int=rng.getrandbits(128), version=4)
                )
                conn.execute(
                    "INSERT INTO companies VALUES (?, ?, ?, ?)",
                    (company_id, company["Code"], company["Description"], position),
                )
                refresh_dictionary(conn, company_id)

    def _company_by_code(self, code: str) -> str:
        return next(c["Id"] for c in self.companies() if c["Code"] == code)


__all__ = ["AccountViewSandbox"]
