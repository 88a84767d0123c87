"""Fixtures for the key tests: one `key_store` fixture, run against both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys.store import FileKeyStore, KeyStore
from tests.fixtures.softhsm import SoftHsmToken, softhsm_token

__all__ = ["softhsm_token"]

#: The cheapest scrypt cost a store accepts: real key files use 2^17.
FAST_SCRYPT = 14
NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[FileKeyStore]:
    with FileKeyStore(tmp_path / "keys", PASSPHRASE, scrypt_log2_n=FAST_SCRYPT) as store:
        yield store


@pytest.fixture
def pkcs11_store(softhsm_token: SoftHsmToken) -> Iterator[KeyStore]:
    from keys.pkcs11 import Pkcs11KeyStore

    with Pkcs11KeyStore(softhsm_token.module, softhsm_token.label, softhsm_token.pin) as store:
        yield store


@pytest.fixture(params=["file", pytest.param("pkcs11", marks=pytest.mark.pkcs11)])
def key_store(request: pytest.FixtureRequest) -> KeyStore:
    """The same tests run against the encrypted-file store and the PKCS#11 store."""
    store: KeyStore = request.getfixturevalue(f"{request.param}_store")
    return store
