"""Pkcs11KeyStore against SoftHSM2: keys stay in the token, wrong PINs and tokens are refused."""

from __future__ import annotations

import pytest

from cardsys.config import KeyStoreKind, load_settings
from cardsys.errors import KeyStoreError, WrongPinError
from keys.store import Curve, KeyStore, open_key_store
from tests.fixtures.softhsm import SoftHsmToken

pytestmark = pytest.mark.pkcs11


@pytest.fixture
def pkcs11_module(softhsm_token: SoftHsmToken) -> type:
    from keys.pkcs11 import Pkcs11KeyStore

    return Pkcs11KeyStore


def test_keys_are_sensitive_and_never_extractable(
    pkcs11_store: KeyStore, softhsm_token: SoftHsmToken
) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    ref = pkcs11_store.generate("credential", Curve.P256)
    session = pkcs11_store._session  # type: ignore[attr-defined]
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=ref)
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.ALWAYS_SENSITIVE] is True
    assert key[Attribute.TOKEN] is True
    assert key[Attribute.ID] == ref.encode()
    with pytest.raises(pkcs11.AttributeSensitive):
        key[Attribute.VALUE]


def test_keys_survive_a_new_session(pkcs11_module: type, softhsm_token: SoftHsmToken) -> None:
    with pkcs11_module(softhsm_token.module, softhsm_token.label, softhsm_token.pin) as first:
        ref = first.generate("root", Curve.P384)
        expected = first.public_key(ref).public_numbers()
    with pkcs11_module(softhsm_token.module, softhsm_token.label, softhsm_token.pin) as second:
        assert second.public_key(ref).public_numbers() == expected
        second.sign(ref, b"data")


@pytest.mark.parametrize("already_logged_in", [False, True])
def test_wrong_pin_is_a_specific_error(
    pkcs11_module: type, softhsm_token: SoftHsmToken, already_logged_in: bool
) -> None:
    # Once any session is logged in, C_Login answers "already logged in" to every PIN:
    # the store must still refuse a wrong one.
    wrong = softhsm_token.pin[:-1] + ("0" if softhsm_token.pin[-1] != "0" else "1")
    if already_logged_in:
        right = pkcs11_module(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
        with right, pytest.raises(WrongPinError):
            pkcs11_module(softhsm_token.module, softhsm_token.label, wrong)
    else:
        with pytest.raises(WrongPinError) as caught:
            pkcs11_module(softhsm_token.module, softhsm_token.label, wrong)
        assert wrong not in str(caught.value)


def test_two_stores_with_the_right_pin_share_the_login(
    pkcs11_module: type, softhsm_token: SoftHsmToken
) -> None:
    first = pkcs11_module(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    second = pkcs11_module(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    ref = first.generate("credential", Curve.P256)
    first.close()
    second.sign(ref, b"still logged in through the second store")
    second.close()
    with pytest.raises(WrongPinError):
        pkcs11_module(softhsm_token.module, softhsm_token.label, "not-the-pin")


def test_missing_token_is_a_key_store_error(
    pkcs11_module: type, softhsm_token: SoftHsmToken
) -> None:
    with pytest.raises(KeyStoreError, match="no PKCS#11 token") as caught:
        pkcs11_module(softhsm_token.module, "no-such-token", softhsm_token.pin)
    assert not isinstance(caught.value, WrongPinError)


def test_missing_module_is_a_key_store_error(
    pkcs11_module: type, softhsm_token: SoftHsmToken
) -> None:
    with pytest.raises(KeyStoreError, match="cannot load"):
        pkcs11_module("/nonexistent/libpkcs11.so", softhsm_token.label, softhsm_token.pin)


def test_empty_pin_is_refused_before_touching_the_token(pkcs11_module: type) -> None:
    with pytest.raises(KeyStoreError, match="PIN"):
        pkcs11_module("/nonexistent/libpkcs11.so", "x", "")


def test_a_closed_store_refuses_to_sign(pkcs11_module: type, softhsm_token: SoftHsmToken) -> None:
    store = pkcs11_module(softhsm_token.module, softhsm_token.label, softhsm_token.pin)
    ref = store.generate("credential", Curve.P256)
    store.close()
    store.close()  # idempotent
    with pytest.raises(KeyStoreError, match="closed"):
        store.sign(ref, b"data")


def test_repr_shows_no_pin(pkcs11_store: KeyStore, softhsm_token: SoftHsmToken) -> None:
    assert softhsm_token.pin not in repr(pkcs11_store)


def test_open_key_store_picks_pkcs11_from_settings(softhsm_token: SoftHsmToken) -> None:
    settings = load_settings(
        env={
            "CARDSYS_KEY_STORE": "pkcs11",
            "CARDSYS_PKCS11_MODULE": softhsm_token.module,
            "CARDSYS_PKCS11_TOKEN_LABEL": softhsm_token.label,
            "CARDSYS_PKCS11_PIN": softhsm_token.pin,
        }
    )
    with open_key_store(settings) as store:
        assert store.kind is KeyStoreKind.PKCS11
        ref = store.generate("audit", Curve.P256)
        assert store.contains(ref)
