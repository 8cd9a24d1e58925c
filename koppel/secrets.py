"""Encryption of credentials at rest, and password hashing for the web app.

Credentials are encrypted with Fernet under the application key (KOPPEL_SECRET_KEY, or a key
generated once into `{home}/secret.key`), so a copy of the database alone reveals nothing.
KOPPEL_SECRET_KEY may list several keys: the first encrypts, all decrypt, so a key can be replaced
without losing access to what the old one encrypted (rotate, then drop the old key).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from koppel.errors import ErrorCategory, KoppelError
from koppel.files import private_directory
from koppel.settings import Settings

KEY_FILE_NAME = "secret.key"
_GENERATE_HINT = (
    "generate one with: python -c "
    "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)
# Argon2id with OWASP's Password Storage Cheat Sheet parameters: m=19 MiB, t=2, p=1.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
_password_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)


class SecretKeyError(KoppelError, ValueError):
    """The configured key is unusable. The message says which key, never what it is."""

    category = ErrorCategory.CONFIGURATION


class SecretDecryptionError(KoppelError):
    """A token does not decrypt with any configured key. The message never contains a secret."""

    category = ErrorCategory.CONFIGURATION

    def __init__(self) -> None:
        super().__init__(
            "credentials were encrypted with another KOPPEL_SECRET_KEY; "
            "restore the old key or re-enter the credentials"
        )


class SecretBox:
    """Encrypts and decrypts JSON objects with the application key(s)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError(f"KOPPEL_SECRET_KEY is empty; {_GENERATE_HINT}")
        fernets: list[Fernet] = []
        for number, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except (ValueError, TypeError):
                raise SecretKeyError(
                    f"KOPPEL_SECRET_KEY: key #{number} is not a valid Fernet key "
                    f"(32 url-safe base64-encoded bytes); {_GENERATE_HINT}"
                ) from None
        self._fernet = MultiFernet(fernets)
        primary = base64.urlsafe_b64decode(keys[0].strip().encode())
        self._hash_key = hmac.new(primary, b"koppel keyed hash v1", hashlib.sha256).digest()

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """Use KOPPEL_SECRET_KEY, else the key file under `home` (created on first use)."""
        if settings.secret_key is not None:
            keys = [k for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
            return cls(keys)
        return cls([_read_or_create_key_file(settings.home / KEY_FILE_NAME)])

    def encrypt_json(self, value: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode())

    def decrypt_json(self, token: bytes) -> dict[str, Any]:
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretDecryptionError() from None
        value = json.loads(plain)
        if not isinstance(value, dict):
            raise SecretDecryptionError()
        return value

    def keyed_hash(self, text: str) -> str:
        """HMAC-SHA256 of `text` under a key derived from the primary key, in hex.

        For personal data Koppel must find again but need not read back (the debtor e-mail
        index): a copy of the database alone cannot tell which addresses it holds. Another
        primary key gives other hashes."""
        return hmac.new(self._hash_key, text.encode(), hashlib.sha256).hexdigest()

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt a token under the primary (first) key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise SecretDecryptionError() from None


def _read_or_create_key_file(path: Path) -> str:
    """Create the key file owner-only and atomically: concurrent first starts agree on one key."""
    if not path.exists():
        private_directory(path.parent)
        # mkstemp creates the file with mode 0600: the key is never readable by others.
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".secret-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key() + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            # link() fails if another process created the file first: then its key wins.
            with contextlib.suppress(FileExistsError):
                os.link(temp_name, path)
        finally:
            os.unlink(temp_name)
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise SecretKeyError(f"{path} is empty; delete it to generate a new key")
    return key


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """True for a hash made with other parameters than today's: rehash it at the next sign-in."""
    try:
        return _password_hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


__all__ = [
    "KEY_FILE_NAME",
    "SecretBox",
    "SecretDecryptionError",
    "SecretKeyError",
    "hash_password",
    "password_needs_rehash",
    "verify_password",
]
