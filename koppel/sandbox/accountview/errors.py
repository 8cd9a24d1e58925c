"""The one error shape of the AccountView API, and the error of one posted row."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer `{"ErrorType":"AccountViewError","ErrorNumbers":null,"ErrorMessage":...}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"ErrorType": "AccountViewError", "ErrorNumbers": None, "ErrorMessage": self.message}


class RowError(Exception):
    """A posted row breaks a rule; the message names table, row, RowId, HeaderId and field."""

    def __init__(
        self,
        table: str,
        position: int,
        row_id: str,
        header_id: str | None,
        field: str,
        rule: str,
    ) -> None:
        ids = f"RowId {row_id}" + (f", HeaderId {header_id}" if header_id is not None else "")
        super().__init__(f"{table} row {position} ({ids}): field {field}: {rule}")
        self.field = field
        self.rule = rule


__all__ = ["ApiError", "RowError"]
