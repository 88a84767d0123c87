"""EF.SOD: the Document Security Object (ICAO Doc 9303 Part 10 §4.6.2, RFC 5652).

EF.SOD is tag ``77`` around a CMS ContentInfo of type SignedData whose encapsulated content
(eContentType 2.23.136.1.1.1) is an LDSSecurityObject: version 0, the hash algorithm and one
hash per data group. One SignerInfo (version 1, issuerAndSerialNumber) signs the DER of its
signed attributes (contentType, messageDigest, optional signingTime) with ECDSA; the signer's
certificate travels in ``certificates``.

What `ParsedSod.verify_signature` checks: the contentType attribute equals eContentType, the
messageDigest attribute equals the hash of the eContent bytes as received, the signer
certificate is the one the SignerInfo names, and the signature verifies over the received
signed-attribute bytes with that certificate's key. Whether the certificate chains to the root,
has the chip-document purpose and is not revoked is `cardsys.pki.check_signer`'s job at the
terminal, not this module's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from cardsys.chip.lds import TAG_SOD
from cardsys.errors import (
    DataGroupHashError,
    DecodeError,
    MissingDataGroupError,
    SignatureError,
)
from cardsys.formats import tlv
from cardsys.pki import Algorithm, Signer

LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_SIGNATURE_HASH = {"sha256_ecdsa": "sha256", "sha384_ecdsa": "sha384", "sha512_ecdsa": "sha512"}
_PARSE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    AttributeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
)


class DataGroupHash(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 - asn1crypto's declarative schema
        ("data_group_number", core.Integer),
        ("data_group_hash_value", core.OctetString),
    ]


class DataGroupHashValues(core.SequenceOf):  # type: ignore[misc]
    _child_spec = DataGroupHash


class LdsVersionInfo(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("lds_version", core.PrintableString),
        ("unicode_version", core.PrintableString),
    ]


class LdsSecurityObject(core.Sequence):  # type: ignore[misc]
    """Doc 9303 Part 10 §4.6.2.2."""

    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashValues),
        ("lds_version_info", LdsVersionInfo, {"optional": True}),
    ]


def _digest(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def build_sod(
    dg_contents: Mapping[int, bytes], signer: Signer, *, signing_time: datetime | None = None
) -> bytes:
    """Sign the SHA-256 hashes of `dg_contents` (DG number -> file bytes) into an EF.SOD."""
    if not dg_contents:
        raise SignatureError("a security object needs at least one data group")
    lds = LdsSecurityObject(
        {
            "version": 0,
            "hash_algorithm": {"algorithm": "sha256"},
            "data_group_hash_values": [
                {"data_group_number": dg, "data_group_hash_value": _digest("sha256", content)}
                for dg, content in sorted(dg_contents.items())
            ],
        }
    )
    e_content = lds.dump()
    digest_name = "sha384" if signer.algorithm is Algorithm.ES384 else "sha256"
    attributes = [
        {"type": "content_type", "values": [LDS_SECURITY_OBJECT]},
        {"type": "message_digest", "values": [_digest(digest_name, e_content)]},
    ]
    if signing_time is not None:
        attributes.append(
            {"type": "signing_time", "values": [cms.Time({"utc_time": signing_time})]}
        )
    signed_attrs = cms.CMSAttributes(attributes)
    signature = signer.sign(signed_attrs.dump())
    certificate = asn1_x509.Certificate.load(signer.certificate.public_bytes(Encoding.DER))
    signer_info = {
        "version": "v1",
        "sid": cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": certificate.issuer,
                    "serial_number": certificate.serial_number,
                }
            }
        ),
        "digest_algorithm": {"algorithm": digest_name},
        "signed_attrs": signed_attrs,
        "signature_algorithm": {"algorithm": f"{digest_name}_ecdsa"},
        "signature": signature,
    }
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": digest_name}],
            "encap_content_info": {
                "content_type": LDS_SECURITY_OBJECT,
                "content": core.ParsableOctetString(e_content),
            },
            "certificates": [certificate],
            "signer_infos": [signer_info],
        }
    )
    info = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
    return tlv.encode(TAG_SOD, info.dump())


@dataclass(frozen=True)
class ParsedSod:
    """A decoded EF.SOD. Nothing here is trusted until `verify_signature` has passed."""

    hashes: Mapping[int, bytes]
    hash_algorithm: str
    certificate: x509.Certificate
    signed_attrs: bytes
    e_content: bytes
    message_digest: bytes
    digest_algorithm: str
    signature_algorithm: str
    signature: bytes
    signing_time: datetime | None
    signer_issuer: bytes
    signer_serial: int

    def verify_signature(self) -> x509.Certificate:
        """Check digest and signature (rules: module doc); return the signer certificate.

        Raises:
            SignatureError: digest mismatch, wrong signer, or the signature does not verify.
        """
        digest = _digest(self.digest_algorithm, self.e_content)
        if not hmac.compare_digest(digest, self.message_digest):
            raise SignatureError("the SOD messageDigest does not match its content")
        cert = self.certificate
        issuer_der = cert.issuer.public_bytes()
        if issuer_der != self.signer_issuer or cert.serial_number != self.signer_serial:
            raise SignatureError("the SOD signer certificate is not the one the signer names")
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SignatureError("the SOD signer key is not an EC key")
        algorithm = _HASHES[_SIGNATURE_HASH[self.signature_algorithm]]()
        try:
            key.verify(self.signature, self.signed_attrs, ec.ECDSA(algorithm))
        except InvalidSignature:
            raise SignatureError("the SOD signature does not verify") from None
        return cert

    def check_data_groups(self, dgs: Mapping[int, bytes]) -> None:
        """Compare every data group read from the chip with the signed hashes.

        Raises:
            MissingDataGroupError: a listed data group is missing, or an unlisted one is there.
            DataGroupHashError: a data group's hash differs from the signed one.
        """
        missing = sorted(self.hashes.keys() - dgs.keys())
        if missing:
            raise MissingDataGroupError(f"data group {missing[0]} listed in the SOD is missing")
        extra = sorted(dgs.keys() - self.hashes.keys())
        if extra:
            raise MissingDataGroupError(f"data group {extra[0]} is not listed in the SOD")
        for dg, content in sorted(dgs.items()):
            if not hmac.compare_digest(_digest(self.hash_algorithm, content), self.hashes[dg]):
                raise DataGroupHashError(f"data group {dg} does not match its signed hash")


def parse_sod(data: bytes) -> ParsedSod:
    """Decode EF.SOD; DecodeError on anything malformed or outside our profile."""
    outer = tlv.decode(data)
    if outer.tag != TAG_SOD:
        raise DecodeError(f"EF.SOD must start with tag 77, found {outer.tag:X}")
    try:
        return _parse_content_info(outer.value)
    except DecodeError:
        raise
    except _PARSE_ERRORS as exc:
        raise DecodeError(f"EF.SOD is malformed: {exc}") from None


def _parse_content_info(der: bytes) -> ParsedSod:
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise DecodeError("EF.SOD does not hold CMS SignedData")
    signed = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != LDS_SECURITY_OBJECT:
        raise DecodeError("EF.SOD content is not an LDSSecurityObject")
    e_content = bytes(encap["content"].contents)
    hash_name, hashes_by_dg = _parse_lds(e_content)
    certificates = signed["certificates"]
    signer_infos = signed["signer_infos"]
    if len(signer_infos) != 1 or certificates is core.VOID or len(certificates) != 1:
        raise DecodeError("EF.SOD must hold exactly one signer and one certificate")
    signer = signer_infos[0]
    sid = signer["sid"]
    if sid.name != "issuer_and_serial_number":
        raise DecodeError("EF.SOD signer must be named by issuer and serial number")
    digest_name = signer["digest_algorithm"]["algorithm"].native
    signature_name = signer["signature_algorithm"]["algorithm"].native
    if digest_name not in _HASHES or _SIGNATURE_HASH.get(signature_name) != digest_name:
        raise DecodeError(f"EF.SOD signature algorithm {signature_name} is not supported")
    attrs = signer["signed_attrs"]
    if attrs is core.VOID or not attrs.contents:
        raise DecodeError("EF.SOD signer has no signed attributes")
    content_type, message_digest, signing_time = _parse_attrs(attrs)
    if content_type != LDS_SECURITY_OBJECT:
        raise DecodeError("EF.SOD contentType attribute differs from the content")
    certificate = x509.load_der_x509_certificate(certificates[0].chosen.dump())
    # cryptography parses certificate fields lazily: touch the ones we use, so a malformed
    # certificate is a DecodeError here rather than a ValueError later.
    certificate.issuer.public_bytes()
    certificate.public_key()
    return ParsedSod(
        hashes=MappingProxyType(hashes_by_dg),
        hash_algorithm=hash_name,
        certificate=certificate,
        # CMS signs the attributes as a SET (tag 31), not as the [0] they travel in.
        signed_attrs=tlv.encode(0x31, attrs.contents),
        e_content=e_content,
        message_digest=message_digest,
        digest_algorithm=digest_name,
        signature_algorithm=signature_name,
        signature=bytes(signer["signature"].native),
        signing_time=signing_time,
        signer_issuer=sid.chosen["issuer"].dump(),
        signer_serial=int(sid.chosen["serial_number"].native),
    )


def _parse_lds(e_content: bytes) -> tuple[str, dict[int, bytes]]:
    lds = LdsSecurityObject.load(e_content, strict=True)
    if lds["version"].native not in (0, 1):
        raise DecodeError("LDSSecurityObject version must be 0 or 1")
    hash_name = lds["hash_algorithm"]["algorithm"].native
    if hash_name not in _HASHES:
        raise DecodeError(f"LDSSecurityObject hash {hash_name} is not supported")
    size = _HASHES[hash_name]().digest_size
    out: dict[int, bytes] = {}
    for item in lds["data_group_hash_values"]:
        dg = int(item["data_group_number"].native)
        value = bytes(item["data_group_hash_value"].native)
        if not 1 <= dg <= 16 or dg in out or len(value) != size:
            raise DecodeError(f"LDSSecurityObject entry for data group {dg} is invalid")
        out[dg] = value
    if not out:
        raise DecodeError("LDSSecurityObject lists no data group")
    return hash_name, out


def _parse_attrs(attrs: cms.CMSAttributes) -> tuple[str, bytes, datetime | None]:
    found: dict[str, core.Asn1Value] = {}
    for attr in attrs:
        name = attr["type"].native
        if name in found:
            raise DecodeError(f"EF.SOD repeats the signed attribute {name}")
        values = attr["values"]
        if len(values) != 1:
            raise DecodeError(f"EF.SOD attribute {name} must have exactly one value")
        found[name] = values[0]
    if "content_type" not in found or "message_digest" not in found:
        raise DecodeError("EF.SOD lacks the contentType or messageDigest attribute")
    time = found.get("signing_time")
    return (
        str(found["content_type"].dotted),
        bytes(found["message_digest"].native),
        time.native if time is not None else None,
    )
