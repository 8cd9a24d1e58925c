"""Every behaviour of the AccountView sandbox that the public record does not settle.

The facts come from public client code (the published field dictionaries are in
published_fields.tsv beside this module); nobody has published a recorded response. Whatever the
sandbox does beyond those facts is decided here, in one place, with the reason, so it can be
corrected when the real API shows otherwise. docs/connectors/accountview.md lists the same
decisions in a table.
The connector agrees with these decisions through its own copy of the data dictionary
(koppel/connectors/accountview/dictionary.json); tests check that both copies match each other
and the published dictionaries.

Values are read by the code; a constant set to True records a behaviour the code implements
(its docstring says which), so that every decision can be found in this one module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# -- business objects ----------------------------------------------------------------------


@dataclass(frozen=True)
class BusinessObjectDef:
    """One business object: its code, main table, detail tables and what the API may do to it.

    `overlay` is a table whose dictionary adds rules to the main table's when it is written
    through this business object (AR1 writes CONTACT with the rules of ACCT_REC). A `system`
    object is a view of the data dictionary, also served by /accountviewsystemdata.
    """

    code: str
    description: str
    table: str
    details: tuple[str, ...] = ()
    extra_tables: tuple[str, ...] = ()
    insert_allowed: bool = True
    update_allowed: bool = True
    delete_allowed: bool = False
    assumed: bool = False
    overlay: str | None = None
    system: bool = False


BUSINESS_OBJECTS: tuple[BusinessObjectDef, ...] = (
    BusinessObjectDef(
        "AR1", "Debiteuren", "CONTACT", extra_tables=("USR_LINK",), overlay="ACCT_REC"
    ),
    BusinessObjectDef("CON", "Relaties", "CONTACT", insert_allowed=False, update_allowed=False),
    BusinessObjectDef("ADDR", "Afleveradressen", "DEL_ADDR"),
    BusinessObjectDef("AK1", "Artikelen", "ARTICLE"),
    BusinessObjectDef("AG1", "Artikelgroepen", "ART_GRP"),
    BusinessObjectDef("SO1", "Verkooporders", "SO_HDR", details=("SO_LINE",)),
    BusinessObjectDef("VA1", "BTW-codes", "VAT", insert_allowed=False, update_allowed=False),
    BusinessObjectDef(
        "BC1",
        "Betalingscondities",
        "PAY_COND",
        insert_allowed=False,
        update_allowed=False,
        assumed=True,
    ),
    BusinessObjectDef(
        "BW1", "Betaalwijzen", "PAY_MTH", insert_allowed=False, update_allowed=False, assumed=True
    ),
    BusinessObjectDef(
        "MW1", "Medewerkers", "EMPLOYEE", insert_allowed=False, update_allowed=False, assumed=True
    ),
    BusinessObjectDef(
        "FLD",
        "Velden",
        "DCT_FLD",
        extra_tables=("DCT_TAG",),
        insert_allowed=False,
        update_allowed=False,
        system=True,
    ),
    BusinessObjectDef(
        "DBF", "Tabellen", "DCT_FILE", insert_allowed=False, update_allowed=False, system=True
    ),
)
"""AR1, CON, ADDR, AK1, AG1, SO1 and VA1 are seen in public clients. The master tables of payment
conditions, payment methods and employees are not public: BC1/PAY_COND, BW1/PAY_MTH and
MW1/EMPLOYEE are our names. Reference data (VAT codes, payment conditions and methods, employees)
is kept by the accountant, so the sandbox refuses to insert or update it through the API; the
"InsertAllowed/UpdateAllowed" flags of /accountviewsystembusinessobjects say so. AR1 answers with
an empty USR_LINK table beside CONTACT, as the real AR1 does (documents are not emulated).

AR1 writes CONTACT with the rules of the ACCT_REC dictionary, which marks ACCT_NR (the collective
account) mandatory; CONTACT itself does not. CON is every relation of the CONTACT table: the Go
client decodes CON into the same 189-field CONTACT row as AR1, so CON rows are relations (company
name, debtor/creditor number), not contact persons. No public client writes through CON, so the
sandbox serves it read-only; the sandbox's relations are all debtors (creditors, AP1, are not
emulated).

FLD (DCT_FLD, with an empty DCT_TAG beside it) and DBF (DCT_FILE) are the data dictionary: the Go
client reads `fld` from /accountviewsystemdata, the Ruby client reads `FLD` and `dbf` from
/accountviewdata; both endpoints serve them. ADL (the list of administrations) is not emulated."""

# -- field dictionaries of the tables published_fields.tsv does not have ---------------------

FieldRow = tuple[str, str, int, str, str]
"""(FIELD_NAME, FIELD_TYPE, FIELD_LEN, flags, FLD_DESC); flags: M mandatory, ! upper case,
R read-only (COM_BLK), as in the published dictionaries."""

AUDIT_FIELDS: tuple[FieldRow, ...] = (
    ("CNG_DATE", "T", 8, "R", "Wijzigingsdatum"),
    ("CNG_NR", "I", 4, "R", "Wijzignummer"),
    ("CNG_USR", "C", 20, "!R", "Medewerker laatste wijziging"),
    ("INP_DATE", "T", 8, "R", "Invoerdatum"),
    ("INP_USR", "C", 20, "!R", "Invoermedewerker"),
)
"""Copied from the published tables, where every master table carries them."""

REC_ID_FIELD: FieldRow = ("REC_ID", "C", 10, "!R", "Unieke code")
"""REC_ID as DJ_LINE and TRANSACT publish it (C10 M!R; without M: the system assigns it). Of the
sandbox's tables only DEL_ADDR (a public client reads `DEL_ADDR[0].REC_ID`), SO_HDR and SO_LINE
carry it; VAT, whose dictionary is public, has none, and nor do the other master tables."""

ASSUMED_TABLES: dict[str, tuple[FieldRow, ...]] = {
    "ARTICLE": (
        ("ART_CODE", "C", 15, "M!", "Artikelcode"),
        ("ART_DESC1", "C", 40, "M", "Omschrijving"),
        ("ART_DESC2", "C", 40, "", "Omschrijving 2"),
        ("ART_MEMO", "M", 4, "", "Uitgebreide omschrijving"),
        ("AG_CODE", "C", 5, "!", "Artikelgroep"),
        ("PX_SELL", "Y", 8, "", "Verkoopprijs"),
        ("COST_PX", "Y", 8, "", "Kostprijs"),
        ("CUR_CODE", "C", 3, "!", "Valutacode"),
        ("VAT_CODE", "C", 2, "!", "BTW-code"),
        ("UNIT_CODE", "C", 5, "!", "Eenheid"),
        ("EAN_CODE", "C", 14, "", "EAN-code"),
        ("QTY_AVAIL", "N", 13, "", "Voorraad"),
        ("QTY_FREE2", "N", 13, "", "Vrije voorraad"),
        ("ART_BLK", "L", 1, "", "Geblokkeerd"),
        ("ORIG_CNT", "C", 2, "!", "Land van oorsprong"),
        ("ART_TYPE", "C", 30, "", "Type"),
        ("DEL_TIME", "C", 30, "", "Levertijd"),
        *AUDIT_FIELDS,
    ),
    "ART_GRP": (
        ("AG_CODE", "C", 5, "M!", "Artikelgroep"),
        ("AG_DESC", "C", 40, "M", "Omschrijving artikelgroep"),
        *AUDIT_FIELDS,
    ),
    "DEL_ADDR": (
        REC_ID_FIELD,
        ("SUB_NR", "C", 10, "M!", "Debiteurnummer"),
        ("DEL_NAME", "C", 40, "M", "Naam afleveradres"),
        ("ADDRESS1", "C", 80, "", "Adres"),
        ("ST_STREET", "C", 60, "", "Straatnaam"),
        ("ST_NR", "C", 10, "", "Huisnummer"),
        ("ST_EXTRA", "C", 10, "", "Adres-toevoeging"),
        ("POST_CODE", "C", 10, "!", "Postcode"),
        ("CITY", "C", 35, "", "Plaats"),
        ("CNT_CODE", "C", 2, "!", "ISO-landcode"),
        ("COUNTRY", "C", 30, "", "Land"),
        ("MAIL_BUS", "C", 50, "", "E-mail zakelijk"),
        ("TEL_BUS", "C", 20, "", "Telefoon zakelijk"),
        *AUDIT_FIELDS,
    ),
    "SO_HDR": (
        REC_ID_FIELD,
        ("ORD_NR", "C", 10, "!", "Ordernummer"),
        ("ORD_REF", "C", 30, "", "Referentie klant"),
        ("ORD_DATE", "T", 8, "", "Orderdatum"),
        ("DEL_DATE", "T", 8, "", "Leverdatum"),
        ("INV_DATE", "T", 8, "", "Factuurdatum"),
        ("RPL_INV", "C", 10, "M!", "Factuurdebiteur"),
        ("RPL_DEL", "C", 10, "!", "Afleverdebiteur"),
        ("DEL_CODE", "C", 10, "!", "Afleveradres"),
        ("COMMENT1", "C", 40, "", "Omschrijving order"),
        ("COMMENT2", "C", 40, "", "Omschrijving 2"),
        ("TO_EMAIL", "C", 50, "", "E-mail orderbevestiging"),
        ("EMP_NR", "C", 10, "!", "Verkoper"),
        ("DISC_CODE", "C", 2, "!", "Betalingsconditie"),
        ("PAY_TYPE", "C", 25, "!", "Betaalwijze"),
        ("APX_LIST", "C", 5, "!", "Prijslijst"),
        ("PD_AMT", "Y", 8, "", "Bedrag betalingskorting"),
        *AUDIT_FIELDS,
    ),
    "SO_LINE": (
        REC_ID_FIELD,
        ("ORD_NR", "C", 10, "!R", "Ordernummer"),
        ("ART_CODE", "C", 15, "M!", "Artikelcode"),
        ("ART_DESC", "C", 40, "", "Omschrijving"),
        ("ORD_QTY", "N", 13, "M", "Aantal besteld"),
        ("ART_PX", "Y", 8, "", "Prijs"),
        ("VAT_CODE", "C", 2, "!", "BTW-code"),
        ("DEL_DATE", "T", 8, "", "Leverdatum"),
        *AUDIT_FIELDS,
    ),
    "PAY_COND": (
        ("DISC_CODE", "C", 2, "M!", "Code betalingsconditie"),
        ("DISC_DESC", "C", 40, "M", "Omschrijving betalingsconditie"),
        ("CRED_DAYS", "N", 3, "", "Betalingstermijn in dagen"),
        ("DISC_DAYS", "N", 3, "", "Kortingstermijn in dagen"),
        ("DISC_PCT", "N", 7, "", "Percentage betalingskorting"),
        *AUDIT_FIELDS,
    ),
    "PAY_MTH": (
        ("PAY_TYPE", "C", 25, "M!", "Betaalwijze"),
        ("PAY_DESC", "C", 40, "M", "Omschrijving betaalwijze"),
        *AUDIT_FIELDS,
    ),
    "EMPLOYEE": (
        ("EMP_NR", "C", 10, "M!", "Medewerkernummer"),
        ("EMP_NAME", "C", 40, "M", "Naam medewerker"),
        ("MAIL_BUS", "C", 50, "", "E-mail zakelijk"),
        *AUDIT_FIELDS,
    ),
    "DCT_FLD": (
        ("FLD_DESC", "C", 50, "", "Source Field Description"),
        ("FIELD_NAME", "C", 10, "!", "Veldnaam"),
        ("DBF_NAME", "C", 8, "!", "Tabelnaam"),
        ("FIELD_LEN", "N", 3, "", "Breedte"),
        ("FIELD_TYPE", "C", 1, "!", "Veldtype"),
        ("INP_MAND", "L", 1, "", "Invoer verplicht"),
        ("FLD_FMT", "C", 10, "", "Formaat"),
        ("FLD_MASK", "C", 40, "", "Invoermasker"),
        ("COM_BLK", "L", 1, "", "Blokkeren voor COM"),
        ("PKY_TBL", "C", 8, "!", "Naam hoofdtabel"),
        ("REC_CUST", "L", 1, "", "Aangepast"),
        ("CNG_DATE", "T", 8, "R", "Wijzigingsdatum"),
        ("CNG_NR", "I", 4, "R", "Wijzignummer"),
        ("CNG_USR", "C", 20, "!R", "Medewerker laatste wijziging"),
        ("INP_DATE", "T", 8, "R", "Invoerdatum"),
    ),
    "DCT_FILE": (
        ("DBF_NAME", "C", 8, "!", "Tabelnaam"),
        ("DBF_DESC", "C", 40, "", "Omschrijving tabel"),
        ("DBF_TYPE", "I", 4, "", "Tabeltype"),
        ("OBJ_CODE", "C", 10, "!", "Object Code"),
        ("TBL_CHILD", "C", 8, "!", "Regeltabel"),
        ("TBL_HDR", "C", 8, "!", "Headertabel"),
        ("NO_INSERT", "L", 1, "", "Toevoegen niet mogelijk"),
        ("NO_UPDATE", "L", 1, "", "Wijzigen niet mogelijk"),
        ("NO_DELETE", "L", 1, "", "Verwijderen niet mogelijk"),
        ("NO_XML_UPD", "L", 1, "", "Mutaties niet via Web- API"),
        *AUDIT_FIELDS,
    ),
}
"""No public dictionary has these tables (their types, lengths and rules are ours). Lengths follow
the same field in a published table where one exists (CITY C35, POST_CODE C10...), ART_CODE C15
and ART_DESC1 C40 follow the public notes, AG_CODE C5 the AG1 note. Article groups are flat (no
parent group). Which field names a public client shows is in SEEN_FIELDS; every other field here
is ours, and docs/connectors/accountview.md lists them ("Field dictionaries"). Among ours:
ART_MEMO (the long description, memo), EAN_CODE (C14 holds any GTIN), ORIG_CNT (country of
origin, ISO code, as Intrastat needs), ART_TYPE and DEL_TIME (type and delivery time, for the
products flow's characteristics) on ARTICLE; ORD_NR (order number, system assigned when empty)
and ORD_REF (the customer's / our own order reference, which the connector rechecks by) on
SO_HDR; REC_ID on SO_HDR and SO_LINE (as DJ_LINE and TRANSACT carry it); all of PAY_COND,
PAY_MTH and EMPLOYEE. DCT_FLD and DCT_FILE take their field names and types from the Go client's
response struct for /accountviewsystemdata (DCT_FILE: the part of it the sandbox fills in)."""

SEEN_FIELDS: dict[str, frozenset[str]] = {
    "ARTICLE": frozenset(
        {
            "ART_CODE",
            "ART_DESC1",
            "AG_CODE",
            "PX_SELL",
            "QTY_AVAIL",
            "QTY_FREE2",
            "COST_PX",
            "CNG_DATE",
        }
    ),
    "ART_GRP": frozenset(("AG_CODE", "AG_DESC")),
    "DEL_ADDR": frozenset(
        {
            "REC_ID",
            "SUB_NR",
            "DEL_NAME",
            "ADDRESS1",
            "POST_CODE",
            "CITY",
            "CNT_CODE",
            "MAIL_BUS",
            "TEL_BUS",
        }
    ),
    "SO_HDR": frozenset(
        {
            "ORD_DATE",
            "INV_DATE",
            "DEL_DATE",
            "RPL_INV",
            "RPL_DEL",
            "DEL_CODE",
            "COMMENT1",
            "COMMENT2",
            "TO_EMAIL",
            "EMP_NR",
            "APX_LIST",
            "PD_AMT",
        }
    ),
    "SO_LINE": frozenset(("ART_CODE", "ORD_QTY", "ART_PX", "DEL_DATE")),
    "PAY_COND": frozenset(),
    "PAY_MTH": frozenset(),
    "EMPLOYEE": frozenset(),
    "DCT_FLD": frozenset(name for name, *_ in ASSUMED_TABLES["DCT_FLD"]),
    "DCT_FILE": frozenset(name for name, *_ in ASSUMED_TABLES["DCT_FILE"]),
}
"""Per table of ASSUMED_TABLES, the field names a public client reads or writes (the PHP
integration for ARTICLE, DEL_ADDR, SO_HDR, SO_LINE; the Angular app for QTY_FREE2 and COST_PX;
the Go client's structs for DCT_FLD and DCT_FILE). Names only: no public source gives their
types or lengths."""

# -- keys ----------------------------------------------------------------------------------

TABLE_KEYS: dict[str, str | None] = {
    "CONTACT": "SUB_NR",
    "ARTICLE": "ART_CODE",
    "ART_GRP": "AG_CODE",
    "VAT": "VAT_CODE",
    "PAY_COND": "DISC_CODE",
    "PAY_MTH": "PAY_TYPE",
    "EMPLOYEE": "EMP_NR",
    "DEL_ADDR": "REC_ID",
    "SO_HDR": "REC_ID",
    "SO_LINE": "REC_ID",
    "DCT_FILE": "DBF_NAME",
    "DCT_FLD": None,
}
"""Each table's key: its rows come in this key's order, `lastKey` pages on it (exclusive, string
order), and a posted row whose key names an existing row updates that row. Reference rows are
keyed by their own codes (SUB_NR, ART_CODE, AG_CODE, VAT_CODE...), unique per company; the Ruby
client pages CONTACT on SUB_NR and defaults to REC_ID elsewhere, but the public dictionaries of
VAT, COST and LEDGER have no REC_ID, so that default proves nothing. DEL_ADDR, SO_HDR and SO_LINE
are keyed by REC_ID, zero-padded so that string order is numeric order. DCT_FLD has no key of its
own: its rows come in table and field order and `lastKey` is refused there (the Ruby client pages
on DCT_FLD_Id, which the Go client's dictionaries show as a per-response number).

Update rule (no public client shows an update): a posted row whose key names an existing row
updates that row, field by field; otherwise it is inserted. A posted REC_ID that does not exist
is an error (the system assigns REC_IDs). A posted SUB_NR that does not exist inserts the debtor
with that number."""

REC_ID_WIDTH = 10
"""REC_ID values are zero-padded decimal strings ("0000000042"), assigned in ascending order."""

FIRST_SUB_NR = 10000
"""A debtor posted without SUB_NR gets the highest numeric SUB_NR of the company plus one (at
least this), which is what the PHP integration that omits SUB_NR relies on."""

FIRST_ORD_NR = 20000
"""Like SUB_NR: an order posted without ORD_NR gets the next free number."""

DETAIL_LINKS: dict[str, str] = {"SO_LINE": "ORD_NR"}
"""A detail row stores the header's ORD_NR, as DJ_LINE stores its page's PAGE_NR."""

REPLACE_DETAILS_ON_UPDATE = True
"""A header that updates an existing order and carries detail rows replaces the order's lines
with the posted ones; without detail rows the lines stay as they are."""

REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("CONTACT", "VAT_CODE"): ("VAT", "VAT_CODE"),
    ("CONTACT", "DISC_CODE"): ("PAY_COND", "DISC_CODE"),
    ("CONTACT", "EMP_NR"): ("EMPLOYEE", "EMP_NR"),
    ("ARTICLE", "AG_CODE"): ("ART_GRP", "AG_CODE"),
    ("ARTICLE", "VAT_CODE"): ("VAT", "VAT_CODE"),
    ("DEL_ADDR", "SUB_NR"): ("CONTACT", "SUB_NR"),
    ("SO_HDR", "RPL_INV"): ("CONTACT", "SUB_NR"),
    ("SO_HDR", "RPL_DEL"): ("CONTACT", "SUB_NR"),
    ("SO_HDR", "DEL_CODE"): ("DEL_ADDR", "REC_ID"),
    ("SO_HDR", "EMP_NR"): ("EMPLOYEE", "EMP_NR"),
    ("SO_HDR", "DISC_CODE"): ("PAY_COND", "DISC_CODE"),
    ("SO_HDR", "PAY_TYPE"): ("PAY_MTH", "PAY_TYPE"),
    ("SO_LINE", "ART_CODE"): ("ARTICLE", "ART_CODE"),
    ("SO_LINE", "VAT_CODE"): ("VAT", "VAT_CODE"),
}
"""A non-empty code must name an existing row, as AccountView's input validation demands of
codes it offers in a pick list. Checked server side only: the error names the field."""

# -- reading ------------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
"""Clients send PageSize 1 to 1000; neither default nor maximum is public. A PageSize above the
maximum is refused (not silently cut), so a client's "short page = last page" rule stays right.
PageSize 0 means the default: the Go client sends PageSize=0 when its caller sets none."""


class PastLastPage(StrEnum):
    """What the sandbox answers for a page past the last row (`lastKey` or PageNumber beyond it)."""

    EMPTY = "empty"
    """HTTP 200 and an empty array, like any read that finds no rows."""
    ERROR = "error"
    """HTTP 400 and the AccountViewError body ("There are no more rows.")."""
    NOT_FOUND = "not_found"
    """HTTP 404 and the AccountViewError body: one public client takes 404 on a read as "none"."""


PAST_LAST_PAGE = PastLastPage.EMPTY
"""When the rows fill the last page exactly, a client that stops on a short page asks for one page
more; what the real API answers there is not public, and it decides whether clients stop (the
Ruby client, which pages on until a short page, loops when it gets an empty list for a full
page). The sandbox answers an empty list by default and can answer each of the other two
(`AccountViewSandbox(past_last_page=...)`, or the attribute of the same name at run time), so the
connector is tested under all three. A read without lastKey or PageNumber that finds no rows
always answers 200 with an empty array."""

LIST_SEPARATOR = ","
"""FilterIsListOfValues{n}=true: FilterValue{n} is a list separated by this character (every
public client sends false, the separator is unknown). Items are stripped of surrounding blanks.
A value that contains a comma cannot be part of a list; query it with its own filter."""

FILTER_OPERATORS = ("Equal", "NotEqual", "Contains", "DateOnOrAfterDate")
"""The operators seen in public clients. Character comparison is exact and case-sensitive, like
Visual FoxPro's `==`; trailing blanks do not count. Contains is a case-sensitive substring test."""

FILTER_EXPRESSION = True
"""`Filter=` takes a Visual FoxPro expression (the Ruby client sends
`!EMPTY(dct_file.obj_code) AND dct_file.dbf_type=2`, `dct_fld.dbf_name='ART_LINE'` and
`(transact.trn_date >= {^2020-01-01} AND transact.trn_date <= {^2020-12-31})`). The sandbox
evaluates the subset those use: fields (bare or table-qualified), comparisons = == != <> # < <=
> >=, literals 'text' "text" numbers {^date} {^date time} .T. .F., EMPTY(field), AND OR NOT !
(also .AND. .OR. .NOT.) and parentheses. `=` on text is exact like `==` (as with SET EXACT ON;
with SET EXACT OFF FoxPro would match a prefix) and case-sensitive. Anything else (another
function, arithmetic, `$`) is refused with the AccountViewError body, never ignored. The
expression is ANDed with the numbered filters."""

LASTKEY_IGNORES_SORT = True
"""With lastKey the rows come in key order (descending when SortOrder=descending) and SortFields
is ignored: keyset paging over another order could skip rows. PageNumber is ignored as well."""

EMPTY_RESULT_STATUS = 200
"""No rows: HTTP 200 with an empty array (for a page past the last one see PAST_LAST_PAGE)."""

FIELDS_ALWAYS_RETURNED = True
"""A row always carries its key and EXT_KEY (the row's internal number), whatever `Fields` asks
for; rows of the data dictionary (FLD, DBF) carry no EXT_KEY, as the Go client's DCT_FLD and
DCT_FILE structs have none while all its data structs have one. Where a business object answers
more than one table (AR1: CONTACT and USR_LINK; SO1: SO_HDR and SO_LINE; FLD: DCT_FLD and
DCT_TAG) its main rows also carry <TABLE>_Id, their 0-based ordinal in this response, and detail
rows carry their header's <HEADER>_Id but no _Id of their own: the Go client's structs have
CONTACT_Id on AR1 rows, DJ_PAGE_Id on DJ_LINE rows, and none on VAT, LEDGER, COST or CON rows.
A detail table that `Fields` does not mention comes back whole."""

BOOK_DATE_IGNORED = True
"""Each sandbox company has one bookkeeping year, so BookDate (GET and POST) is accepted and
ignored."""

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
TIMEZONE = "Europe/Amsterdam"
"""Datetimes are zone-less local time of the (Dutch) AccountView installation. An incoming
datetime without a zone is local time; one with a Z or an offset (the Go client sends
`2021-11-30T13:37:37.450Z`) names an instant and is converted to local time, for D fields before
the date is taken. Fractions of a second are dropped."""

SYSTEM_DATA = True
"""GET /accountviewsystemdata serves the system business objects (FLD, DBF) with the same
parameters and answer shape as /accountviewdata; other business objects are refused there.
DCT_FLD lists every field of the tables the sandbox serves (ACCT_REC included), DCT_FILE every
such table: DBF_TYPE 2 for business tables and 1 for the dictionary's own (the Ruby client
lists business objects with `dct_file.dbf_type=2`), OBJ_CODE the business object of a main
table, TBL_CHILD/TBL_HDR the detail link, NO_INSERT/NO_UPDATE/NO_XML_UPD from the object's
flags."""

OWN_FIELDS_ENDPOINT = True
"""GET /accountviewfields exists (the Go client calls it) but its answer is not public. The
sandbox answers `{"DCT_FLD": [...]}` with the DCT_FLD rows of the business object's tables:
Koppel's own shape, kept for people who read the sandbox by hand; nothing in Koppel uses it."""

ERRORS_AS_ACCOUNTVIEW_BODY = True
"""Every error answer of the API (unknown path 404, wrong method 405, malformed request 400,
server error 500, injected faults) has the AccountViewError body; the Go client takes any other
body on an error status as a success with no rows. The texts of 404 and 405 are ASP.NET Web
API's. The token endpoint is the exception (see OAUTH_ERRORS_AS_RFC6749)."""

TRAILING_SLASH_IGNORED = True
"""`/api/v3/companies/` is `/api/v3/companies`, as ASP.NET routing treats it (no redirect)."""

# -- writing ------------------------------------------------------------------------------

VALIDATION_ERROR_STATUS = 200
"""A POST refused for its data (length, mandatory, upper case, unknown code, unknown field)
answers this status with the AccountViewError body: one public client checks error bodies even on
2xx, so the real API may do this. Configurable per sandbox (`validation_error_status`). Malformed
requests answer 400, bad or expired tokens 401, an unknown company 403."""

TRANSACTIONAL_POST = True
"""One invalid row rejects the whole POST and nothing is written (AccountView writes a business
object in one transaction). The message names table, row, RowId (and HeaderId) and field:
`SO_LINE row 2 (RowId 2, HeaderId 1): field ART_CODE: 'X1' is not an existing ARTICLE.ART_CODE`."""

UPPER_CASE_REJECTED = True
"""A lower-case letter in a field with format "!" is refused, not converted: silent conversion
would hide a mapping error (AccountView's UI converts as you type)."""

READ_ONLY_REJECTED = True
"""Posting a read-only (COM_BLK) field is refused, except REC_ID used as the key of an update."""

NUMERIC_WIDTH_IS_INTEGER_DIGITS = True
"""Decimals are not in the dictionary, so N/Y/B field widths limit only the integer digits."""

LENIENT_VALUES = True
"""As public clients rely on: numbers for C fields become strings, numeric strings are numbers,
"TRUE"/"false"/1/0 are logicals, key names and FieldType codes are case-insensitive, FieldType
only has to be a known code (the dictionary type decides), RowAction is accepted and ignored."""

API_USER = "API"
"""CNG_USR / INP_USR of rows written through the API; "SANDBOX" for manual edits."""

# -- auth ---------------------------------------------------------------------------------

ACCESS_TOKEN_LIFETIME_S = 3600
"""`expires_in` is not in any public client; we send it (standard OAuth2) with this default."""

AUTHORIZATION_CODE_LIFETIME_S = 300

STRICT_REFRESH_ROTATION = True
"""Each refresh returns a new refresh token and the old one stops working at once (the PHP client
stores the new one after every refresh). There is no grace period for a lost response."""

OAUTH_ERRORS_AS_RFC6749 = True
"""The token endpoint answers errors as RFC 6749 does: 400 {"error":"invalid_grant", ...},
401 {"error":"invalid_client"}. Data endpoints answer the AccountViewError body with 401
"Authorization has been denied for this request." (the ASP.NET Web API text)."""

ALL_COMPANIES_PER_GRANT = True
"""A grant covers every company of the user; x-company (the company Id) picks one per call."""

__all__ = [
    "ACCESS_TOKEN_LIFETIME_S",
    "API_USER",
    "ASSUMED_TABLES",
    "AUDIT_FIELDS",
    "AUTHORIZATION_CODE_LIFETIME_S",
    "BUSINESS_OBJECTS",
    "DATETIME_FORMAT",
    "DEFAULT_PAGE_SIZE",
    "DETAIL_LINKS",
    "FILTER_OPERATORS",
    "FIRST_ORD_NR",
    "FIRST_SUB_NR",
    "LIST_SEPARATOR",
    "MAX_PAGE_SIZE",
    "PAST_LAST_PAGE",
    "REC_ID_FIELD",
    "REC_ID_WIDTH",
    "REFERENCES",
    "REPLACE_DETAILS_ON_UPDATE",
    "SEEN_FIELDS",
    "TABLE_KEYS",
    "TIMEZONE",
    "VALIDATION_ERROR_STATUS",
    "BusinessObjectDef",
    "FieldRow",
    "PastLastPage",
]
