"""The canonical reader: credentials, presentation bodies and holder claims, read the way a
terminal reads them thousands of times a second, without a general CBOR decoder.

The byte layouts are documented in `cardsys.formats.credential` (which builds its public
`Credential`, `Presentation` and `Holder` values on these readers). All three are
deterministic CBOR (RFC 8949 §4.2.1) of one fixed shape, so a reader walks that shape: every
head in its shortest form, every map key the expected one in the expected order, every text
valid UTF-8, nothing left over. Each message therefore has exactly one accepted encoding, and
no general decoder (tags, nesting, allocation by declared length) sees the untrusted bytes of
the hot path. `tests/unit/cardsys/formats/test_canonical.py` holds these readers to a
reference written on the general decoder (`cbor.loads`, `cose.Sign1`), on thousands of
random, generated and mutated inputs: both accept exactly the same inputs, with the same
values.

Why it is fast, and why that is safe:

- a message whose texts are 1 to 255 bytes long (all real ones) is matched by one compiled
  regular expression for its claims, one for its holder claim and one for the usual proof:
  every key, head and fixed-width field in a single C call. A text is matched by one
  alternative per length, so the length in its head is checked exactly, and every
  alternative (and every optional part) opens with its own literal byte, so the engine never
  backtracks: matching is linear in the input. The reader then checks only what a pattern
  cannot (UTF-8, blank names, counts, the calendar). Anything else goes to a field-by-field
  walker over the same rules, which also says what is wrong;
- the readers return plain named tuples, built with `tuple.__new__` (no per-field Python
  code); the public frozen dataclasses are built from them off the hot path;
- the signed bytes (COSE Sig_structure, RFC 9052 §4.4) are concatenated from constant heads
  and slices of the received bytes, never re-encoded.

Bounded: the input is capped (`MAX_CREDENTIAL`, `MAX_PRESENTATION`) before a byte is read;
every length is checked against the input before it is used; text fields are capped at
`MAX_TEXT_BYTES`; the one loop runs over at most `MAX_SCHEMES` insurance schemes. A read past
the end (IndexError, struct.error) and invalid UTF-8 become `DecodeError` at the entry points:
every failure is a `DecodeError`.
"""

from __future__ import annotations

import re
import struct
from datetime import date
from typing import Final, NamedTuple

from cardsys.errors import DecodeError
from cardsys.formats.cose import CoseAlgorithm, Sign1, sig_structure

__all__ = [
    "MAX_CREDENTIAL",
    "MAX_NONCE",
    "MAX_PRESENTATION",
    "MAX_SCHEMES",
    "MAX_TEXT",
    "MAX_TEXT_BYTES",
    "MAX_TIME",
    "PROOF_PROTECTED",
    "CredentialFields",
    "HolderFields",
    "PresentationFields",
    "der_signature",
    "read_credential",
    "read_holder",
    "read_presentation",
]

#: Largest credential accepted or issued, in bytes (long CJK names fit with room to spare).
MAX_CREDENTIAL: Final = 1536
#: Largest presentation body accepted (a version-40 QR at level M holds about 2,260 bytes).
MAX_PRESENTATION: Final = 2048
#: The only protected header a presentation proof may have: {1: -7}.
PROOF_PROTECTED: Final = b"\xa1\x01\x26"
#: A verifier's nonce in a proof: 1 to 64 bytes.
MAX_NONCE: Final = 64
#: Longest holder name, in characters.
MAX_TEXT: Final = 256
#: Longest text field in bytes (MAX_TEXT characters of up to 4 bytes each in UTF-8).
MAX_TEXT_BYTES: Final = 4 * MAX_TEXT
#: Most insurance schemes a holder claim lists.
MAX_SCHEMES: Final = 16
#: 9999-12-31T23:59:59Z: the last NumericDate a datetime can hold.
MAX_TIME: Final = 253402300799

_ES256: Final = int(CoseAlgorithm.ES256)
#: 84 4D A2 01 26 04 48: array of 4, protected bstr(13) {1: -7, 4: bstr(8) kid}.
_ENVELOPE: Final = b"\x84\x4d\xa2\x01\x26\x04\x48"
#: Sig_structure's opening: array of 4, "Signature1" (RFC 9052 §4.4).
_SIG1: Final = b"\x84\x6aSignature1"
#: ... a credential's protected bstr up to the kid, then after the kid the empty aad.
_SIG1_CREDENTIAL: Final = _SIG1 + b"\x4d\xa2\x01\x26\x04\x48"
#: ... and for a proof: its protected bstr and the empty external_aad.
_SIG1_PROOF: Final = _SIG1 + b"\x43" + PROOF_PROTECTED + b"\x40"
#: A proof: array of 4, protected bstr(3) {1: -7}, unprotected {}.
_PROOF_HEAD: Final = b"\x84\x43" + PROOF_PROTECTED + b"\xa0"
#: A raw ES256 signature: bstr(64).
_SIGNATURE_HEAD: Final = b"\x58\x40"

# --- the walkers' fixed stretches -------------------------------------------------------------

#: After sub: exp (4), nbf (5), iat (6) as 32-bit NumericDates (head 1A, as 2036 needs),
#: then for a digital card cnf (8) = {1: {1: 2, -1: 1, -2: bstr(32) x, -3: bstr(32) y}}
#: (RFC 8747 §3.1, RFC 9053 §7.1.1), then status (65535) = {"status_list": {"idx": ...
#: (Token Status List §6.3). Group 1 is cnf, when present.
_CLAIMS_MIDDLE: Final = re.compile(
    rb"\x04\x1a....\x05\x1a....\x06\x1a...."
    rb"(\x08\xa1\x01\xa4\x01\x02\x20\x01\x21\x58\x20.{32}\x22\x58\x20.{32})?"
    rb"\x19\xff\xff\xa1\x6bstatus_list\xa2\x63idx",
    re.DOTALL,
)
#: exp, nbf, iat, from the exp key on (both credential readers).
_TIMES: Final = struct.Struct(">2xI2xI2xI")
#: Where x and y sit inside the cnf group.
_X_AT, _Y_AT = 11, 46
#: ... "uri": text}} after idx, and then the holder claim's key, -65537.
_STATUS_URI: Final = b"\x63uri"
_HOLDER_KEY: Final = b"\x3a\x00\x01\x00\x00"

#: A holder claim opens with a map of 7 (no photo) or 8 fields and field 1, the card number
#: (14 characters: two capital letters, eleven digits, a check character, cardsys.ids).
_HOLDER_CARD: Final = re.compile(rb"[\xa7\xa8]\x01\x6e([A-Z]{2}[0-9]{11}[0-9A-Z])")
#: After the names: sex (4), birth date (5) "YYYY-MM-DD", region (6) of 6 digits, and the
#: key and head of the schemes array (7), at most MAX_SCHEMES entries.
_HOLDER_MIDDLE: Final = re.compile(
    rb"\x04\x61[FMX]\x05\x6a[0-9]{4}-[0-9]{2}-[0-9]{2}\x06\x66[0-9]{6}\x07[\x80-\x90]"
)
_HOLDER_MIDDLE_SIZE: Final = 25
#: An insurance scheme code: 1 to 32 of A-Z, 0-9 and '-'.
_SCHEME: Final = re.compile(r"[A-Z0-9-]{1,32}")


# --- whole-message patterns -------------------------------------------------------------------
# A credential's claims, a holder claim and a proof each fit one regular expression when their
# texts are 1 to 255 bytes long (all but freak cases): one match then checks every key, head
# and fixed-width field, and the reader checks only what a pattern cannot (UTF-8, blank
# names, counts, lengths in heads it did not enumerate, the calendar). Anything the pattern
# does not match is read by the field-by-field walker (`_claims_walk`, `_holder_walk`,
# `_proof_walk`), which also names what is wrong.


def _text_pattern(content: bytes, longest: int) -> bytes:
    """A pattern for one CBOR text string (major type 3) of 1 to `longest` (at most 255)
    bytes, each matching `content`, with its head in shortest form: one alternative per
    length, so the length in the head is checked exactly. Each alternative opens with a
    literal byte, on which the engine rejects it at once."""
    short = [re.escape(bytes((0x60 + n,))) + content + b"{%d}" % n for n in range(1, 24)]
    long = [re.escape(bytes((n,))) + content + b"{%d}" % n for n in range(24, longest + 1)]
    alternatives = short[:longest] + ([rb"\x78(?:" + b"|".join(long) + b")"] if long else [])
    return b"(?:" + b"|".join(alternatives) + b")"


#: An unsigned integer with its head in shortest form (RFC 8949 §4.2.1).
_UINT: Final = (
    rb"(?:[\x00-\x17]|\x18[\x18-\xff]|\x19(?!\x00)..|\x1a(?!\x00\x00)...."
    rb"|\x1b(?!\x00\x00\x00\x00).{8})"
)
_TEXT: Final = _text_pattern(rb".", 255)
#: Credential claims: iss, sub, the times, cnf when present, status and the holder's key.
_CLAIMS: Final = re.compile(
    rb"([\xa7\xa8])\x01(" + _TEXT + rb")\x02(" + _TEXT + rb")"
    rb"\x04\x1a....\x05\x1a....\x06\x1a...."
    rb"(?:\x08\xa1\x01\xa4\x01\x02\x20\x01\x21\x58\x20(.{32})\x22\x58\x20(.{32}))?"
    rb"\x19\xff\xff\xa1\x6bstatus_list\xa2\x63idx(" + _UINT + rb")\x63uri(" + _TEXT + rb")"
    rb"\x3a\x00\x01\x00\x00",
    re.DOTALL,
)
#: The whole holder claim.
_HOLDER: Final = re.compile(
    rb"[\xa7\xa8]\x01\x6e([A-Z]{2}[0-9]{11}[0-9A-Z])\x02(" + _TEXT + rb")\x03(" + _TEXT + rb")"
    rb"\x04\x61([FMX])\x05\x6a([0-9]{4}-[0-9]{2}-[0-9]{2})\x06\x66([0-9]{6})"
    rb"\x07([\x80-\x90])((?:" + _text_pattern(rb"[A-Z0-9-]", 32) + rb")*)"
    rb"(\x08\x58\x20.{32})?",
    re.DOTALL,
)
#: A proof as every phone makes it: no nonce, a present-day time (32 bits), from the proof's
#: head to the end of the presentation. Group 1 is the payload's bstr, head included.
_PROOF: Final = re.compile(
    rb"\x84\x43\xa1\x01\x26\xa0(\x58\x2a\xa2\x01\x1a(....)\x02\x58\x20(.{32}))\x58\x40(.{64})",
    re.DOTALL,
)

#: The photo digest (8): bstr(32).
_PHOTO_HEAD: Final = b"\x08\x58\x20"
#: The smallest argument of each head length (1, 2, 4, 8 bytes) in shortest form.
_SHORTEST: Final = (24, 1 << 8, 1 << 16, 1 << 32)

_new = tuple.__new__


class CredentialFields(NamedTuple):
    """A structurally checked credential (signature NOT verified, holder NOT parsed)."""

    #: The credential signer's key id.
    kid: bytes
    #: The COSE Sig_structure the signature covers, and the raw r||s signature.
    to_be_signed: bytes
    signature: bytes
    #: The CWT claims as received.
    payload: bytes
    issuer: str
    subject: str
    expires: int
    not_before: int
    issued_at: int
    #: The cnf key as an uncompressed SEC 1 point (0x04 || x || y); None for a static card.
    device_point: bytes | None
    status_index: int
    status_uri: str
    #: Where the holder claim starts in `payload` (it runs to the end; `read_holder`).
    holder_at: int


class PresentationFields(NamedTuple):
    """A structurally checked presentation body (proof signature NOT verified)."""

    #: The credential bytes as received (`read_credential`).
    credential: bytes
    #: The proof's payload, the Sig_structure its signature covers, the raw r||s signature.
    proof_payload: bytes
    proof_signed: bytes
    proof_signature: bytes
    time: int
    #: SHA-256 of the credential bytes, as the holder's device signed it.
    digest: bytes
    nonce: bytes | None


class HolderFields(NamedTuple):
    """The checked holder claim (field order as `credential.Holder`)."""

    card_number: str
    surname: str
    given_names: str
    sex: str
    birth_date: date
    region: str
    schemes: tuple[str, ...]
    photo_sha256: bytes | None


# --- entry points -----------------------------------------------------------------------------


def read_credential(data: bytes) -> CredentialFields:
    """Read a credential (layout: `cardsys.formats.credential`). Its canonical envelope is
    read in place; another COSE_Sign1 form (kid unprotected, ...) goes through `Sign1.decode`
    and must still be ES256 with a kid. The claims must be canonical either way.

    Raises:
        DecodeError: oversized, truncated, not ES256 with a kid, or claims other than
            exactly the documented ones in deterministic encoding.
    """
    if len(data) > MAX_CREDENTIAL:
        raise DecodeError(f"a credential is at most {MAX_CREDENTIAL} bytes")
    try:
        kid, to_be_signed, signature, payload = _envelope(data)
        return _claims(kid, to_be_signed, signature, payload)
    except (IndexError, struct.error):  # a read ran off the end
        raise DecodeError("the credential is truncated") from None
    except UnicodeDecodeError:
        raise DecodeError("a text field is not valid UTF-8") from None


def read_presentation(body: bytes) -> PresentationFields:
    """Split a presentation body into the credential bytes and the checked proof.

    Raises:
        DecodeError: anything but `[bstr, bstr]` with a proof of exactly the documented form.
    """
    if len(body) > MAX_PRESENTATION:
        raise DecodeError(f"a presentation is at most {MAX_PRESENTATION} bytes")
    try:
        return _presentation(body)
    except IndexError:
        raise DecodeError("the presentation is truncated") from None


def read_holder(data: bytes, pos: int = 0) -> HolderFields:
    """Read the holder claim that starts at `pos` and runs to the end of `data`.

    Raises:
        DecodeError: a claim that is not exactly the documented map, or a field that breaks
            its rule (card number, names, sex, birth date, region, schemes, photo digest).
    """
    try:
        return _holder(data, pos)
    except IndexError:
        raise DecodeError("the holder claim is truncated") from None
    except UnicodeDecodeError:
        raise DecodeError("a holder text field is not valid UTF-8") from None


def der_signature(raw: bytes) -> bytes:
    """The DER ECDSA-Sig-Value (RFC 3279 §2.2.3) of a raw 64-byte P-256 r||s (RFC 9053 §2.1),
    as `cryptography` verifies it: each integer unsigned, minimal, with a 00 byte before a
    high bit. (The same bytes as `encode_dss_signature`, without the two integer
    conversions.)"""
    if raw[0] and raw[32]:
        # Neither integer starts with a zero byte (255 signatures in 256): the heads depend
        # only on their high bits.
        head, middle = _DER_HEADS[raw[0] >> 7 << 1 | raw[32] >> 7]
        return head + raw[:32] + middle + raw[32:]
    r = raw[:32].lstrip(b"\x00")
    s = raw[32:].lstrip(b"\x00")
    if not r or r[0] & 0x80:
        r = b"\x00" + r
    if not s or s[0] & 0x80:
        s = b"\x00" + s
    return b"\x30" + bytes((len(r) + len(s) + 4, 2, len(r))) + r + bytes((2, len(s))) + s


#: DER heads for two 32-byte integers, by (r's high bit, s's high bit): SEQUENCE and r's
#: INTEGER head, then s's INTEGER head; a 00 byte keeps an integer with its high bit positive.
_DER_HEADS: Final = (
    (b"\x30\x44\x02\x20", b"\x02\x20"),
    (b"\x30\x45\x02\x20", b"\x02\x21\x00"),
    (b"\x30\x45\x02\x21\x00", b"\x02\x20"),
    (b"\x30\x46\x02\x21\x00", b"\x02\x21\x00"),
)


# --- credentials ------------------------------------------------------------------------------


def _envelope(data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(kid, Sig_structure, signature, payload) of the credential's COSE_Sign1."""
    parts = _canonical_envelope(data)
    if parts is not None:
        return parts
    # Another form of COSE_Sign1 (untagged, kid unprotected, ...): the general decoder.
    message = Sign1.decode(data, max_size=MAX_CREDENTIAL)
    if message.alg != _ES256 or message.kid is None or len(message.signature) != 64:
        raise DecodeError("a credential is signed with ES256 (64 bytes) and names its kid")
    to_be_signed = sig_structure(message.protected_bytes, b"", message.payload)
    return message.kid, to_be_signed, message.signature, message.payload


def _canonical_envelope(data: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """`_envelope` for ours, which has one exact form, or None for another form:
    D2 84 4D <A2 01 26 04 48 kid> A0 <bstr payload> 58 40 <r||s>. Once the headers are ours,
    the payload's head must be in shortest form (DecodeError)."""
    pos = 1 if data[0] == 0xD2 else 0
    if not data.startswith(_ENVELOPE, pos) or data[pos + 15] != 0xA0:
        return None
    start, end = _bstr(data, pos + 16)
    if not data.startswith(_SIGNATURE_HEAD, end) or len(data) != end + 66:
        return None
    kid = data[pos + 7 : pos + 15]
    # Sig_structure = ["Signature1", protected, h'', payload]: the protected and the payload
    # byte strings, heads included, are slices of what we received.
    to_be_signed = _SIG1_CREDENTIAL + kid + b"\x40" + data[pos + 16 : end]
    return kid, to_be_signed, data[end + 2 :], data[start:end]


def _claims(kid: bytes, to_be_signed: bytes, signature: bytes, payload: bytes) -> CredentialFields:
    found = _CLAIMS.match(payload)
    if found is None:
        return _claims_walk(kid, to_be_signed, signature, payload)
    head, issuer, subject, x, y, index, uri = found.groups()
    expires, not_before, issued_at = _TIMES.unpack_from(payload, found.end(3))
    if min(expires, not_before, issued_at) < 1 << 16:
        raise DecodeError("a NumericDate not in its shortest form (RFC 8949 §4.2.1)")
    if (x is None) == (head == b"\xa8"):
        raise DecodeError("a credential has cnf exactly when its claims map has 8 claims")
    return _new(
        CredentialFields,
        (kid, to_be_signed, signature, payload, _content(issuer).decode("utf-8"),
         _content(subject).decode("utf-8"), expires, not_before, issued_at,
         None if x is None else b"\x04" + x + y,
         index[0] if len(index) == 1 else int.from_bytes(index[1:], "big"),
         _content(uri).decode("utf-8"), found.end()),
    )


def _claims_walk(
    kid: bytes, to_be_signed: bytes, signature: bytes, payload: bytes
) -> CredentialFields:
    """`_claims` field by field: any length of text, and a precise error for bad claims."""
    head = payload[0]
    if (head != 0xA8 and head != 0xA7) or payload[1] != 0x01:
        raise DecodeError("the credential's claims must be a map of 7 or 8 claims from iss (1)")
    issuer, pos = _text(payload, 2)
    if payload[pos] != 0x02:
        raise DecodeError("the credential's sub (2) must follow iss")
    subject, pos = _text(payload, pos + 1)
    middle = _CLAIMS_MIDDLE.match(payload, pos)
    if middle is None:
        raise DecodeError(
            "exp, nbf, iat (32-bit NumericDates), cnf and status must follow sub, in their "
            "canonical form"
        )
    expires, not_before, issued_at = _TIMES.unpack_from(payload, pos)
    if min(expires, not_before, issued_at) < 1 << 16:
        raise DecodeError("a NumericDate not in its shortest form (RFC 8949 §4.2.1)")
    cnf = middle.start(1)
    if (cnf >= 0) != (head == 0xA8):
        raise DecodeError("a credential has cnf exactly when its claims map has 8 claims")
    point = None
    if cnf >= 0:
        x, y = cnf + _X_AT, cnf + _Y_AT
        point = b"\x04" + payload[x : x + 32] + payload[y : y + 32]
    index, pos = _uint(payload, middle.end())
    if not payload.startswith(_STATUS_URI, pos):
        raise DecodeError("the status uri field is missing or not in its canonical form")
    uri, pos = _text(payload, pos + 4)
    if not payload.startswith(_HOLDER_KEY, pos):
        raise DecodeError("the holder field is missing or not in its canonical form")
    if not uri or not issuer or not subject:
        raise DecodeError("the credential's iss, sub or status uri is empty")
    return _new(
        CredentialFields,
        (kid, to_be_signed, signature, payload, issuer, subject, expires, not_before,
         issued_at, point, index, uri, pos + 5),
    )


# --- presentations ----------------------------------------------------------------------------


def _presentation(body: bytes) -> PresentationFields:
    if body[0] != 0x82:
        raise DecodeError("a presentation is an array of two byte strings")
    start, end = _bstr(body, 1)
    credential = body[start:end]
    proof, end = _bstr(body, end)
    if end != len(body):
        raise DecodeError("trailing bytes after the presentation")
    found = _PROOF.fullmatch(body, proof)
    if found is None:
        return _proof_walk(body, credential, proof, end)
    signed, stamp, digest, signature = found.groups()
    time = int.from_bytes(stamp, "big")
    if time < 1 << 16:
        raise DecodeError("a CBOR head not in its shortest form (RFC 8949 §4.2.1)")
    return _new(
        PresentationFields,
        (credential, signed[2:], _SIG1_PROOF + signed, signature, time, digest, None),
    )


def _proof_walk(body: bytes, credential: bytes, proof: int, end: int) -> PresentationFields:
    """The proof (at `proof` to `end` in `body`) field by field: any time, with a nonce."""
    if not body.startswith(_PROOF_HEAD, proof):
        raise DecodeError("the proof header field is missing or not in its canonical form")
    start, pos = _bstr(body, proof + 6)
    if not body.startswith(_SIGNATURE_HEAD, pos) or end != pos + 66:
        raise DecodeError("the proof's signature must be 64 bytes and end the proof")
    payload = body[start:pos]
    signed = _SIG1_PROOF + body[proof + 6 : pos]
    head = payload[0]
    if (head != 0xA2 and head != 0xA3) or payload[1] != 0x01:
        raise DecodeError("a proof payload holds time (1), digest (2) and optionally nonce (3)")
    time, pos = _uint(payload, 2)
    digest = payload[pos + 3 : pos + 35]
    if time > MAX_TIME or not payload.startswith(b"\x02\x58\x20", pos) or len(digest) != 32:
        raise DecodeError("the proof's time or digest is malformed")
    pos += 35
    nonce = None
    if head == 0xA3:
        if payload[pos] != 0x03:
            raise DecodeError("the proof nonce field is missing or not in its canonical form")
        start, pos = _bstr(payload, pos + 1)
        nonce = payload[start:pos]
        if not 0 < len(nonce) <= MAX_NONCE:
            raise DecodeError(f"the proof nonce must be 1 to {MAX_NONCE} bytes")
    if pos != len(payload):
        raise DecodeError("the proof payload has trailing bytes")
    return _new(
        PresentationFields,
        (credential, payload, signed, body[end - 64 : end], time, digest, nonce),
    )


# --- holder claims ----------------------------------------------------------------------------


def _holder(data: bytes, pos: int) -> HolderFields:
    found = _HOLDER.fullmatch(data, pos)
    if found is None:
        return _holder_walk(data, pos)
    card, surname, given, sex, birth, region, count, listed, photo = found.groups()
    if (photo is None) == (data[pos] == 0xA8):
        raise DecodeError("the holder claim has a photo digest (8) exactly when it has 8 fields")
    schemes = []
    at = 0
    while at < len(listed):  # text heads and their bytes, as the pattern found them
        if listed[at] == 0x78:
            at, end = at + 2, at + 2 + listed[at + 1]
        else:
            at, end = at + 1, at + listed[at] - 0x5F
        schemes.append(listed[at:end].decode("ascii"))
        at = end
    if len(schemes) != count[0] - 0x80:
        raise DecodeError("the holder's schemes array does not hold as many codes as it says")
    surname, given = _content(surname).decode("utf-8"), _content(given).decode("utf-8")
    if not surname.strip() or not given.strip():
        raise DecodeError("the holder's surname and given names must be text, not blank")
    try:
        birth_date = date.fromisoformat(birth.decode("ascii"))
    except ValueError:
        raise DecodeError(f"the holder's birth date {birth.decode()} is not a date") from None
    return _new(
        HolderFields,
        (card.decode("ascii"), surname, given, sex.decode("ascii"), birth_date,
         region.decode("ascii"), tuple(schemes), None if photo is None else photo[3:]),
    )


def _holder_walk(data: bytes, pos: int) -> HolderFields:
    """`_holder` field by field: any length of text, and a precise error for a bad claim."""
    card = _HOLDER_CARD.match(data, pos)
    if card is None:
        raise DecodeError(
            "the holder claim must be a map of 7 or 8 fields starting with a card number of "
            "two capital letters, eleven digits and a check character"
        )
    photo = data[pos] == 0xA8
    if data[pos + 17] != 0x02:
        raise DecodeError("the holder's surname (2) must follow the card number")
    surname, pos = _name(data, pos + 18, "surname")
    if data[pos] != 0x03:
        raise DecodeError("the holder's given names (3) must follow the surname")
    given, pos = _name(data, pos + 1, "given names")
    if _HOLDER_MIDDLE.match(data, pos) is None:
        raise DecodeError(
            "the holder's sex (F, M or X), birth date (YYYY-MM-DD), region (6 digits) or "
            f"schemes (at most {MAX_SCHEMES}) are missing or malformed"
        )
    fixed = data[pos : pos + _HOLDER_MIDDLE_SIZE - 1].decode("ascii")  # up to the array head
    try:
        birth_date = date.fromisoformat(fixed[5:15])
    except ValueError:
        raise DecodeError(f"the holder's birth date {fixed[5:15]} is not a date") from None
    pos += _HOLDER_MIDDLE_SIZE
    schemes = []
    for _ in range(data[pos - 1] - 0x80):
        scheme, pos = _text(data, pos)
        if _SCHEME.fullmatch(scheme) is None:
            raise DecodeError(f"insurance scheme code {scheme!r} is malformed")
        schemes.append(scheme)
    digest = None
    if photo:
        if not data.startswith(_PHOTO_HEAD, pos) or len(data) < pos + 35:
            raise DecodeError("the holder's photo digest (8) must be 32 bytes")
        digest = data[pos + 3 : pos + 35]
        pos += 35
    if pos != len(data):
        raise DecodeError("the holder claim is truncated or has trailing bytes")
    return _new(
        HolderFields,
        (card.group(1).decode("ascii"), surname, given, fixed[2], birth_date, fixed[17:23],
         tuple(schemes), digest),
    )


def _name(data: bytes, pos: int, what: str) -> tuple[str, int]:
    name, pos = _text(data, pos)
    if len(name) > MAX_TEXT or not name.strip():
        raise DecodeError(f"the holder's {what} must be 1 to {MAX_TEXT} characters of text")
    return name, pos


# --- heads ------------------------------------------------------------------------------------


def _content(text: bytes) -> bytes:
    """The bytes of a text string of 1 to 255 bytes matched with its head (`_text_pattern`)."""
    return text[2:] if text[0] == 0x78 else text[1:]


def _text(data: bytes, pos: int) -> tuple[str, int]:
    """The text string whose head is at `pos` (at most MAX_TEXT_BYTES), and the end."""
    head = data[pos]
    if 0x60 <= head < 0x78:  # the length is in the head
        end = pos + head - 0x5F
        if end > len(data):
            raise DecodeError("a text field is truncated")
        return data[pos + 1 : end].decode("utf-8"), end
    if head == 0x78:
        length, pos = data[pos + 1], pos + 2
    elif head == 0x79:
        length, pos = data[pos + 1] << 8 | data[pos + 2], pos + 3
        if length > MAX_TEXT_BYTES:
            raise DecodeError("a text field is too long")
    elif 0x7A <= head <= 0x7B:
        raise DecodeError("a text field is too long")
    else:
        raise DecodeError(f"expected a text string at byte {pos}")
    if length < _SHORTEST[head - 0x78]:
        raise DecodeError("a CBOR head not in its shortest form (RFC 8949 §4.2.1)")
    end = pos + length
    if end > len(data):
        raise DecodeError("a text field is truncated")
    return data[pos:end].decode("utf-8"), end


def _bstr(data: bytes, pos: int) -> tuple[int, int]:
    """Where the content of the byte string whose head is at `pos` starts and ends."""
    head = data[pos]
    if 0x40 <= head < 0x58:
        start, length = pos + 1, head - 0x40
    elif head == 0x58:
        start, length = pos + 2, data[pos + 1]
    elif head == 0x59:
        start, length = pos + 3, data[pos + 1] << 8 | data[pos + 2]
    elif 0x5A <= head <= 0x5B:
        raise DecodeError("a byte string longer than the input")
    else:
        raise DecodeError(f"expected a byte string at byte {pos}")
    if head >= 0x58 and length < _SHORTEST[head - 0x58]:
        raise DecodeError("a CBOR head not in its shortest form (RFC 8949 §4.2.1)")
    end = start + length
    if end > len(data):
        raise DecodeError("truncated byte string")
    return start, end


def _uint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned integer whose head is at `pos`, and the position after it."""
    head = data[pos]
    if head < 0x18:
        return head, pos + 1
    if head > 0x1B:
        raise DecodeError(f"expected an unsigned integer at byte {pos}")
    end = pos + 1 + (1 << (head - 0x18))
    if end > len(data):
        raise DecodeError("truncated CBOR head")
    value = int.from_bytes(data[pos + 1 : end], "big")
    if value < _SHORTEST[head - 0x18]:
        raise DecodeError("a CBOR head not in its shortest form (RFC 8949 §4.2.1)")
    return value, end
