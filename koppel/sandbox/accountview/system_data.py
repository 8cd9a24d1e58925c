"""The data dictionary as rows: DCT_FLD (one row per field) and DCT_FILE (one row per table).

Every company holds the same rows, written afresh whenever the sandbox starts, so that the FLD
and DBF business objects are read, filtered and paged like any other (assumptions.SYSTEM_DATA).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.dictionary import dictionary_tables, table_fields
from koppel.sandbox.accountview.store import COMPANY, insert_row, table_sql

_SYSTEM_TABLES = ("DCT_FLD", "DCT_FILE")


def _table_rows() -> list[dict[str, Any]]:
    """One DCT_FILE row per table: the business object that owns it (a detail table's and an
    overlay's is its header's) decides what the API may do to it."""
    main: dict[str, assumptions.BusinessObjectDef] = {}
    owners: dict[str, assumptions.BusinessObjectDef] = {}
    headers: dict[str, str] = {}
    for bo in assumptions.BUSINESS_OBJECTS:
        main.setdefault(bo.table, bo)
        for table in (bo.table, *bo.details, *([bo.overlay] if bo.overlay else [])):
            owners.setdefault(table, bo)
        headers.update({detail: bo.table for detail in bo.details})
    rows = []
    for name in dictionary_tables():
        table_bo = main.get(name)
        owner = owners[name]
        rows.append(
            {
                "DBF_NAME": name,
                "DBF_DESC": table_bo.description if table_bo is not None else "",
                "DBF_TYPE": 1 if name in _SYSTEM_TABLES else 2,
                "OBJ_CODE": table_bo.code if table_bo is not None else "",
                "TBL_CHILD": ",".join(table_bo.details) if table_bo is not None else "",
                "TBL_HDR": headers.get(name, ""),
                "NO_INSERT": not owner.insert_allowed,
                "NO_UPDATE": not owner.update_allowed,
                "NO_DELETE": not owner.delete_allowed,
                "NO_XML_UPD": not (owner.insert_allowed or owner.update_allowed),
            }
        )
    return rows


def refresh_dictionary(conn: sqlite3.Connection, company: str) -> None:
    """Write the dictionary rows of one company (replacing what an older sandbox left)."""
    for name in _SYSTEM_TABLES:
        conn.execute(f"DELETE FROM {table_sql(name)} WHERE {COMPANY} = ?", (company,))
    for table in dictionary_tables():
        for field in table_fields(table).values():
            insert_row(conn, company, "DCT_FLD", field.dct_fld())
    for row in _table_rows():
        insert_row(conn, company, "DCT_FILE", row)


__all__ = ["refresh_dictionary"]
