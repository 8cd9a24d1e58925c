"""Keys the flows make up: content hashes of what was sent, and AccountView article-group codes.

An AccountView article group is keyed by a five-character AG_CODE while Parts Pim categories have
names and ids of any length, so the products flow invents codes. A code must be stable (the same
category keeps its code: it is stored in the category's link) and unique (two categories never
share one, and a group that exists in AccountView for another purpose is never taken over).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

GROUP_CODE_LENGTH = 5
_PREFIX_LENGTH = 3
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


_HASHED_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_plain)
"""The text a hash is taken of, as `json.dumps` with these options makes it (links store the
hashes, so it must never change); one encoder for all, as `json.dumps` made one per call,
a third of the hash's time."""


def content_hash(payload: Mapping[str, Any]) -> str:
    """A hash of a payload that does not depend on key order or on how numbers were typed."""
    return hashlib.sha256(_HASHED_JSON.encode(payload).encode()).hexdigest()


def ascii_upper(text: str) -> str:
    """'Bremsbeläge & Zubehör' -> 'BREMSBELAGEZUBEHOR': letters and digits only."""
    text = text.replace("ß", "ss")
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = decomposed.encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Z0-9]", "", ascii_text.upper())


def _base36(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 36)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits))


def group_code_candidates(source_key: str, name: str) -> Iterator[str]:
    """Codes to try for a category, best first: a readable prefix from its name, then a hash.

    'Remschijven' with key '17' gives 'REM' + two characters from the key's hash; when every
    such code is taken the whole code comes from the hash.
    """
    prefix = ascii_upper(name)[:_PREFIX_LENGTH].ljust(_PREFIX_LENGTH, "X")
    suffix_width = GROUP_CODE_LENGTH - _PREFIX_LENGTH
    for salt in range(36**suffix_width):
        digest = int.from_bytes(hashlib.sha256(f"{source_key}:{salt}".encode()).digest()[:8])
        yield prefix + _base36(digest, suffix_width)
    for salt in range(1_000_000):
        digest = int.from_bytes(hashlib.sha256(f"{source_key}#{salt}".encode()).digest()[:8])
        yield _base36(digest, GROUP_CODE_LENGTH)


def assign_group_code(source_key: str, name: str, is_taken: Callable[[str], bool]) -> str:
    """The first candidate code that no other category or AccountView group uses."""
    for code in group_code_candidates(source_key, name):
        if not is_taken(code):
            return code
    raise RuntimeError("no free article-group code left")  # 36**5 codes: unreachable in practice


__all__ = ["GROUP_CODE_LENGTH", "ascii_upper", "assign_group_code", "content_hash"]
