"""Terminal sync: verify before replacing, refuse rollback, keep the last good state."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from cardsys.errors import (
    ConfigError,
    RevokedError,
    RollbackError,
    StaleTrustError,
    TrustListError,
    TrustListSignatureError,
)
from cardsys.formats.statuslist import Status
from cardsys.pki import Purpose
from cardsys.wallet import Wallet
from tests.unit.verify.conftest import BASE, NOW, Agency
from verify.qr import verify_qr
from verify.sync import SyncError, init_terminal, sync
from verify.trust import STATE_FILE, TRUST_LIST_FILE, TrustStore


def publish(agency: Agency, source: Path, *, sequence: int | None = None,
            lists: dict[int, bytes] | None = None) -> Path:
    """What the agency's public area holds: trust list, status lists, their index. The trust
    list is re-signed only when a sequence number is given (signatures are randomised, and
    new bytes under the same number are a rollback attempt)."""
    (source / "status").mkdir(parents=True, exist_ok=True)
    if sequence is not None or not (source / TRUST_LIST_FILE).exists():
        (source / TRUST_LIST_FILE).write_bytes(agency.trust_list(sequence=sequence or 1))
    lists = lists if lists is not None else {0: agency.status_list()}
    for number, token in lists.items():
        (source / "status" / str(number)).write_bytes(token)
    (source / "status" / "index.json").write_text(json.dumps({"lists": sorted(lists)}))
    return source


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def terminal(agency: Agency, tmp_path: Path) -> Path:
    directory = tmp_path / "terminal"
    init_terminal(agency.pki.root.certificate.public_bytes(Encoding.PEM), directory)
    return directory


def test_init_pins_the_root_once(agency: Agency, other_agency: Agency, terminal: Path) -> None:
    pem = agency.pki.root.certificate.public_bytes(Encoding.PEM)
    init_terminal(pem, terminal)  # the same root again: fine
    with pytest.raises(TrustListError, match="another root"):
        init_terminal(other_agency.pki.root.certificate.public_bytes(Encoding.PEM), terminal)
    signer_pem = agency.signer(Purpose.CREDENTIAL).certificate.public_bytes(Encoding.PEM)
    with pytest.raises(TrustListError, match="self-signed CA"):
        init_terminal(signer_pem, terminal.parent / "other")
    with pytest.raises(TrustListError, match="PEM"):
        init_terminal(b"not a certificate", terminal.parent / "third")


def test_sync_from_a_directory_then_verify(
    agency: Agency, wallet: Wallet, terminal: Path, tmp_path: Path
) -> None:
    source = publish(agency, tmp_path / "public")
    report = sync(source, terminal, now=NOW)
    assert report.trust_list_updated
    assert report.updated == (0,)
    assert verify_qr(wallet.presentation(NOW), TrustStore.load(terminal, now=NOW), now=NOW)
    again = sync(source, terminal, now=NOW)
    assert (again.trust_list_updated, again.unchanged) == (False, (0,))


def test_revocation_reaches_the_terminal_at_its_next_sync(
    agency: Agency, wallet: Wallet, terminal: Path, tmp_path: Path
) -> None:
    source = publish(agency, tmp_path / "public")
    sync(source, terminal, now=NOW)
    publish(agency, source, lists={0: agency.status_list({5: Status.REVOKED}, iat=NOW)})
    store = TrustStore.load(terminal, now=NOW)
    assert verify_qr(wallet.presentation(NOW), store, now=NOW)  # not synced yet
    assert sync(source, terminal, now=NOW).updated == (0,)
    with pytest.raises(RevokedError):
        verify_qr(wallet.presentation(NOW), TrustStore.load(terminal, now=NOW), now=NOW)


def test_an_older_trust_list_is_a_rollback_and_changes_nothing(
    agency: Agency, terminal: Path, tmp_path: Path
) -> None:
    source = publish(agency, tmp_path / "public", sequence=5)
    sync(source, terminal, now=NOW)
    before = snapshot(terminal)
    publish(agency, source, sequence=4)
    with pytest.raises(RollbackError):
        sync(source, terminal, now=NOW)
    assert snapshot(terminal) == before


def test_the_same_sequence_with_other_bytes_is_refused(
    agency: Agency, terminal: Path, tmp_path: Path
) -> None:
    source = publish(agency, tmp_path / "public", sequence=2)
    sync(source, terminal, now=NOW)
    (source / TRUST_LIST_FILE).write_bytes(
        agency.trust_list(sequence=2, issued_at=NOW - timedelta(minutes=1))
    )
    with pytest.raises(RollbackError):
        sync(source, terminal, now=NOW)


def test_a_tampered_trust_list_changes_nothing(
    agency: Agency, terminal: Path, tmp_path: Path
) -> None:
    source = publish(agency, tmp_path / "public")
    sync(source, terminal, now=NOW)
    before = snapshot(terminal)
    document = bytearray(agency.trust_list(sequence=2))
    document[-3] ^= 1
    (source / TRUST_LIST_FILE).write_bytes(bytes(document))
    (source / "status" / "0").write_bytes(agency.status_list({5: Status.REVOKED}, iat=NOW))
    with pytest.raises(TrustListSignatureError):
        sync(source, terminal, now=NOW)
    assert snapshot(terminal) == before


def test_a_stale_trust_list_is_refused(agency: Agency, terminal: Path, tmp_path: Path) -> None:
    source = publish(agency, tmp_path / "public")
    with pytest.raises(StaleTrustError):
        sync(source, terminal, now=NOW + timedelta(days=30))


@pytest.mark.parametrize("problem", ["older", "bad_signature", "wrong_uri", "wrong_signer"])
def test_a_bad_status_list_keeps_the_held_copy(
    problem: str, agency: Agency, terminal: Path, tmp_path: Path
) -> None:
    good = agency.status_list({5: Status.SUSPENDED}, iat=NOW)
    source = publish(agency, tmp_path / "public", lists={0: good, 1: agency.status_list(
        uri=f"{BASE}/1")})
    sync(source, terminal, now=NOW)
    if problem == "older":
        bad = agency.status_list(iat=NOW - timedelta(hours=1))
    elif problem == "bad_signature":
        bad = bytearray(agency.status_list(iat=NOW + timedelta(minutes=1)))
        bad[-1] ^= 1
        bad = bytes(bad)
    elif problem == "wrong_uri":
        bad = agency.status_list(uri=f"{BASE}/7", iat=NOW + timedelta(minutes=1))
    else:
        bad = agency.status_list(iat=NOW + timedelta(minutes=1),
                                 signer=agency.signer(Purpose.CHIP_DOCUMENT))
    newer_one = agency.status_list({3: Status.REVOKED}, uri=f"{BASE}/1",
                                   iat=NOW + timedelta(minutes=1))
    publish(agency, source, lists={0: bad, 1: newer_one})
    report = sync(source, terminal, now=NOW + timedelta(minutes=2))
    assert [n for n, _ in report.refused] == [0]
    assert report.updated == (1,)
    assert (terminal / "status" / "0").read_bytes() == good


def test_a_damaged_state_file_is_not_silently_reset(
    agency: Agency, terminal: Path, tmp_path: Path
) -> None:
    source = publish(agency, tmp_path / "public")
    sync(source, terminal, now=NOW)
    (terminal / STATE_FILE).write_text("{not json")
    with pytest.raises(TrustListError, match="unreadable"):
        sync(source, terminal, now=NOW)


@pytest.mark.parametrize("index", ['{"lists": "all"}', "[]", '{"lists": [-1]}', "nonsense"])
def test_a_malformed_index_fails_the_sync(
    index: str, agency: Agency, terminal: Path, tmp_path: Path
) -> None:
    source = publish(agency, tmp_path / "public")
    (source / "status" / "index.json").write_text(index)
    with pytest.raises(SyncError):
        sync(source, terminal, now=NOW)
    assert not (terminal / TRUST_LIST_FILE).exists()


def test_sources_must_be_http_or_a_directory(terminal: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        sync("ftp://example.org/public", terminal, now=NOW)
    with pytest.raises(SyncError):
        sync(tmp_path / "missing", terminal, now=NOW)


@pytest.fixture
def http_source(agency: Agency, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "site"
    publish(agency, root / "public")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root / "public"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_sync_over_http(
    agency: Agency, wallet: Wallet, terminal: Path, http_source: tuple[str, Path]
) -> None:
    url, public = http_source
    report = sync(url, terminal, now=NOW)  # no path: /public is implied
    assert report.updated == (0,)
    assert verify_qr(wallet.presentation(NOW), TrustStore.load(terminal, now=NOW), now=NOW)
    (public / "status" / "0").unlink()
    later = sync(url + "/public/", terminal, now=NOW)
    assert later.refused[0][0] == 0
    assert "HTTP 404" in later.refused[0][1]
    (public / TRUST_LIST_FILE).unlink()
    with pytest.raises(SyncError, match="404"):
        sync(url, terminal, now=NOW)
