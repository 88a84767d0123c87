"""The terminal's trust store: loaded from a directory, checked again, immutable."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from cardsys.config import UnknownStatusPolicy, load_settings
from cardsys.errors import (
    RevokedError,
    StaleTrustError,
    StatusUnknownError,
    TrustListError,
    TrustListSignatureError,
    UnknownKeyError,
    UntrustedSignerError,
    WrongPurposeError,
)
from cardsys.formats.statuslist import Status
from cardsys.pki import Purpose, kid
from cardsys.wallet import Wallet
from tests.unit.verify.conftest import BASE, NOW, Agency
from verify.qr import verify_qr
from verify.result import StatusCheck
from verify.trust import STATUS_DIR, TRUST_LIST_FILE, TerminalPolicy, TrustStore, list_number


def test_a_directory_loads_and_verifies(agency: Agency, wallet: Wallet, tmp_path: Path) -> None:
    directory = agency.write_directory(tmp_path, {0: agency.status_list({7: Status.REVOKED})})
    store = TrustStore.load(directory, now=NOW)
    assert store.trust_list.sequence == 1
    assert verify_qr(wallet.presentation(NOW), store, now=NOW)
    with pytest.raises(RevokedError):
        store.status(f"{BASE}/0", 7, now=int(NOW.timestamp()))


def test_status_lookup_by_number_for_chip_cards(agency: Agency, tmp_path: Path) -> None:
    lists = {0: agency.status_list(), 3: agency.status_list({2: Status.REVOKED},
                                                            uri=f"{BASE}/3")}
    store = TrustStore.load(agency.write_directory(tmp_path, lists), now=NOW)
    moment = int(NOW.timestamp())
    assert store.status_by_number(0, 2, now=moment) is StatusCheck.GOOD
    with pytest.raises(RevokedError):
        store.status_by_number(3, 2, now=moment)
    with pytest.raises(StatusUnknownError):
        store.status_by_number(4, 2, now=moment)


def test_a_tampered_status_list_on_disk_is_left_out(
    agency: Agency, wallet: Wallet, tmp_path: Path
) -> None:
    token = bytearray(agency.status_list())
    token[-1] ^= 1  # the signature
    directory = agency.write_directory(tmp_path, {0: bytes(token)})
    store = TrustStore.load(directory, now=NOW)
    assert store.refused_lists[0][0] == "0"
    assert "bad_signature" in store.refused_lists[0][1]
    with pytest.raises(StatusUnknownError):
        verify_qr(wallet.presentation(NOW), store, now=NOW)


def test_a_tampered_trust_list_on_disk_is_refused(agency: Agency, tmp_path: Path) -> None:
    directory = agency.write_directory(tmp_path)
    document = bytearray((directory / TRUST_LIST_FILE).read_bytes())
    document[-5] ^= 0x40
    (directory / TRUST_LIST_FILE).write_bytes(bytes(document))
    with pytest.raises(TrustListSignatureError):
        TrustStore.load(directory, now=NOW)


def test_a_trust_list_of_another_root_is_refused(
    agency: Agency, other_agency: Agency, tmp_path: Path
) -> None:
    directory = agency.write_directory(tmp_path)
    (directory / TRUST_LIST_FILE).write_bytes(other_agency.trust_list())
    with pytest.raises(TrustListError):
        TrustStore.load(directory, now=NOW)


@pytest.mark.parametrize("missing", ["root.pem", TRUST_LIST_FILE])
def test_an_uninitialised_directory_is_refused(
    missing: str, agency: Agency, tmp_path: Path
) -> None:
    directory = agency.write_directory(tmp_path)
    (directory / missing).unlink()
    with pytest.raises(TrustListError, match="initialise"):
        TrustStore.load(directory, now=NOW)


def test_a_stale_trust_list_is_refused_at_load_and_later(agency: Agency, tmp_path: Path) -> None:
    directory = agency.write_directory(tmp_path)
    with pytest.raises(StaleTrustError):
        TrustStore.load(directory, now=NOW + timedelta(days=11))
    store = TrustStore.load(directory, now=NOW)
    store.check_fresh(NOW + timedelta(days=9))
    with pytest.raises(StaleTrustError):
        store.check_fresh(NOW + timedelta(days=11))


def test_signer_lookup_names_each_failure(agency: Agency, other_agency: Agency) -> None:
    store = agency.store()
    moment = int(NOW.timestamp())
    credential_kid = agency.signer(Purpose.CREDENTIAL).kid
    assert store.signer(credential_kid, Purpose.CREDENTIAL, now=moment).kid == credential_kid
    with pytest.raises(WrongPurposeError):
        store.signer(credential_kid, Purpose.CHIP_DOCUMENT, now=moment)
    with pytest.raises(UnknownKeyError):
        store.signer(other_agency.signer(Purpose.CREDENTIAL).kid, Purpose.CREDENTIAL, now=moment)
    with pytest.raises(UnknownKeyError):
        store.signer(None, Purpose.CREDENTIAL, now=moment)
    with pytest.raises(UntrustedSignerError):  # after the certificate's validity (12 years)
        store.signer(credential_kid, Purpose.CREDENTIAL, now=moment + 13 * 366 * 86400)


def test_trusted_certificate_must_be_the_listed_one(agency: Agency, other_agency: Agency) -> None:
    store = agency.store()
    chip = agency.signer(Purpose.CHIP_DOCUMENT).certificate
    assert store.trusted_certificate(chip, Purpose.CHIP_DOCUMENT, now=NOW).kid == kid(chip)
    with pytest.raises(UnknownKeyError):
        store.trusted_certificate(other_agency.signer(Purpose.CHIP_DOCUMENT).certificate,
                                  Purpose.CHIP_DOCUMENT, now=NOW)


def test_the_store_is_immutable(agency: Agency) -> None:
    store = agency.store()
    with pytest.raises(dataclasses.FrozenInstanceError):
        store.policy = TerminalPolicy(unknown_status=UnknownStatusPolicy.ACCEPT)  # type: ignore[misc]
    with pytest.raises(TypeError):
        store._signers[b"12345678"] = ()  # type: ignore[index]


def test_the_newest_of_two_lists_for_one_uri_wins(agency: Agency, wallet: Wallet) -> None:
    older = agency.status_list({5: Status.REVOKED}, iat=NOW - timedelta(hours=2))
    newer = agency.status_list(iat=NOW - timedelta(hours=1))
    for order in ([older, newer], [newer, older]):
        assert verify_qr(wallet.presentation(NOW), agency.store(order), now=NOW)


def test_policy_from_settings() -> None:
    settings = load_settings(env={}, overrides={
        "presentation_window": 60, "presentation_step": 20, "clock_skew": 30,
        "status_list_max_age": 600, "unknown_status_policy": "accept", "trust_list_grace": 10,
    })
    policy = TerminalPolicy.from_settings(settings)
    assert policy.presentation_window == timedelta(seconds=60)
    assert policy.clock_skew == timedelta(seconds=30)
    assert policy.status_list_max_age == timedelta(seconds=600)
    assert policy.unknown_status is UnknownStatusPolicy.ACCEPT
    assert policy.trust_list_grace == timedelta(seconds=10)


def test_describe_reports_lists_and_freshness(agency: Agency, tmp_path: Path) -> None:
    store = TrustStore.load(agency.write_directory(tmp_path), now=NOW)
    summary = store.describe(NOW)
    assert summary["trust_list_sequence"] == 1
    lists = summary["status_lists"]
    assert isinstance(lists, dict)
    assert lists[f"{BASE}/0"]["fresh"] is True
    assert store.describe(NOW + timedelta(days=2))["status_lists"][f"{BASE}/0"]["fresh"] is False


@pytest.mark.parametrize(
    ("uri", "number"),
    [(f"{BASE}/12", 12), (f"{BASE}/12/", 12), ("http://x/status/latest", None), ("", None)],
)
def test_list_number(uri: str, number: int | None) -> None:
    assert list_number(uri) == number


def test_files_other_than_shards_are_ignored(agency: Agency, tmp_path: Path) -> None:
    directory = agency.write_directory(tmp_path)
    (directory / STATUS_DIR / "index.json").write_text("{}")
    (directory / STATUS_DIR / ".0.tmp").write_bytes(b"junk")
    assert TrustStore.load(directory, now=NOW).refused_lists == ()
