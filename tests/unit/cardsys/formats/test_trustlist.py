"""The trust list from a terminal's side: every way an attacker could bend it is refused."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cardsys.errors import (
    CrlError,
    RollbackError,
    StaleTrustError,
    TrustListError,
    TrustListSignatureError,
    TrustListSignerError,
    UnknownKeyError,
    UntrustedSignerError,
    ValidationError,
    WrongPurposeError,
)
from cardsys.formats import cbor, cose
from cardsys.formats.trustlist import (
    CONTENT_TYPE,
    MAX_VALIDITY,
    TrustList,
    build_trust_list,
    kid_of,
    parse_trust_list,
)
from cardsys.pki import Purpose, Signer, kid
from keys.ephemeral import EphemeralPki, ephemeral_pki

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
GRACE = timedelta(days=3)


@pytest.fixture(scope="module")
def pki() -> EphemeralPki:
    return ephemeral_pki(NOW)


def listed(pki: EphemeralPki, *extra: Signer) -> list[tuple[Purpose, x509.Certificate]]:
    entries = [(purpose, signer.certificate) for purpose, signer in pki.signers.items()]
    return entries + [(_purpose_of(s), s.certificate) for s in extra]


def _purpose_of(signer: Signer) -> Purpose:
    eku = signer.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    purpose = Purpose.from_oid(next(iter(eku)))
    assert purpose is not None
    return purpose


def build(
    pki: EphemeralPki,
    *,
    sequence: int = 5,
    signer: Signer | None = None,
    signers: list[tuple[Purpose, x509.Certificate]] | None = None,
    crl: x509.CertificateRevocationList | None = None,
    issued_at: datetime = NOW,
    next_update: datetime | None = None,
) -> bytes:
    return build_trust_list(
        sequence=sequence,
        issuer="cardsys-test",
        issued_at=issued_at,
        next_update=next_update or issued_at + WEEK,
        root=pki.root.certificate,
        signers=listed(pki) if signers is None else signers,
        crl=pki.crl if crl is None else crl,
        signer=signer or pki.root,
    )


def parse(
    pki: EphemeralPki,
    data: bytes,
    *,
    now: datetime = NOW,
    previous_sequence: int | None = None,
    previous_digest: bytes | None = None,
) -> TrustList:
    return parse_trust_list(
        data,
        root=pki.root.certificate,
        now=now,
        previous_sequence=previous_sequence,
        grace=GRACE,
        previous_digest=previous_digest,
    )


def payload_fields(pki: EphemeralPki, **changes: Any) -> dict[int, Any]:
    """The payload fields of a good list, with some replaced (for hand-made bad lists)."""
    fields: dict[int, Any] = {
        1: 1,
        2: 5,
        3: "cardsys-test",
        4: int(NOW.timestamp()),
        5: int((NOW + WEEK).timestamp()),
        6: kid(pki.root.certificate),
        7: [[p.value, c.public_bytes(Encoding.DER)] for p, c in listed(pki)],
        8: pki.crl.public_bytes(Encoding.DER),
    }
    for key, value in changes.items():
        index = int(key.removeprefix("f"))
        if value is ...:
            del fields[index]
        else:
            fields[index] = value
    return fields


def signed(
    payload: bytes,
    signer: Signer,
    *,
    kid_value: bytes | None = None,
    content_type: object = CONTENT_TYPE,
) -> bytes:
    extra = {} if content_type is None else {cose.CONTENT_TYPE: content_type}
    return cose.sign1(
        payload,
        sign=signer.sign,
        alg=signer.algorithm,
        kid=signer.kid if kid_value is None else kid_value,
        protected_extra=extra,
    ).encode()


# --- the good path ----------------------------------------------------------------------------


def test_root_signed_list_round_trips(pki: EphemeralPki) -> None:
    data = build(pki)
    trust = parse(pki, data)
    assert trust.sequence == 5
    assert trust.version == 1
    assert trust.issuer == "cardsys-test"
    assert trust.issued_at == NOW
    assert trust.next_update == NOW + WEEK
    assert trust.signed_by == kid(pki.root.certificate)
    assert {(s.purpose, s.kid) for s in trust.signers} == {
        (p, s.kid) for p, s in pki.signers.items()
    }
    assert trust.revoked == ()
    message = cose.Sign1.decode(data)
    assert message.protected[cose.CONTENT_TYPE] == CONTENT_TYPE
    assert message.kid == kid(pki.root.certificate)
    for purpose, signer in pki.signers.items():
        assert trust.certificates_for(signer.kid, purpose) == (signer.certificate,)


def test_list_signed_by_a_listed_trust_list_signer(pki: EphemeralPki) -> None:
    signer = pki.signers[Purpose.TRUST_LIST]
    trust = parse(pki, build(pki, signer=signer))
    assert trust.signed_by == signer.kid


def test_payload_is_deterministic(pki: EphemeralPki) -> None:
    first = cose.Sign1.decode(build(pki))
    second = cose.Sign1.decode(build(pki, signers=list(reversed(listed(pki)))))
    assert first.payload == second.payload
    assert cbor.dumps(cbor.loads(first.payload)) == first.payload


def test_trust_list_module_imports_nothing_of_the_issuing_side() -> None:
    code = (
        "import sys, cardsys.formats.trustlist;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('keys','sqlalchemy','flask','issuance')"
        " or m in ('cardsys.db','cardsys.models','cardsys.audit')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- signature and signer -------------------------------------------------------------------


def test_every_sampled_byte_flip_is_refused(pki: EphemeralPki) -> None:
    data = build(pki)
    positions = sorted(set(range(0, len(data), 13)) | set(range(len(data) - 100, len(data))))
    for position in positions:
        tampered = bytearray(data)
        tampered[position] ^= 0x04
        with pytest.raises(TrustListError):
            parse(pki, bytes(tampered))


def test_a_flip_inside_a_listed_certificate_is_a_signature_error(pki: EphemeralPki) -> None:
    data = build(pki)
    der = pki.signers[Purpose.CREDENTIAL].certificate.public_bytes(Encoding.DER)
    at = data.index(der) + len(der) // 2
    tampered = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    with pytest.raises(TrustListSignatureError):
        parse(pki, tampered)


def test_truncated_and_garbage_documents(pki: EphemeralPki) -> None:
    data = build(pki)
    for bad in (b"", data[:1], data[: len(data) // 2], data[:-1], b"\x00" * 40, data + b"\x00"):
        with pytest.raises(TrustListError):
            parse(pki, bad)


def test_oversized_document_is_refused(pki: EphemeralPki) -> None:
    with pytest.raises(TrustListError):
        parse(pki, b"\xd2\x84" + b"\x40" * (2 << 20))


def test_non_root_key_claiming_the_root_kid(pki: EphemeralPki) -> None:
    impostor = ephemeral_pki(NOW, [])
    payload = cbor.dumps(payload_fields(pki))
    data = signed(payload, impostor.root, kid_value=kid(pki.root.certificate))
    with pytest.raises(TrustListSignatureError):
        parse(pki, data)


def test_non_root_key_with_its_own_kid(pki: EphemeralPki) -> None:
    impostor = ephemeral_pki(NOW, [])
    data = signed(cbor.dumps(payload_fields(pki)), impostor.root)
    with pytest.raises(TrustListSignerError):
        parse(pki, data)


def test_no_kid_at_all(pki: EphemeralPki) -> None:
    message = cose.sign1(
        cbor.dumps(payload_fields(pki)),
        sign=pki.root.sign,
        alg=pki.root.algorithm,
        kid=None,
        protected_extra={cose.CONTENT_TYPE: CONTENT_TYPE},
    )
    with pytest.raises(TrustListSignerError):
        parse(pki, message.encode())


@pytest.mark.parametrize("purpose", [Purpose.CREDENTIAL, Purpose.STATUS_LIST, Purpose.AUDIT])
def test_listed_signer_of_another_purpose_cannot_sign_the_list(
    pki: EphemeralPki, purpose: Purpose
) -> None:
    data = signed(cbor.dumps(payload_fields(pki)), pki.signers[purpose])
    with pytest.raises(TrustListSignerError):
        parse(pki, data)


def test_trust_list_signer_of_another_root_listed_in_the_list(pki: EphemeralPki) -> None:
    stranger = ephemeral_pki(NOW, [Purpose.TRUST_LIST]).signers[Purpose.TRUST_LIST]
    entries = [
        *payload_fields(pki)[7],
        [Purpose.TRUST_LIST.value, stranger.certificate.public_bytes(Encoding.DER)],
    ]
    data = signed(cbor.dumps(payload_fields(pki, f7=entries)), stranger)
    with pytest.raises(TrustListSignerError):
        parse(pki, data)


def test_revoked_trust_list_signer_cannot_sign(pki: EphemeralPki) -> None:
    signer = pki.signers[Purpose.TRUST_LIST]
    revoked = pki.revoke(signer)
    with pytest.raises(TrustListSignerError, match="revoked"):
        parse(pki, build(revoked, signer=signer, crl=revoked.crl))


def test_trust_list_signer_past_its_usage_period(pki: EphemeralPki) -> None:
    signer = pki.signers[Purpose.TRUST_LIST]
    later = NOW + timedelta(days=200)  # usage ended after six months; certificate still valid
    data = build(pki, signer=signer, issued_at=later)
    with pytest.raises(TrustListSignerError, match="not in use"):
        parse(pki, data, now=later)


def test_expired_trust_list_signer(pki: EphemeralPki) -> None:
    signer = pki.signers[Purpose.TRUST_LIST]
    data = build(pki, signer=signer)
    after_expiry = datetime(2037, 6, 1, tzinfo=UTC)
    with pytest.raises(TrustListSignerError):
        parse(pki, data, now=after_expiry)


def test_build_refuses_a_signer_that_is_neither_root_nor_listed(pki: EphemeralPki) -> None:
    with pytest.raises(ValidationError):
        build(pki, signer=pki.signers[Purpose.CREDENTIAL])
    extra = pki.issue(Purpose.TRUST_LIST)
    with pytest.raises(ValidationError):
        build(pki, signer=extra)


# --- content ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "application/cose", 60, "application/cwt"])
def test_wrong_content_type(pki: EphemeralPki, content_type: object) -> None:
    data = signed(cbor.dumps(payload_fields(pki)), pki.root, content_type=content_type)
    with pytest.raises(TrustListError, match="content type"):
        parse(pki, data)


def test_list_for_another_root(pki: EphemeralPki) -> None:
    other = ephemeral_pki(NOW)
    with pytest.raises(TrustListError, match="another root"):
        parse(pki, build(other))


@pytest.mark.parametrize(
    "changes",
    [
        {"f1": 2},  # unknown version
        {"f1": True},
        {"f2": -1},
        {"f2": "5"},
        {"f2": True},
        {"f3": b"issuer"},
        {"f4": 1.5},
        {"f5": None},
        {"f6": b"short"},
        {"f6": "text"},
        {"f7": {}},
        {"f7": [["credential"]]},
        {"f7": [[1, b"x"]]},
        {"f7": [["credential", "not bytes"]]},
        {"f8": "crl"},
        {"f2": ...},  # missing field
        {"f9": 1},  # unknown field
    ],
)
def test_malformed_payloads(pki: EphemeralPki, changes: dict[str, Any]) -> None:
    data = signed(cbor.dumps(payload_fields(pki, **changes)), pki.root)
    with pytest.raises(TrustListError):
        parse(pki, data)


@pytest.mark.parametrize("payload", [cbor.dumps([1, 2]), cbor.dumps(7), b"\xa1\x01", b""])
def test_payload_that_is_not_a_map(pki: EphemeralPki, payload: bytes) -> None:
    with pytest.raises(TrustListError):
        parse(pki, signed(payload, pki.root))


def test_certificate_bytes_that_are_not_der(pki: EphemeralPki) -> None:
    data = signed(
        cbor.dumps(payload_fields(pki, f7=[["credential", b"\x30\x03\x02\x01\x01"]])), pki.root
    )
    with pytest.raises(TrustListError, match="DER"):
        parse(pki, data)


def test_signer_listed_under_a_purpose_its_certificate_lacks(pki: EphemeralPki) -> None:
    wrong = [(Purpose.CREDENTIAL, pki.signers[Purpose.STATUS_LIST].certificate)]
    with pytest.raises(TrustListError, match="not issued for credential"):
        parse(pki, build(pki, signers=wrong))


def test_certificate_not_issued_by_the_root(pki: EphemeralPki) -> None:
    stranger = ephemeral_pki(NOW, [Purpose.CREDENTIAL]).signers[Purpose.CREDENTIAL]
    with pytest.raises(TrustListError, match="not issued by the root"):
        parse(pki, build(pki, signers=[(Purpose.CREDENTIAL, stranger.certificate)]))


def test_unknown_purpose(pki: EphemeralPki) -> None:
    der = pki.signers[Purpose.CREDENTIAL].certificate.public_bytes(Encoding.DER)
    data = signed(cbor.dumps(payload_fields(pki, f7=[["firmware", der]])), pki.root)
    with pytest.raises(TrustListError, match="unknown signer purpose"):
        parse(pki, data)


def test_duplicate_certificate(pki: EphemeralPki) -> None:
    der = pki.signers[Purpose.CREDENTIAL].certificate.public_bytes(Encoding.DER)
    data = signed(cbor.dumps(payload_fields(pki, f7=[["credential", der]] * 2)), pki.root)
    with pytest.raises(TrustListError, match="twice"):
        parse(pki, data)
    with pytest.raises(ValidationError):
        build(pki, signers=[(Purpose.CREDENTIAL, pki.signers[Purpose.CREDENTIAL].certificate)] * 2)


# --- the CRL ----------------------------------------------------------------------------------


def test_crl_signed_by_another_key(pki: EphemeralPki) -> None:
    impostor = ephemeral_pki(NOW, [])  # same issuer name, different key
    assert impostor.crl.issuer == pki.crl.issuer
    with pytest.raises(CrlError):
        parse(pki, build(pki, crl=impostor.crl))


def test_crl_that_is_not_der(pki: EphemeralPki) -> None:
    data = signed(cbor.dumps(payload_fields(pki, f8=b"\x30\x00")), pki.root)
    with pytest.raises(CrlError):
        parse(pki, data)


def test_revoked_signers_are_dropped_and_reported_as_revoked(pki: EphemeralPki) -> None:
    victim = pki.signers[Purpose.CREDENTIAL]
    revoked = pki.revoke(victim)
    trust = parse(pki, build(revoked, crl=revoked.crl))
    assert victim.kid not in {s.kid for s in trust.signers}
    assert [s.kid for s in trust.revoked] == [victim.kid]
    with pytest.raises(UntrustedSignerError, match="revoked"):
        trust.certificates_for(victim.kid, Purpose.CREDENTIAL)


# --- rollback and freshness -------------------------------------------------------------------


def test_lower_sequence_is_a_rollback(pki: EphemeralPki) -> None:
    with pytest.raises(RollbackError):
        parse(pki, build(pki, sequence=4), previous_sequence=5)


def test_higher_sequence_is_accepted(pki: EphemeralPki) -> None:
    assert parse(pki, build(pki, sequence=6), previous_sequence=5).sequence == 6


def test_equal_sequence_only_for_the_identical_document(pki: EphemeralPki) -> None:
    data = build(pki, sequence=5)
    held = parse(pki, data)
    again = parse(pki, data, previous_sequence=5, previous_digest=held.digest)
    assert again.digest == held.digest
    other = build(pki, sequence=5)  # same content, new signature: a different document
    with pytest.raises(RollbackError):
        parse(pki, other, previous_sequence=5, previous_digest=held.digest)
    with pytest.raises(RollbackError):
        parse(pki, data, previous_sequence=5)  # nothing to compare with: refuse


@pytest.mark.parametrize(
    ("offset", "stale"),
    [
        (WEEK, False),
        (WEEK + GRACE, False),
        (WEEK + GRACE + timedelta(seconds=1), True),
        (timedelta(days=365), True),
    ],
)
def test_staleness_past_next_update_plus_grace(
    pki: EphemeralPki, offset: timedelta, stale: bool
) -> None:
    data = build(pki)
    if stale:
        with pytest.raises(StaleTrustError):
            parse(pki, data, now=NOW + offset)
    else:
        trust = parse(pki, data, now=NOW + offset)
        trust.check_fresh(NOW + offset)
        with pytest.raises(StaleTrustError):
            trust.check_fresh(NOW + WEEK + GRACE + timedelta(seconds=1))


def test_validity_window_longer_than_allowed(pki: EphemeralPki) -> None:
    too_long = int((NOW + MAX_VALIDITY + timedelta(days=1)).timestamp())
    data = signed(cbor.dumps(payload_fields(pki, f5=too_long)), pki.root)
    with pytest.raises(TrustListError, match="validity window"):
        parse(pki, data)
    backwards = signed(cbor.dumps(payload_fields(pki, f5=int(NOW.timestamp()) - 1)), pki.root)
    with pytest.raises(TrustListError, match="validity window"):
        parse(pki, backwards)
    with pytest.raises(ValidationError):
        build(pki, next_update=NOW + MAX_VALIDITY + timedelta(days=1))


def test_time_out_of_range(pki: EphemeralPki) -> None:
    data = signed(cbor.dumps(payload_fields(pki, f5=(1 << 63) - 1)), pki.root)
    with pytest.raises(TrustListError):
        parse(pki, data)


@pytest.mark.parametrize("sequence", [-1, 1 << 63])
def test_build_refuses_bad_sequence_numbers(pki: EphemeralPki, sequence: int) -> None:
    with pytest.raises(ValidationError):
        build(pki, sequence=sequence)


# --- what the terminal asks -------------------------------------------------------------------


def test_certificates_for_unknown_kid(pki: EphemeralPki) -> None:
    trust = parse(pki, build(pki))
    with pytest.raises(UnknownKeyError):
        trust.certificates_for(b"\x00" * 8, Purpose.CREDENTIAL)


def test_certificates_for_wrong_purpose(pki: EphemeralPki) -> None:
    trust = parse(pki, build(pki))
    with pytest.raises(WrongPurposeError):
        trust.certificates_for(pki.signers[Purpose.STATUS_LIST].kid, Purpose.CREDENTIAL)


def test_certificates_for_an_expired_signer(pki: EphemeralPki) -> None:
    trust = parse(pki, build(pki))
    signer = pki.signers[Purpose.CREDENTIAL]
    with pytest.raises(UntrustedSignerError):
        trust.certificates_for(signer.kid, Purpose.CREDENTIAL, now=datetime(2038, 1, 1, tzinfo=UTC))
    assert trust.certificates_for(signer.kid, Purpose.CREDENTIAL, now=NOW + WEEK)


def test_the_root_kid_is_not_a_document_signer(pki: EphemeralPki) -> None:
    trust = parse(pki, build(pki))
    with pytest.raises(UnknownKeyError):
        trust.certificates_for(kid(pki.root.certificate), Purpose.TRUST_LIST)


def test_kid_of_matches_pki_kid(pki: EphemeralPki) -> None:
    certificate = pki.signers[Purpose.AUDIT].certificate
    assert kid_of(certificate.public_bytes(Encoding.DER)) == kid(certificate)


def test_trust_list_is_frozen(pki: EphemeralPki) -> None:
    trust = parse(pki, build(pki))
    with pytest.raises(AttributeError):
        trust.sequence = 99  # type: ignore[misc]
