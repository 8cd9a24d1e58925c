"""Cursor pagination for the REST API: a page of items and an opaque cursor to the next one.

The cursor wraps the last item's sort key (keyset paging), so pages stay fast and stable while
rows are added; clients pass it back unchanged as `?cursor=`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from koppel.accounts.errors import N_
from koppel.errors import ErrorCategory, KoppelError

T = TypeVar("T")
Item = TypeVar("Item", bound=BaseModel)
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class InvalidCursor(KoppelError):
    category = ErrorCategory.CONFIGURATION
    message_id = N_("The cursor is not one this API gave out; start again without it.")

    def __init__(self) -> None:
        super().__init__(self.message_id)


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_cursor: str | None
    """Pass as `?cursor=` for the next page; null on the last page."""


def encode_cursor(after: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, key_type: type) -> Any:
    """The sort key the page starts after; None for the first page."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor() from None
    if not isinstance(document, dict) or not isinstance(document.get("after"), key_type):
        raise InvalidCursor()
    return document["after"]


def paginate(
    fetch: Callable[[Any, int], Sequence[T]],
    *,
    cursor: str | None,
    limit: int,
    key: Callable[[T], Any],
    key_type: type,
    to_item: Callable[[T], Item],
) -> Page[Item]:
    """`fetch(after, n)` returns up to n rows after the key; one more than asked tells whether
    there is a next page."""
    rows = list(fetch(decode_cursor(cursor, key_type), limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(key(rows[-1])) if more and rows else None
    return Page[Item](items=[to_item(row) for row in rows], next_cursor=next_cursor)


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "InvalidCursor",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "paginate",
]
