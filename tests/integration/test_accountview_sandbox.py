"""The AccountView sandbox over real HTTP: OAuth, companies, filters, paging, posts, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.common import SandboxServer

DOCS = Path(__file__).parents[2] / "docs" / "connectors" / "accountview.md"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AccountViewSandbox, str]]:
    sandbox = AccountViewSandbox()
    sandbox.generate(300)
    with SandboxServer(sandbox.asgi_app()) as server:
        yield sandbox, server.url


@pytest.fixture
def api(served: tuple[AccountViewSandbox, str]) -> Iterator[httpx.Client]:
    sandbox, url = served
    creds = sandbox.credentials(url)
    headers = {"Authorization": f"Bearer {creds['access_token']}", "x-company": creds["company_id"]}
    with httpx.Client(base_url=creds["base_url"], headers=headers) as client:
        yield client


def post_body(table: str, bo: str, fields: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "BookDate": "",
        "BusinessObject": bo,
        "Table": {
            "Definition": {
                "Name": table,
                "Fields": [{"Name": f, "FieldType": "C"} for f in ["RowId", *fields]],
            }
        },
        "TableData": {
            "Data": {"Rows": [{"Values": [str(i), *row]} for i, row in enumerate(rows, start=1)]}
        },
    }


def test_oauth_code_flow_rotation_and_expiry(served: tuple[AccountViewSandbox, str]) -> None:
    sandbox, url = served
    creds = sandbox.credentials(url)
    redirect = "http://localhost:9999/callback"
    with httpx.Client(base_url=url) as http:
        form = http.get(
            "/ams/authorize.aspx",
            params={
                "response_type": "code",
                "client_id": creds["client_id"],
                "redirect_uri": redirect,
                "scope": "readaccountviewdata",
                "state": "xyz",
            },
        )
        assert form.status_code == 200 and "<form" in form.text
        answer = http.post(
            "/ams/authorize.aspx",
            data={
                "client_id": creds["client_id"],
                "redirect_uri": redirect,
                "state": "xyz",
                "decision": "allow",
            },
        )
        assert answer.status_code == 302
        query = parse_qs(urlparse(answer.headers["location"]).query)
        assert query["state"] == ["xyz"]
        token_url = creds["base_url"] + "/token"
        secret = {"client_id": creds["client_id"], "client_secret": creds["client_secret"]}
        first = http.post(
            token_url,
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": redirect,
                **secret,
            },
        ).json()
        assert first["token_type"] == "bearer" and first["expires_in"] > 0
        reused = http.post(
            token_url,
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": redirect,
                **secret,
            },
        )
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        second = http.post(
            token_url,
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], **secret},
        )
        assert second.status_code == 200
        assert second.json()["refresh_token"] != first["refresh_token"]
        old = http.post(
            token_url,
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], **secret},
        )
        assert old.status_code == 400
        wrong = http.post(
            token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": creds["client_id"],
                "client_secret": "nope",
                "refresh_token": second.json()["refresh_token"],
            },
        )
        assert wrong.status_code == 401
        bearer = {"Authorization": f"Bearer {second.json()['access_token']}"}
        assert http.get(creds["base_url"] + "/companies", headers=bearer).status_code == 200
        sandbox.expire_access_tokens()
        expired = http.get(creds["base_url"] + "/companies", headers=bearer)
        assert expired.status_code == 401
        assert expired.json()["ErrorType"] == "AccountViewError"


def test_companies_isolate_data(api: httpx.Client) -> None:
    companies = api.get("/companies").json()
    assert len(companies) == 2 and {"Id", "Code", "Description"} <= set(companies[0])
    counts = []
    for company in companies:
        rows = api.get(
            "/accountviewdata",
            params={"BusinessObject": "AK1", "PageSize": 1000},
            headers={"x-company": company["Id"]},
        ).json()["ARTICLE"]
        counts.append(len(rows))
    assert counts == [300, 30]
    assert (
        api.get(
            "/accountviewdata", params={"BusinessObject": "AK1"}, headers={"x-company": "unknown"}
        ).status_code
        == 403
    )


def test_filters_fields_and_case_insensitivity(api: httpx.Client) -> None:
    params = {
        "businessobject": "ar1",
        "PAGESIZE": "1000",
        "fields": "contact.sub_nr, cnt_code",
        "FilterControlSource1": "CNT_CODE",
        "FilterOperator1": "equal",
        "FilterValueType1": "C",
        "FilterValue1": "DE",
    }
    body = api.get("/AccountViewData", params=params).json()
    assert list(body) == ["CONTACT", "USR_LINK"]
    rows = body["CONTACT"]
    assert rows and all(r["CNT_CODE"] == "DE" for r in rows)
    assert set(rows[0]) == {"SUB_NR", "CNT_CODE", "EXT_KEY", "CONTACT_Id"}
    listed = api.get(
        "/accountviewdata",
        params={
            "BusinessObject": "AK1",
            "FilterControlSource1": "ART_CODE",
            "FilterValue1": "100001, 100002,NOPE",
            "FilterIsListOfValues1": "true",
        },
    ).json()["ARTICLE"]
    assert sorted(r["ART_CODE"] for r in listed) == ["100001", "100002"]
    contains = api.get(
        "/accountviewdata",
        params={
            "BusinessObject": "AK1",
            "PageSize": 1000,
            "FilterControlSource1": "ART_DESC1",
            "FilterOperator1": "Contains",
            "FilterValue1": "RVS",
        },
    ).json()["ARTICLE"]
    assert contains and all("RVS" in r["ART_DESC1"] for r in contains)
    either = api.get(
        "/accountviewdata",
        params={
            "BusinessObject": "AK1",
            "PageSize": 1000,
            "matchAnyFilter": "true",
            "FilterControlSource1": "ART_CODE",
            "FilterValue1": "100001",
            "FilterControlSource2": "ART_CODE",
            "FilterValue2": "100002",
        },
    ).json()["ARTICLE"]
    assert len(either) == 2
    not_equal = api.get(
        "/accountviewdata",
        params={
            "BusinessObject": "VA1",
            "FilterControlSource1": "VAT_CODE",
            "FilterOperator1": "NotEqual",
            "FilterValue1": "2",
        },
    ).json()["VAT"]
    assert "2" not in {r["VAT_CODE"] for r in not_equal} and len(not_equal) == 4


def test_date_filter_and_incremental_changes(
    served: tuple[AccountViewSandbox, str], api: httpx.Client
) -> None:
    sandbox, _ = served
    edited = sandbox.edit("ARTICLE", "100005", {"ART_DESC1": "Handmatig gewijzigd"})
    stamp = edited["CNG_DATE"].replace("T", " ")
    rows = api.get(
        "/accountviewdata",
        params={
            "BusinessObject": "AK1",
            "FilterControlSource1": "CNG_DATE",
            "FilterOperator1": "DateOnOrAfterDate",
            "FilterValueType1": "T",
            "FilterValue1": "{^" + stamp + "}",
        },
    ).json()["ARTICLE"]
    assert "100005" in {r["ART_CODE"] for r in rows}
    assert all(r["CNG_DATE"] >= edited["CNG_DATE"] for r in rows)


def test_last_key_paging_is_exclusive_and_complete(api: httpx.Client) -> None:
    seen: list[str] = []
    last_key = None
    while True:
        params = {"BusinessObject": "AK1", "PageSize": "100"}
        if last_key:
            params["lastKey"] = last_key
        rows = api.get("/accountviewdata", params=params).json()["ARTICLE"]
        seen += [r["ART_CODE"] for r in rows]
        if len(rows) < 100:
            break
        last_key = rows[-1]["ART_CODE"]
    assert len(seen) == len(set(seen)) and len(seen) >= 300
    contacts = api.get(
        "/accountviewdata", params={"BusinessObject": "AR1", "PageSize": 2, "lastKey": "10000"}
    ).json()["CONTACT"]
    assert [c["SUB_NR"] for c in contacts] == ["10001", "10002"]
    assert (
        api.get("/accountviewdata", params={"BusinessObject": "AK1", "PageSize": 5000}).status_code
        == 400
    )


def test_post_inserts_updates_and_assigns_numbers(
    served: tuple[AccountViewSandbox, str], api: httpx.Client
) -> None:
    sandbox, _ = served
    body = post_body(
        "CONTACT",
        "AR1",
        ["ACCT_NR", "ACCT_NAME", "SRC_CODE", "MAIL_BUS"],
        [["1210", "Nieuwe Klant BV", "NIEUW", "nieuw@example.nl"]],
    )
    inserted = api.post("/accountviewdata", json=body).json()["CONTACT"][0]
    assert inserted["SUB_NR"].isdigit() and inserted["INP_DATE"] == inserted["CNG_DATE"]
    update = post_body("CONTACT", "AR1", ["SUB_NR", "CITY"], [[inserted["SUB_NR"], "Zwolle"]])
    lower_keys = {
        "businessobject": "AR1",
        "table": {
            "definition": {
                "name": "CONTACT",
                "fields": [
                    {"name": f["Name"], "fieldtype": "C"}
                    for f in update["Table"]["Definition"]["Fields"]
                ],
            }
        },
        "tabledata": {
            "data": {"rows": [{"values": v["Values"]} for v in update["TableData"]["Data"]["Rows"]]}
        },
    }
    updated = api.post("/accountviewdata", json=lower_keys).json()["CONTACT"][0]
    assert updated["SUB_NR"] == inserted["SUB_NR"] and updated["CITY"] == "Zwolle"
    assert updated["ACCT_NAME"] == "Nieuwe Klant BV" and updated["CNG_NR"] == 2
    assert len(sandbox.rows("CONTACT", MAIL_BUS="nieuw@example.nl")) == 1


def test_post_header_and_detail(served: tuple[AccountViewSandbox, str], api: httpx.Client) -> None:
    sandbox, _ = served
    body = {
        "BusinessObject": "SO1",
        "Table": {
            "Definition": {
                "Name": "SO_HDR",
                "Fields": [
                    {"Name": "RowId", "FieldType": "C"},
                    {"Name": "RPL_INV", "FieldType": "C"},
                    {"Name": "ORD_REF", "FieldType": "C"},
                ],
            },
            "DetailDefinitions": [
                {
                    "Name": "SO_LINE",
                    "Fields": [
                        {"Name": "RowId", "FieldType": "C"},
                        {"Name": "ART_CODE", "FieldType": "C"},
                        {"Name": "ORD_QTY", "FieldType": "N"},
                        {"Name": "HeaderId", "FieldType": "C"},
                    ],
                }
            ],
        },
        "TableData": {
            "Data": {
                "Rows": [{"Values": [1, "10001", "REF-A"]}, {"Values": [2, "10002", "REF-B"]}]
            },
            "DetailData": [
                {
                    "Rows": [
                        {"Values": [1, "100001", 2, 1]},
                        {"Values": [2, "100002", "3", 2]},
                        {"Values": [3, "100003", 1, 2]},
                    ]
                }
            ],
        },
    }
    echo = api.post("/accountviewdata", json=body).json()
    assert [h["ORD_REF"] for h in echo["SO_HDR"]] == ["REF-A", "REF-B"]
    assert [(line["SO_HDR_Id"], line["ART_CODE"]) for line in echo["SO_LINE"]] == [
        (0, "100001"),
        (1, "100002"),
        (1, "100003"),
    ]
    order = echo["SO_HDR"][1]
    assert len(sandbox.rows("SO_LINE", ORD_NR=order["ORD_NR"])) == 2


def test_one_bad_row_rejects_the_post_with_the_field_named(
    served: tuple[AccountViewSandbox, str], api: httpx.Client
) -> None:
    sandbox, _ = served
    before = sandbox.count("ARTICLE")
    body = post_body(
        "ARTICLE", "AK1", ["ART_CODE", "ART_DESC1"], [["GOED1", "Goed"], ["fout", "Kleine letters"]]
    )
    answer = api.post("/accountviewdata", json=body)
    assert answer.status_code == 200
    error = answer.json()
    assert error["ErrorType"] == "AccountViewError" and error["ErrorNumbers"] is None
    assert "row 2" in error["ErrorMessage"] and "ART_CODE" in error["ErrorMessage"]
    assert sandbox.count("ARTICLE") == before
    missing = api.post(
        "/accountviewdata", json=post_body("ARTICLE", "AK1", ["ART_CODE"], [["ZONDEROMSCHR"]])
    ).json()
    assert "ART_DESC1" in missing["ErrorMessage"] and "mandatory" in missing["ErrorMessage"]
    unknown_ref = api.post(
        "/accountviewdata",
        json=post_body(
            "ARTICLE", "AK1", ["ART_CODE", "ART_DESC1", "AG_CODE"], [["X1", "X", "ZZZZZ"]]
        ),
    ).json()
    assert "AG_CODE" in unknown_ref["ErrorMessage"]
    sandbox.validation_error_status = 422
    try:
        assert api.post("/accountviewdata", json=body).status_code == 422
    finally:
        sandbox.validation_error_status = 200


def test_dictionary_and_business_objects(api: httpx.Client) -> None:
    bos = {bo["Code"]: bo for bo in api.get("/accountviewsystembusinessobjects").json()}
    assert {"AR1", "ADDR", "AK1", "AG1", "SO1", "VA1"} <= set(bos)
    assert bos["VA1"]["InsertAllowed"] is False
    fields = api.get("/accountviewfields", params={"BusinessObject": "AR1"}).json()["DCT_FLD"]
    sub_nr = next(f for f in fields if f["FIELD_NAME"] == "SUB_NR")
    assert sub_nr["FIELD_LEN"] == 10 and sub_nr["INP_MAND"] and sub_nr["FLD_FMT"] == "!"


def test_the_fixture_example_in_the_docs_loads(tmp_path: Path) -> None:
    page = DOCS.read_text(encoding="utf-8")
    example = page.split("### Fixtures", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    fixture = tmp_path / "fixture.json"
    fixture.write_text(example, encoding="utf-8")
    sandbox = AccountViewSandbox()
    sandbox.load_fixture(fixture)
    [company] = sandbox.companies()
    assert company["Code"] == "DEMO1"
    [debtor] = sandbox.rows("CONTACT")
    assert (debtor["SUB_NR"], debtor["ACCT_NR"]) == ("10000", "1210")
    [order] = sandbox.rows("SO_HDR")
    assert [line["ART_CODE"] for line in sandbox.rows("SO_LINE", ORD_NR=order["ORD_NR"])] == [
        "100001"
    ]


def test_the_numbers_a_post_leaves_to_the_sandbox_are_read_from_an_index() -> None:
    """An order posted without ORD_NR (a debtor without SUB_NR) gets the next number: read
    from an index of the digits-only codes, so a page of orders costs the same at the 5,000th
    order as at the first (a scan per order made the benchmark's sandbox its bottleneck). The
    numbers go on from the highest digits-only code, past codes with letters."""
    sandbox = AccountViewSandbox()
    sandbox.generate(20)
    debtor = sandbox.rows("CONTACT")[0]["SUB_NR"]
    line = {"ART_CODE": sandbox.rows("ARTICLE")[0]["ART_CODE"], "ORD_QTY": 1}
    sandbox.write("SO_HDR", [{"ORD_NR": "X-7", "RPL_INV": debtor, "SO_LINE": [line]}])
    asked: list[str] = []
    with sandbox.store.transaction() as conn:
        conn.set_trace_callback(asked.append)
    sandbox.write("SO_HDR", [{"RPL_INV": debtor, "SO_LINE": [line]} for _ in range(3)])
    sandbox.write("CONTACT", [{"ACCT_NR": "1210", "ACCT_NAME": "Nummer B.V.", "SRC_CODE": "N"}])
    with sandbox.store.transaction() as conn:
        conn.set_trace_callback(None)
        plans = {
            sql.split(" FROM ")[1].split()[0]: " ".join(
                str(step[-1]) for step in conn.execute(f"EXPLAIN QUERY PLAN {sql}")
            )
            for sql in asked
            if sql.startswith("SELECT MAX(CAST(")
        }
    assert set(plans) == {'"T_SO_HDR"', '"T_CONTACT"'}
    assert "USING INDEX N_SO_HDR_ORD_NR" in plans['"T_SO_HDR"'], plans
    assert "USING INDEX N_CONTACT_SUB_NR" in plans['"T_CONTACT"'], plans
    numbers = [r["ORD_NR"] for r in sandbox.rows("SO_HDR")]
    assert "X-7" in numbers
    new = sorted(int(n) for n in numbers if n.isdigit())[-3:]
    assert new == list(range(new[0], new[0] + 3))
