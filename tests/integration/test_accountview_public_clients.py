"""The AccountView sandbox as the public clients see it (issue 15), over real HTTP.

Each test sends what the Go client (omniboost/go-accountview.net) or the Ruby client
(ForecastXL/accountview-ruby) sends, and checks the answer against what those clients and the
published dictionaries show; where the connector relied on the sandbox's old inventions, the
connector is tested too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from koppel.connectors.accountview import AccountViewConnector
from koppel.connectors.accountview.client import AccountViewError, Filter
from koppel.connectors.base import ClientLimits
from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.accountview.assumptions import PastLastPage
from koppel.sandbox.accountview.dictionary import published
from koppel.sandbox.common import FaultConfig, SandboxServer

FAST = ClientLimits(backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=12)
ARTICLES = 120
ERROR_KEYS = {"ErrorType", "ErrorNumbers", "ErrorMessage"}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AccountViewSandbox, str]]:
    sandbox = AccountViewSandbox()
    sandbox.generate(ARTICLES)
    with SandboxServer(sandbox.asgi_app()) as server:
        yield sandbox, server.url


@pytest.fixture
def api(served: tuple[AccountViewSandbox, str]) -> Iterator[httpx.Client]:
    sandbox, url = served
    creds = sandbox.credentials(url)
    headers = {"Authorization": f"Bearer {creds['access_token']}", "x-company": creds["company_id"]}
    with httpx.Client(base_url=creds["base_url"], headers=headers) as client:
        yield client


def connector_for(served: tuple[AccountViewSandbox, str]) -> AccountViewConnector:
    sandbox, url = served
    return AccountViewConnector(sandbox.credentials(url), limits=FAST)


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


def assert_error_body(answer: httpx.Response, status: int, *words: str) -> None:
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == ERROR_KEYS and body["ErrorType"] == "AccountViewError"
    for word in words:
        assert word in body["ErrorMessage"]


# -- 1. reference rows are keyed by their real keys; no invented REC_ID or <TABLE>_Id --------


def test_reference_rows_carry_only_published_fields_and_their_own_keys(api: httpx.Client) -> None:
    vat = api.get("/accountviewdata", params={"BusinessObject": "VA1"}).json()
    assert list(vat) == ["VAT"]
    for row in vat["VAT"]:  # the Go client's VAT struct, decoded strictly
        assert set(row) == set(published()["VAT"]) | {"EXT_KEY"}
    codes = [r["VAT_CODE"] for r in vat["VAT"]]
    assert codes == sorted(codes)
    for bo, table, key in (
        ("AK1", "ARTICLE", "ART_CODE"),
        ("AG1", "ART_GRP", "AG_CODE"),
        ("BC1", "PAY_COND", "DISC_CODE"),
        ("BW1", "PAY_MTH", "PAY_TYPE"),
        ("MW1", "EMPLOYEE", "EMP_NR"),
    ):
        rows = api.get("/accountviewdata", params={"BusinessObject": bo, "PageSize": 3}).json()
        assert rows[table], table
        for row in rows[table]:
            assert "REC_ID" not in row and f"{table}_Id" not in row, table
        after = rows[table][-1][key]
        following = api.get(
            "/accountviewdata", params={"BusinessObject": bo, "PageSize": 3, "lastKey": after}
        ).json()[table]
        assert all(r[key] > after for r in following), f"{table} pages on {key}"


def test_table_ids_only_where_the_answer_has_several_tables(api: httpx.Client) -> None:
    debtors = api.get("/accountviewdata", params={"BusinessObject": "AR1", "PageSize": 2}).json()
    assert [r["CONTACT_Id"] for r in debtors["CONTACT"]] == [0, 1]
    orders = api.get("/accountviewdata", params={"BusinessObject": "SO1", "PageSize": 2}).json()
    assert [r["SO_HDR_Id"] for r in orders["SO_HDR"]] == [0, 1]
    lines = orders["SO_LINE"]
    assert lines and all("SO_LINE_Id" not in line and "SO_HDR_Id" in line for line in lines)


async def test_connector_ids_are_the_tables_keys(served: tuple[AccountViewSandbox, str]) -> None:
    sandbox, _ = served
    connector = connector_for(served)
    try:
        vat = [r async for page in connector.read("vat_codes") for r in page]
        articles = [r async for page in connector.read("articles", page_size=50) for r in page]
        [written] = await connector.write("articles", [{"ART_CODE": "100001", "ART_TYPE": "X"}])
    finally:
        await connector.aclose()
    assert [r["VAT_CODE"] for r in vat] == [r["VAT_CODE"] for r in sandbox.rows("VAT")]
    assert [r["ART_CODE"] for r in articles] == [r["ART_CODE"] for r in sandbox.rows("ARTICLE")]
    assert written.ok and written.target_id == "100001" and not written.created


# -- 2. the page after a full last page --------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "status"),
    [(PastLastPage.EMPTY, 200), (PastLastPage.ERROR, 400), (PastLastPage.NOT_FOUND, 404)],
)
def test_sandbox_answers_past_the_last_page_as_chosen(
    served: tuple[AccountViewSandbox, str], api: httpx.Client, choice: PastLastPage, status: int
) -> None:
    sandbox, _ = served
    last = sandbox.rows("VAT")[-1]["VAT_CODE"]
    sandbox.past_last_page = choice
    try:
        past = api.get("/accountviewdata", params={"BusinessObject": "VA1", "lastKey": last})
        beyond = api.get("/accountviewdata", params={"BusinessObject": "VA1", "PageNumber": 9})
        nothing = api.get(
            "/accountviewdata",
            params={
                "BusinessObject": "VA1",
                "FilterControlSource1": "VAT_CODE",
                "FilterValue1": "Q",
            },
        )
    finally:
        sandbox.past_last_page = PastLastPage.EMPTY
    for answer in (past, beyond):
        if status == 200:
            assert answer.status_code == 200 and answer.json() == {"VAT": []}
        else:
            assert_error_body(answer, status, "no more rows")
    assert nothing.status_code == 200 and nothing.json() == {"VAT": []}


@pytest.mark.parametrize("choice", list(PastLastPage))
async def test_connector_stops_after_a_full_last_page_whatever_follows(
    served: tuple[AccountViewSandbox, str], choice: PastLastPage
) -> None:
    sandbox, _ = served
    codes = [r["VAT_CODE"] for r in sandbox.rows("VAT")]
    sandbox.past_last_page = choice
    connector = connector_for(served)
    try:
        pages = [page async for page in connector.read("vat_codes", page_size=len(codes))]
        resumed = [page async for page in connector.read("vat_codes", after=codes[-1])]
        found = await connector.lookup("vat_codes", "VAT_CODE", codes)
        calls = connector.client.calls.by_kind()["GET accountviewdata VA1"]
        with pytest.raises(AccountViewError, match="NO_SUCH"):
            async for _ in connector.client.pages(
                "VA1", table="VAT", key_field="VAT_CODE", filters=[Filter("NO_SUCH", "x")]
            ):
                pass
    finally:
        sandbox.past_last_page = PastLastPage.EMPTY
        await connector.aclose()
    assert [[r["VAT_CODE"] for r in page] for page in pages] == [codes]
    assert resumed == []
    assert sorted(r["VAT_CODE"] for r in found) == sorted(codes)
    assert calls == 4  # one full page, the page after it, the resumed read, the lookup


# -- 3. Filter= expressions ------------------------------------------------------------------


def test_filter_expressions_the_ruby_client_sends(
    served: tuple[AccountViewSandbox, str], api: httpx.Client
) -> None:
    sandbox, _ = served
    one = api.get(
        "/AccountViewData",
        params={"BusinessObject": "AK1", "PageSize": 200, "Filter": "article.art_code='100003'"},
    ).json()["ARTICLE"]
    assert [r["ART_CODE"] for r in one] == ["100003"]
    fields = api.get(
        "/AccountViewData",
        params={
            "BusinessObject": "FLD",
            "PageSize": 200,
            "Fields": "dct_fld.field_name,dct_fld.field_len,dct_fld.field_type",
            "Filter": "dct_fld.dbf_name='VAT'",
        },
    ).json()["DCT_FLD"]
    assert {f["FIELD_NAME"]: f["FIELD_LEN"] for f in fields} == {
        name: field.length for name, field in published()["VAT"].items()
    }
    objects = api.get(
        "/AccountViewData",
        params={
            "BusinessObject": "dbf",
            "PageSize": 1000,
            "Fields": "dct_file.obj_code,dct_file.dbf_desc,dct_file.dbf_name",
            "Filter": "!EMPTY(dct_file.obj_code) AND dct_file.dbf_type=2",
        },
    ).json()["DCT_FILE"]
    assert {o["OBJ_CODE"] for o in objects} == {
        "AR1",
        "ADDR",
        "AK1",
        "AG1",
        "SO1",
        "VA1",
        "BC1",
        "BW1",
        "MW1",
    }
    orders = sandbox.rows("SO_HDR")
    first, last = sorted(o["ORD_DATE"][:10] for o in orders)[len(orders) // 4 :: len(orders) // 2]
    ranged = api.get(
        "/AccountViewData",
        params={
            "BusinessObject": "SO1",
            "PageSize": 1000,
            "Filter": f"(so_hdr.ord_date >= {{^{first}}} AND so_hdr.ord_date < {{^{last}}})",
        },
    ).json()["SO_HDR"]
    expected = {o["ORD_NR"] for o in orders if first <= o["ORD_DATE"][:10] < last}
    assert expected and {o["ORD_NR"] for o in ranged} == expected


def test_filter_expressions_combine_with_numbered_filters_and_detail_tables(
    api: httpx.Client,
) -> None:
    rows = api.get(
        "/accountviewdata",
        params={
            "BusinessObject": "AK1",
            "PageSize": 1000,
            "Filter": "px_sell > 200 OR .NOT. (vat_code == '2')",
            "FilterControlSource1": "ART_DESC1",
            "FilterOperator1": "Contains",
            "FilterValue1": "RVS",
        },
    ).json()["ARTICLE"]
    assert rows
    assert all(
        "RVS" in r["ART_DESC1"] and (r["PX_SELL"] > 200 or r["VAT_CODE"] != "2") for r in rows
    )
    with_line = api.get(
        "/accountviewdata",
        params={"BusinessObject": "SO1", "PageSize": 1000, "Filter": "so_line.art_code = '100001'"},
    ).json()
    assert all(
        any(
            line["ART_CODE"] == "100001" and line["SO_HDR_Id"] == order["SO_HDR_Id"]
            for line in with_line["SO_LINE"]
        )
        for order in with_line["SO_HDR"]
    )


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("UPPER(art_code) = 'X'", ("UPPER()", "not supported")),
        ("art_code $ 'X'", ("'$'", "not supported")),
        ("art_code = 5", ("type mismatch", "ART_CODE")),
        ("no_such = 'x'", ("no_such", "does not exist")),
        ("art_code = 'x' AND", ("ends too early",)),
        ("px_sell + 1 > 2", ("'+'",)),
    ],
)
def test_filter_expressions_outside_the_subset_are_refused(
    api: httpx.Client, expression: str, words: tuple[str, ...]
) -> None:
    answer = api.get("/accountviewdata", params={"BusinessObject": "AK1", "Filter": expression})
    assert_error_body(answer, 400, "Filter", *words)


# -- 4. mandatory fields of the public dictionaries ------------------------------------------


def test_a_debtor_needs_its_collective_account(
    served: tuple[AccountViewSandbox, str], api: httpx.Client
) -> None:
    sandbox, _ = served
    fields = ["ACCT_NAME", "SRC_CODE", "MAIL_BUS"]
    refused = api.post(
        "/accountviewdata",
        json=post_body("CONTACT", "AR1", fields, [["Zonder BV", "ZONDER", "zonder@example.nl"]]),
    )
    assert_error_body(refused, 200, "ACCT_NR", "mandatory")
    assert sandbox.rows("CONTACT", MAIL_BUS="zonder@example.nl") == []
    accepted = api.post(
        "/accountviewdata",
        json=post_body(
            "CONTACT", "AR1", ["ACCT_NR", *fields], [["1210", "Met BV", "MET", "met@example.nl"]]
        ),
    )
    assert accepted.json()["CONTACT"][0]["ACCT_NR"] == "1210"


async def test_connector_names_the_missing_collective_account_before_sending(
    served: tuple[AccountViewSandbox, str],
) -> None:
    connector = connector_for(served)
    try:
        before = connector.client.calls.total
        [result] = await connector.write(
            "debtors",
            [{"MAIL_BUS": "zonder@example.nl", "ACCT_NAME": "Zonder BV", "SRC_CODE": "ZONDER"}],
        )
        posts = connector.client.calls.by_kind().get("POST accountviewdata AR1", 0)
    finally:
        await connector.aclose()
    assert result.error is not None and result.error.field == "ACCT_NR"
    assert "mandatory" in result.error.rule and posts == 0
    assert connector.client.calls.total - before == 1  # the lookup by e-mail, no POST


# -- 5. the dictionary endpoint the Go client reads ------------------------------------------


def test_system_data_endpoint_as_the_go_client_reads_it(api: httpx.Client) -> None:
    requested = ["FLD_DESC", "FIELD_NAME", "DBF_NAME", "FIELD_LEN", "FIELD_TYPE", "INP_MAND"]
    requested += ["FLD_FMT", "FLD_MASK", "COM_BLK"]
    answer = api.get(
        "/accountviewsystemdata",
        params={
            "businessobject": "fld",
            "pagesize": 256,
            "fields": ",".join(f"dct_fld.{name}" for name in requested),
            "FilterControlSource1": "DBF_NAME",
            "FilterOperator1": "Contains",
            "FilterValue1": "CONTACT",
            "FilterValueType1": "C",
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert list(body) == ["DCT_FLD", "DCT_TAG"] and body["DCT_TAG"] == []
    rows = body["DCT_FLD"]
    assert [r["DCT_FLD_Id"] for r in rows] == list(range(len(rows)))
    assert all(set(r) == {*requested, "DCT_FLD_Id"} for r in rows)  # the Go client's struct
    contact = published()["CONTACT"]
    assert len(rows) == len(contact) == 189
    for row in rows:
        field = contact[row["FIELD_NAME"]]
        assert (row["FIELD_TYPE"], row["FIELD_LEN"], row["INP_MAND"], row["COM_BLK"]) == (
            field.type,
            field.length,
            field.mandatory,
            field.read_only,
        )
        assert (row["FLD_FMT"], row["FLD_MASK"], row["FLD_DESC"]) == (
            field.format,
            field.mask,
            field.description,
        )
    overlay = api.get(
        "/accountviewsystemdata",
        params={
            "businessobject": "FLD",
            "FilterControlSource1": "DBF_NAME",
            "FilterValue1": "ACCT_REC",
        },
    ).json()["DCT_FLD"]
    assert {(r["FIELD_NAME"], r["INP_MAND"]) for r in overlay} == {
        ("ACCT_NR", True),
        ("SUB_NR", True),
    }
    assert_error_body(
        api.get("/accountviewsystemdata", params={"businessobject": "AR1"}), 400, "AR1"
    )
    assert_error_body(
        api.get("/accountviewsystemdata", params={"businessobject": "FLD", "lastKey": "5"}),
        400,
        "lastKey",
    )


# -- 6. every error has AccountView's body ---------------------------------------------------


def test_every_error_has_the_accountview_body(
    served: tuple[AccountViewSandbox, str], api: httpx.Client
) -> None:
    sandbox, _ = served
    assert_error_body(api.get("/accountviewnothing"), 404, "No HTTP resource")
    assert_error_body(api.put("/accountviewdata", json={}), 405, "PUT")
    assert_error_body(api.delete("/companies"), 405, "DELETE")
    assert_error_body(api.get("/accountviewdata"), 400, "BusinessObject")
    assert api.get("/companies/").json() == api.get("/companies").json()
    slash = api.get("/AccountViewData/", params={"BusinessObject": "VA1"})
    assert slash.status_code == 200 and slash.json()["VAT"]
    for config, status in (
        (FaultConfig(error_rate=1.0, seed=1), {500, 502, 503}),
        (FaultConfig(rate_429=1.0, retry_after_s=0), {429}),
    ):
        sandbox.faults.configure(config)
        try:
            answer = api.get("/companies")
        finally:
            sandbox.faults.configure(FaultConfig())
        assert answer.status_code in status
        assert_error_body(answer, answer.status_code)


# -- 7. CON: every relation of CONTACT ----------------------------------------------------


def test_con_reads_every_relation_as_a_contact_row(
    served: tuple[AccountViewSandbox, str], api: httpx.Client
) -> None:
    sandbox, _ = served
    relations = api.get("/accountviewdata", params={"BusinessObject": "CON", "PageSize": 1000})
    body = relations.json()
    assert list(body) == ["CONTACT"]
    assert [r["SUB_NR"] for r in body["CONTACT"]] == [r["SUB_NR"] for r in sandbox.rows("CONTACT")]
    assert all(set(r) == set(published()["CONTACT"]) | {"EXT_KEY"} for r in body["CONTACT"])
    person = post_body("CONTACT", "CON", ["ACCT_NAME", "SRC_CODE"], [["Piet", "PIET"]])
    assert_error_body(api.post("/accountviewdata", json=person), 400, "CON", "cannot be changed")


# -- 8. dates with a zone are converted to the company's local time --------------------------


def test_zoned_datetimes_are_stored_in_local_time(
    served: tuple[AccountViewSandbox, str], api: httpx.Client
) -> None:
    sandbox, _ = served
    debtor = sandbox.rows("CONTACT")[0]["SUB_NR"]
    body = post_body(
        "SO_HDR",
        "SO1",
        ["RPL_INV", "ORD_REF", "ORD_DATE", "DEL_DATE", "INV_DATE"],
        [
            [
                debtor,
                "ZONE-1",
                "2024-07-01T10:00:00.250Z",
                "2024-01-15T10:00:00+01:00",
                "2024-03-31T00:30:00-02:00",
            ]
        ],
    )
    [stored] = api.post("/accountviewdata", json=body).json()["SO_HDR"]
    assert (stored["ORD_DATE"], stored["DEL_DATE"], stored["INV_DATE"]) == (
        "2024-07-01T12:00:00",
        "2024-01-15T10:00:00",
        "2024-03-31T04:30:00",
    )


async def test_connector_sends_aware_datetimes_in_local_time(
    served: tuple[AccountViewSandbox, str],
) -> None:
    sandbox, _ = served
    debtor = sandbox.rows("CONTACT")[0]["SUB_NR"]
    connector = connector_for(served)
    order = {
        "ORD_REF": "ZONE-2",
        "RPL_INV": debtor,
        "ORD_DATE": datetime(2024, 12, 31, 23, 30, tzinfo=UTC),
        "SO_LINE": [{"ART_CODE": "100001", "ORD_QTY": 1}],
    }
    try:
        [written] = await connector.write("sales_orders", [order])
    finally:
        await connector.aclose()
    assert written.ok, written.error
    assert sandbox.rows("SO_HDR", ORD_REF="ZONE-2")[0]["ORD_DATE"] == "2025-01-01T00:30:00"


# -- 9. PageSize=0 means the default ----------------------------------------------------------


def test_page_size_zero_means_the_default(api: httpx.Client) -> None:
    rows = api.get("/accountviewdata", params={"BusinessObject": "AK1", "PageSize": 0}).json()
    assert len(rows["ARTICLE"]) == 100 < ARTICLES
    assert_error_body(
        api.get("/accountviewdata", params={"BusinessObject": "AK1", "PageSize": -1}),
        400,
        "PageSize",
    )
