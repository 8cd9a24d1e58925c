"""Encryption of credentials at rest, the generated key file, and password hashing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from cryptography.fernet import Fernet

from koppel.secrets import (
    KEY_FILE_NAME,
    SecretBox,
    SecretDecryptionError,
    SecretKeyError,
    hash_password,
    password_needs_rehash,
    verify_password,
)
from koppel.settings import Settings


def test_round_trip_and_the_token_hides_the_secret() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    token = box.encrypt_json({"api_key": "s3cr3t-value", "company_id": 1})
    assert b"s3cr3t-value" not in token
    assert box.decrypt_json(token) == {"api_key": "s3cr3t-value", "company_id": 1}


def test_a_token_from_another_key_gives_a_clear_error_without_the_secret() -> None:
    token = SecretBox([Fernet.generate_key().decode()]).encrypt_json({"password": "hunter2"})
    with pytest.raises(SecretDecryptionError) as raised:
        SecretBox([Fernet.generate_key().decode()]).decrypt_json(token)
    assert str(raised.value) == (
        "credentials were encrypted with another KOPPEL_SECRET_KEY; "
        "restore the old key or re-enter the credentials"
    )
    assert "hunter2" not in str(raised.value)


def test_rotation_moves_tokens_to_the_first_key() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox([old_key]).encrypt_json({"k": "v"})
    rotated = SecretBox([new_key, old_key]).rotate(token)
    assert SecretBox([new_key]).decrypt_json(rotated) == {"k": "v"}
    with pytest.raises(SecretDecryptionError):
        SecretBox([new_key]).rotate(b"not-a-token")


def test_keys_come_comma_separated_from_the_settings() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox([old_key]).encrypt_json({"k": "v"})
    box = SecretBox.from_settings(Settings(secret_key=f"{new_key}, {old_key}"))
    assert box.decrypt_json(token) == {"k": "v"}


def test_an_invalid_key_is_named_by_position_never_shown() -> None:
    good = Fernet.generate_key().decode()
    with pytest.raises(SecretKeyError) as raised:
        SecretBox([good, "not-a-fernet-key-ABCDEF"])
    assert "key #2" in str(raised.value)
    assert "ABCDEF" not in str(raised.value) and good not in str(raised.value)


def test_without_a_configured_key_one_is_generated_owner_only_and_reused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", secret_key=None)
    token = SecretBox.from_settings(settings).encrypt_json({"k": "v"})

    key_file = tmp_path / "home" / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert SecretBox.from_settings(settings).decrypt_json(token) == {"k": "v"}
    assert [p.name for p in key_file.parent.iterdir()] == [KEY_FILE_NAME]


def test_passwords_are_hashed_with_argon2id_at_owasp_parameters() -> None:
    hashed = hash_password("correct horse")
    # OWASP's Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "correct horse" not in hashed
    assert not password_needs_rehash(hashed)
    older = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("correct horse")
    assert password_needs_rehash(older) and verify_password(older, "correct horse")
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")
    assert not verify_password("not-a-hash", "correct horse")
