"""Every behaviour of the AccountView sandbox that the public record does not settle.

The facts (reference/accountview-web-api-v3.md, accountview-api-details.md, accountview-fields.tsv)
come from public client code; nobody has published a recorded response. Whatever the sandbox does
beyond those facts is decided here, in one place, with the reason, so it can be corrected when the
real API shows otherwise. docs/connectors/accountview.md lists the same decisions in a table.
The connector agrees with these decisions through its own copy of the data dictionary
(koppel/connectors/accountview/dictionary.json); a test checks that both copies match.

Values are read by the code; a constant set to True records a behaviour the code implements
(its docstring says which), so that every decision can be found in this one module.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- business objects ----------------------------------------------------------------------


@dataclass(frozen=True)
class BusinessObjectDef:
    """One business object: its code, main table, detail tables and what the API may do to it."""

    code: str
    description: str
    table: str
    details: tuple[str, ...] = ()
    extra_tables: tuple[str, ...] = ()
    insert_allowed: bool = True
    update_allowed: bool = True
    delete_allowed: bool = False
    assumed: bool = False


BUSINESS_OBJECTS: tuple[BusinessObjectDef, ...] = (
    BusinessObjectDef("AR1", "Debiteuren", "CONTACT", extra_tables=("USR_LINK",)),
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
)
"""AR1, ADDR, AK1, AG1, SO1 and VA1 are seen in public clients. The master tables of payment
conditions, payment methods and employees are not public: BC1/PAY_COND, BW1/PAY_MTH and
MW1/EMPLOYEE are our names. Reference data (VAT codes, payment conditions and methods, employees)
is kept by the accountant, so the sandbox refuses to insert or update it through the API; the
"InsertAllowed/UpdateAllowed" flags of /accountviewsystembusinessobjects say so. AR1 answers with
an empty USR_LINK table beside CONTACT, as the real AR1 does (documents are not emulated)."""

# -- field dictionaries of the tables accountview-fields.tsv does not have -------------------

FieldRow = tuple[str, str, int, str, str]
"""(FIELD_NAME, FIELD_TYPE, FIELD_LEN, flags, FLD_DESC); flags: M mandatory, ! upper case,
R read-only (COM_BLK), as in accountview-api-details.md section 6."""

AUDIT_FIELDS: tuple[FieldRow, ...] = (
    ("CNG_DATE", "T", 8, "R", "Wijzigingsdatum"),
    ("CNG_NR", "I", 4, "R", "Wijzignummer"),
    ("CNG_USR", "C", 20, "!R", "Medewerker laatste wijziging"),
    ("INP_DATE", "T", 8, "R", "Invoerdatum"),
    ("INP_USR", "C", 20, "!R", "Invoermedewerker"),
)
"""Copied from the TSV's tables, where every master table carries them."""

REC_ID_FIELD: FieldRow = ("REC_ID", "C", 10, "!R", "Unieke code")
"""REC_ID is C10 M!R in DJ_LINE; the sandbox adds it (without M: the system assigns it) to every
table that lacks it except CONTACT, whose key is SUB_NR, because paging keys on REC_ID."""

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
    ),
    "ART_GRP": (
        ("AG_CODE", "C", 5, "M!", "Artikelgroep"),
        ("AG_DESC", "C", 40, "M", "Omschrijving artikelgroep"),
    ),
    "DEL_ADDR": (
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
    ),
    "SO_HDR": (
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
    ),
    "SO_LINE": (
        ("ORD_NR", "C", 10, "!R", "Ordernummer"),
        ("ART_CODE", "C", 15, "M!", "Artikelcode"),
        ("ART_DESC", "C", 40, "", "Omschrijving"),
        ("ORD_QTY", "N", 13, "M", "Aantal besteld"),
        ("ART_PX", "Y", 8, "", "Prijs"),
        ("VAT_CODE", "C", 2, "!", "BTW-code"),
        ("DEL_DATE", "T", 8, "", "Leverdatum"),
    ),
    "PAY_COND": (
        ("DISC_CODE", "C", 2, "M!", "Code betalingsconditie"),
        ("DISC_DESC", "C", 40, "M", "Omschrijving betalingsconditie"),
        ("CRED_DAYS", "N", 3, "", "Betalingstermijn in dagen"),
        ("DISC_DAYS", "N", 3, "", "Kortingstermijn in dagen"),
        ("DISC_PCT", "N", 7, "", "Percentage betalingskorting"),
    ),
    "PAY_MTH": (
        ("PAY_TYPE", "C", 25, "M!", "Betaalwijze"),
        ("PAY_DESC", "C", 40, "M", "Omschrijving betaalwijze"),
    ),
    "EMPLOYEE": (
        ("EMP_NR", "C", 10, "M!", "Medewerkernummer"),
        ("EMP_NAME", "C", 40, "M", "Naam medewerker"),
        ("MAIL_BUS", "C", 50, "", "E-mail zakelijk"),
    ),
}
"""No public dictionary has these tables (details section 15). Field names seen in public clients
are kept (ART_CODE, ART_DESC1, AG_CODE, PX_SELL, QTY_AVAIL, QTY_FREE2, COST_PX; AG_DESC; DEL_NAME,
SUB_NR...; the SO_HDR and SO_LINE fields the PHP client posts); lengths follow the same field in
CONTACT where one exists (CITY C35, POST_CODE C10...), ART_CODE C15 and ART_DESC1 C40 follow
accountview-web-api-v3.md, AG_CODE C5 the AG1 note. Our own names: ART_DESC2, ART_MEMO (the long
description, memo), EAN_CODE (C14 holds any GTIN), VAT_CODE, UNIT_CODE, CUR_CODE, ART_BLK,
ORIG_CNT (country of origin, ISO code, as Intrastat needs), ART_TYPE and DEL_TIME (type and
delivery time, for the products flow's characteristics) on ARTICLE; ORD_NR (order number,
system assigned when empty) and ORD_REF (the customer's / our own
order reference, which the connector rechecks by) on SO_HDR; ORD_NR, ART_DESC and VAT_CODE on
SO_LINE; all of PAY_COND, PAY_MTH and EMPLOYEE. Article groups are flat (no parent group)."""

# -- keys ----------------------------------------------------------------------------------

PAGING_KEYS: dict[str, str] = {"CONTACT": "SUB_NR"}
"""`lastKey` pages on SUB_NR for CONTACT and on REC_ID for every other table (the Ruby client's
rule). lastKey is exclusive and rows come in ascending key order (string order: REC_IDs are
zero-padded so string order is numeric order)."""
DEFAULT_PAGING_KEY = "REC_ID"

UPSERT_KEYS: dict[str, str] = {
    "CONTACT": "SUB_NR",
    "ARTICLE": "ART_CODE",
    "ART_GRP": "AG_CODE",
    "VAT": "VAT_CODE",
    "PAY_COND": "DISC_CODE",
    "PAY_MTH": "PAY_TYPE",
    "EMPLOYEE": "EMP_NR",
}
"""No public client shows an update. Rule: a posted row whose key (this table, REC_ID for every
other table) names an existing row updates that row, field by field; otherwise it is inserted.
These codes are unique per company. A posted REC_ID that does not exist is an error (the system
assigns REC_IDs). A posted SUB_NR that does not exist inserts the debtor with that number."""

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
maximum is refused (not silently cut), so a client's "short page = last page" rule stays right."""

LIST_SEPARATOR = ","
"""FilterIsListOfValues{n}=true: FilterValue{n} is a list separated by this character (every
public client sends false, the separator is unknown). Items are stripped of surrounding blanks.
A value that contains a comma cannot be part of a list; query it with its own filter."""

FILTER_OPERATORS = ("Equal", "NotEqual", "Contains", "DateOnOrAfterDate")
"""The operators seen in public clients. Character comparison is exact and case-sensitive, like
Visual FoxPro's `==`; trailing blanks do not count. Contains is a case-sensitive substring test."""

LASTKEY_IGNORES_SORT = True
"""With lastKey the rows come in key order (descending when SortOrder=descending) and SortFields
is ignored: keyset paging over another order could skip rows. PageNumber is ignored as well."""

EMPTY_RESULT_STATUS = 200
"""No rows: HTTP 200 with an empty array (one client also accepts 404; we never send it)."""

FIELDS_ALWAYS_RETURNED = True
"""A row always carries its paging key, EXT_KEY (the row's internal number) and <TABLE>_Id (its
0-based ordinal in this response; detail rows also carry their header's <HEADER>_Id), whatever
`Fields` asks for. A detail table that `Fields` does not mention comes back with all fields."""

BOOK_DATE_IGNORED = True
"""Each sandbox company has one bookkeeping year, so BookDate (GET and POST) is accepted and
ignored."""

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
TIMEZONE = "Europe/Amsterdam"
"""Datetimes are zone-less local time of the (Dutch) AccountView installation. Incoming
datetimes are read as local time; a trailing Z or offset is ignored, as the PHP client sends local
time with a Z."""

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
    "DEFAULT_PAGING_KEY",
    "DETAIL_LINKS",
    "FILTER_OPERATORS",
    "FIRST_ORD_NR",
    "FIRST_SUB_NR",
    "LIST_SEPARATOR",
    "MAX_PAGE_SIZE",
    "PAGING_KEYS",
    "REC_ID_FIELD",
    "REC_ID_WIDTH",
    "REFERENCES",
    "REPLACE_DETAILS_ON_UPDATE",
    "TIMEZONE",
    "UPSERT_KEYS",
    "VALIDATION_ERROR_STATUS",
    "BusinessObjectDef",
    "FieldRow",
]
