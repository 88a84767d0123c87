"""The canonical reader against a reference written on the general decoder.

`cardsys.formats.canonical` reads credentials, presentation bodies and holder claims by
walking their one canonical shape (regular expressions, fixed offsets). The reference here
states the same rules on top of `cbor.loads` and `Sign1.decode`: canonical means "re-encodes
to the same bytes", and the fields are checked by type and value, the holder by `Holder`'s
own rules. On thousands of generated, random and mutated inputs both must accept exactly the
same inputs and read the same values.
"""

from __future__ import annotations

import hashlib
import os
from datetime import date
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsys.errors import DecodeError, ValidationError
from cardsys.formats import canonical, cbor
from cardsys.formats.cbor import encode_head
from cardsys.formats.cose import Sign1, sig_structure
from cardsys.formats.credential import HOLDER, Holder

KID = bytes(range(1, 9))
ENVELOPE = b"\xd2\x84\x4d\xa2\x01\x26\x04\x48" + KID + b"\xa0"
TWO_TO_32 = 1 << 32

# --- the reference ------------------------------------------------------------------------------


class Refused(Exception):
    """The reference refuses the input."""


def canonical_item(data: bytes) -> Any:
    """cbor.loads, and the bytes must be the deterministic encoding of what they decode to."""
    try:
        item = cbor.loads(data)
    except DecodeError:
        raise Refused from None
    try:
        again = cbor.dumps(item)
    except (TypeError, ValueError):  # floats, tags ...: never part of our formats
        raise Refused from None
    if again != data:
        raise Refused
    return item


def require(condition: bool) -> None:
    if not condition:
        raise Refused


def text(value: object, *, empty: bool = False) -> str:
    require(isinstance(value, str) and (empty or value != ""))
    assert isinstance(value, str)
    require(len(value.encode("utf-8")) <= canonical.MAX_TEXT_BYTES)
    return value


def reference_holder(claim: object) -> tuple[Any, ...]:
    require(isinstance(claim, dict) and set(claim) in ({1, 2, 3, 4, 5, 6, 7}, set(range(1, 9))))
    assert isinstance(claim, dict)
    birth = claim[5]
    require(isinstance(birth, str) and len(birth) == 10 and birth[4] == birth[7] == "-")
    try:
        born = date.fromisoformat(birth)
    except ValueError:
        raise Refused from None
    schemes = claim[7]
    require(isinstance(schemes, list) and len(schemes) <= canonical.MAX_SCHEMES)
    require(isinstance(claim[4], str))
    for value in (claim[1], claim[2], claim[3], claim[6], *schemes):
        text(value, empty=True)
    photo = claim.get(8)
    try:
        holder = Holder(claim[1], claim[2], claim[3], claim[4], born, claim[6], tuple(schemes),
                        photo)
    except ValidationError:
        raise Refused from None
    require(8 not in claim or photo is not None)
    return (holder.card_number, holder.surname, holder.given_names, holder.sex,
            holder.birth_date, holder.region, holder.schemes, holder.photo_sha256)


def reference_credential(data: bytes) -> tuple[Any, ...]:
    """What a verifier reads from a credential, holder included, or Refused."""
    require(len(data) <= canonical.MAX_CREDENTIAL)
    try:
        message = Sign1.decode(data, max_size=canonical.MAX_CREDENTIAL)
    except DecodeError:
        raise Refused from None
    require(message.alg == -7 and message.kid is not None and len(message.signature) == 64)
    ours = ENVELOPE if data[:1] == b"\xd2" else ENVELOPE[1:]  # headers, any kid, then A0
    if data.startswith(ours[: len(ours) - 9]) and data[len(ours) - 1 : len(ours)] == b"\xa0":
        # Our own headers: then the payload's head must be in shortest form too.
        head = encode_head(2, len(message.payload))
        require(data[len(ours) : len(ours) + len(head)] == head)
    claims = canonical_item(message.payload)
    require(isinstance(claims, dict))
    bound = 8 in claims
    require(set(claims) == {1, 2, 4, 5, 6, 65535, HOLDER} | ({8} if bound else set()))
    times = [claims[4], claims[5], claims[6]]
    for moment in times:
        require(type(moment) is int and 1 << 16 <= moment < TWO_TO_32)
    point = None
    if bound:
        cnf = claims[8]
        require(isinstance(cnf, dict) and set(cnf) == {1})
        key = cnf[1]
        require(isinstance(key, dict) and set(key) == {1, -1, -2, -3})
        require(key[1] == 2 and key[-1] == 1 and type(key[1]) is int and type(key[-1]) is int)
        x, y = key[-2], key[-3]
        require(isinstance(x, bytes) and isinstance(y, bytes) and len(x) == len(y) == 32)
        point = b"\x04" + x + y
    status = claims[65535]
    require(isinstance(status, dict) and set(status) == {"status_list"})
    reference = status["status_list"]
    require(isinstance(reference, dict) and set(reference) == {"idx", "uri"})
    index = reference["idx"]
    require(type(index) is int and index >= 0)
    holder = reference_holder(claims[HOLDER])
    signed = sig_structure(message.protected_bytes, b"", message.payload)
    return (message.kid, signed, message.signature, text(claims[1]), text(claims[2]),
            *times, point, index, text(reference["uri"]), holder)


def fast_credential(data: bytes) -> tuple[Any, ...]:
    try:
        fields = canonical.read_credential(data)
        holder = canonical.read_holder(fields.payload, fields.holder_at)
    except DecodeError:
        raise Refused from None
    return (fields.kid, fields.to_be_signed, fields.signature, fields.issuer, fields.subject,
            fields.expires, fields.not_before, fields.issued_at, fields.device_point,
            fields.status_index, fields.status_uri, tuple(holder))


def reference_presentation(body: bytes) -> tuple[Any, ...]:
    require(len(body) <= canonical.MAX_PRESENTATION)
    outer = canonical_item(body)
    require(isinstance(outer, list) and len(outer) == 2)
    credential, proof = outer
    require(isinstance(credential, bytes) and isinstance(proof, bytes))
    message = canonical_item(proof)
    require(isinstance(message, list) and len(message) == 4)
    protected, unprotected, payload, signature = message
    require(protected == canonical.PROOF_PROTECTED and unprotected == {})
    require(isinstance(payload, bytes) and isinstance(signature, bytes) and len(signature) == 64)
    fields = canonical_item(payload)
    require(isinstance(fields, dict) and set(fields) in ({1, 2}, {1, 2, 3}))
    time, digest, nonce = fields[1], fields[2], fields.get(3)
    require(type(time) is int and 0 <= time <= canonical.MAX_TIME)
    require(isinstance(digest, bytes) and len(digest) == 32)
    require(3 not in fields or (isinstance(nonce, bytes) and 0 < len(nonce) <= 64))
    signed = sig_structure(protected, b"", payload)
    return (credential, payload, signed, signature, time, digest, nonce)


def fast_presentation(body: bytes) -> tuple[Any, ...]:
    try:
        return tuple(canonical.read_presentation(body))
    except DecodeError:
        raise Refused from None


def outcome(read: Any, data: bytes) -> tuple[Any, ...] | None:
    try:
        return read(data)  # type: ignore[no-any-return]
    except Refused:
        return None


def agree_on_credential(data: bytes) -> bool:
    """Assert both readers agree on `data`; whether they accepted it."""
    expected = outcome(reference_credential, data)
    assert outcome(fast_credential, data) == expected, data.hex()
    return expected is not None


def agree_on_presentation(body: bytes) -> bool:
    expected = outcome(reference_presentation, body)
    assert outcome(fast_presentation, body) == expected, body.hex()
    return expected is not None


# --- generated inputs ----------------------------------------------------------------------------

# Valid values, with texts around every head-length boundary (23/24, 255/256 bytes), and
# Unicode; and for each field a few invalid ones. A generated message has at most one
# invalid field, so about half of them are valid and the other half fail in one place.
short_texts = st.one_of(
    st.text(min_size=1, max_size=30).filter(str.strip),
    st.text(alphabet="abcXYZ -", min_size=20, max_size=30).filter(str.strip),
    st.text(alphabet="名字 ", min_size=1, max_size=12).filter(str.strip),
    st.sampled_from(["a" * 23, "a" * 24]),
)
# Long ones are rarer: a credential holds at most MAX_CREDENTIAL bytes.
texts = st.one_of(short_texts, short_texts, short_texts,
                  st.sampled_from(["b" * 255, "b" * 256, "名" * 86, "é" * 256]))
bad_texts = st.sampled_from(["", " ", "\t", "x" * 1025, "é" * 300, "名" * 257])
card_numbers = st.from_regex(r"[A-Z]{2}[0-9]{11}[0-9A-Z]", fullmatch=True)
bad_card_numbers = st.sampled_from(["ss110000000015", "SS11", "SS1100000000155",
                                    "S1110000000015", "SS11000000001a", "ＳＳ110000000015"])
scheme_codes = st.from_regex(r"[A-Z0-9-]{1,32}", fullmatch=True)
bad_scheme_codes = st.sampled_from(["", "lower", "A" * 33, "A B", "É"])
births = st.dates().map(date.isoformat)
bad_births = st.sampled_from(["1985-02-30", "19850314", "1985-3-14", "0000-01-01",
                              "2020-W01-1", "1985-03-14 "])
numbers = st.one_of(st.integers(0, 30), st.integers(0, 1 << 40))
bad_numbers = st.sampled_from([-1, True, 1.5, "1"])
times = st.integers(1 << 16, TWO_TO_32 - 1)
bad_times = st.sampled_from([0, 5, 65535, TWO_TO_32, -1, 1.0])
wrong_types = st.one_of(bad_numbers, st.binary(max_size=4), st.none(), st.just([1]))


def one_field_broken(draw: st.DrawFn, fields: dict[Any, Any], bad: dict[Any, Any]) -> None:
    """Maybe replace one field by a bad value (or one of the wrong type)."""
    key = draw(st.sampled_from([None, *bad]))
    if key is not None:
        fields[key] = draw(st.one_of(bad[key], wrong_types))


@st.composite
def holder_claims(draw: st.DrawFn) -> Any:
    claim: dict[int, Any] = {
        1: draw(card_numbers), 2: draw(texts), 3: draw(texts),
        4: draw(st.sampled_from(["F", "M", "X"])), 5: draw(births),
        6: draw(st.from_regex(r"[0-9]{6}", fullmatch=True)),
        7: draw(st.lists(scheme_codes, max_size=canonical.MAX_SCHEMES)),
    }
    if draw(st.booleans()):
        claim[8] = os.urandom(32)
    one_field_broken(draw, claim, {
        1: bad_card_numbers, 2: bad_texts, 3: bad_texts,
        4: st.sampled_from(["Q", "", "FF", "f"]), 5: bad_births,
        6: st.sampled_from(["11010", "1101050", "11010a", "١١٠١٠٥"]),
        7: st.lists(scheme_codes, min_size=17, max_size=18).map(list) | st.lists(
            bad_scheme_codes, min_size=1, max_size=2),
        8: st.sampled_from([b"", bytes(31), bytes(33)]),
    })
    return claim


@st.composite
def credentials(draw: st.DrawFn) -> bytes:
    claims: dict[int | str, Any] = {
        1: draw(texts), 2: draw(texts), 4: draw(times), 5: draw(times), 6: draw(times),
        65535: {"status_list": {"idx": draw(numbers), "uri": draw(texts)}},
        HOLDER: draw(holder_claims()),
    }
    if draw(st.booleans()):
        claims[8] = {1: {1: 2, -1: 1, -2: os.urandom(32), -3: os.urandom(32)}}
    one_field_broken(draw, claims, {
        1: bad_texts, 2: bad_texts, 4: bad_times, 5: bad_times, 6: bad_times,
        8: st.sampled_from([{1: {1: 2, -1: 2, -2: bytes(32), -3: bytes(32)}},
                            {1: {1: 2, -1: 1, -2: bytes(32)}}, {2: 1}]),
        65535: st.sampled_from([{"status_list": {"idx": -1, "uri": "u"}},
                                {"status_list": {"uri": "u"}}, {"list": {"idx": 1, "uri": "u"}},
                                {"status_list": {"idx": 1, "uri": ""}}]),
        99: st.integers(0, 5),  # a claim that does not belong
    })
    payload = cbor.dumps(claims)
    signature = os.urandom(64)
    form = draw(st.integers(0, 9))
    if form == 0:  # untagged, kid unprotected: the general decoder's path
        return cbor.dumps([b"\xa1\x01\x26", {4: KID}, payload, signature])
    if form == 1:  # untagged canonical
        return ENVELOPE[1:] + encode_head(2, len(payload)) + payload + b"\x58\x40" + signature
    return ENVELOPE + encode_head(2, len(payload)) + payload + b"\x58\x40" + signature


@st.composite
def presentations(draw: st.DrawFn) -> bytes:
    payload: dict[int, Any] = {1: draw(st.one_of(times, numbers, st.just(canonical.MAX_TIME + 1))),
                               2: os.urandom(draw(st.sampled_from([32, 32, 31])))}
    if draw(st.booleans()):
        payload[3] = os.urandom(draw(st.integers(0, 70)))
    proof = cbor.dumps([canonical.PROOF_PROTECTED, {}, cbor.dumps(payload), os.urandom(64)])
    return cbor.dumps([draw(st.binary(max_size=300)), proof])


def mutations(data: bytes, choices: st.DataObject) -> bytes:
    draw = choices.draw
    changed = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        if not changed:
            break
        where = draw(st.integers(0, len(changed) - 1))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            changed[where] ^= 1 << draw(st.integers(0, 7))
        elif kind == 1:
            changed[where] = draw(st.integers(0, 255))
        elif kind == 2:
            del changed[where]
        else:
            changed.insert(where, draw(st.integers(0, 255)))
    return bytes(changed)


# --- the differential tests -----------------------------------------------------------------------


@settings(max_examples=2000, deadline=None)
@given(credentials())
def test_generated_credentials_read_the_same(data: bytes) -> None:
    agree_on_credential(data)


@settings(max_examples=2000, deadline=None)
@given(credentials(), st.data())
def test_mutated_credentials_read_the_same(data: bytes, choices: st.DataObject) -> None:
    agree_on_credential(mutations(data, choices))


@settings(max_examples=1000, deadline=None)
@given(presentations(), st.data())
def test_presentations_read_the_same(body: bytes, choices: st.DataObject) -> None:
    agree_on_presentation(body)
    agree_on_presentation(mutations(body, choices))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=canonical.MAX_PRESENTATION + 10))
def test_random_bytes_read_the_same(data: bytes) -> None:
    agree_on_credential(data)
    agree_on_presentation(data)


def test_the_generators_reach_both_outcomes() -> None:
    # The comparison means little if one side is always a refusal: check a valid credential
    # and presentation of each form are accepted by both.
    holder = {1: "SS110000000015", 2: "Wang", 3: "Fang Fang" * 3, 4: "F", 5: "1985-03-14",
              6: "110105", 7: ["URBAN-EMP", "A" * 24], 8: bytes(32)}
    claims: dict[int | str, Any] = {1: "i" * 30, 2: "SS110000000023", 4: 1 << 31, 5: 1 << 30,
                                    6: 1 << 30, 65535: {"status_list": {"idx": 70000,
                                                                        "uri": "u" * 40}},
                                    HOLDER: holder,
                                    8: {1: {1: 2, -1: 1, -2: bytes(32), -3: bytes(32)}}}
    payload = cbor.dumps(claims)
    canonical_form = ENVELOPE + encode_head(2, len(payload)) + payload + b"\x58\x40" + bytes(64)
    general_form = cbor.dumps([b"\xa1\x01\x26", {4: KID}, payload, bytes(64)])
    assert agree_on_credential(canonical_form)
    assert agree_on_credential(general_form)
    del holder[8], claims[8]
    holder[2] = "名" * 100  # a 300-byte name: the long head form
    payload = cbor.dumps(claims)
    assert agree_on_credential(ENVELOPE + encode_head(2, len(payload)) + payload + b"\x58\x40"
                               + bytes(64))
    proof = cbor.dumps([canonical.PROOF_PROTECTED, {}, cbor.dumps({1: 1 << 31, 2: bytes(32),
                                                                   3: b"n"}), bytes(64)])
    assert agree_on_presentation(cbor.dumps([canonical_form, proof]))


# --- edges the generators may miss ----------------------------------------------------------------


def valid_payload() -> bytes:
    return cbor.dumps({1: "i", 2: "s", 4: 1 << 20, 5: 1 << 20, 6: 1 << 20,
                       65535: {"status_list": {"idx": 1, "uri": "u"}},
                       HOLDER: {1: "SS110000000015", 2: "a", 3: "b", 4: "F", 5: "1985-03-14",
                                6: "110105", 7: []}})


def in_envelope(payload: bytes, signature: bytes = bytes(64)) -> bytes:
    return ENVELOPE + encode_head(2, len(payload)) + payload + encode_head(2, len(signature)) \
        + signature


def test_a_non_shortest_time_is_refused() -> None:
    payload = valid_payload()
    assert agree_on_credential(in_envelope(payload))
    small = payload.replace(b"\x04\x1a\x00\x10\x00\x00", b"\x04\x1a\x00\x00\x00\x05")
    assert small != payload
    assert not agree_on_credential(in_envelope(small))


def test_a_signature_of_another_length_is_refused_in_every_form() -> None:
    # r || s with a zero byte added would convert to the same DER: never accept it.
    payload = valid_payload()
    for signature in (bytes(63), bytes(65), b""):
        for data in (in_envelope(payload, signature),
                     cbor.dumps([b"\xa1\x01\x26", {4: KID}, payload, signature])):
            assert not agree_on_credential(data)
            with pytest.raises(DecodeError):
                canonical.read_credential(data)


def test_a_non_shortest_payload_head_in_our_envelope_is_refused() -> None:
    payload = valid_payload()
    assert 24 <= len(payload) < 256
    longer = ENVELOPE + b"\x59" + len(payload).to_bytes(2, "big") + payload + b"\x58\x40" \
        + bytes(64)
    assert not agree_on_credential(longer)
    with pytest.raises(DecodeError, match="shortest"):
        canonical.read_credential(longer)


@pytest.mark.parametrize(
    "raw",
    [bytes(64), b"\x80" * 64, b"\x01" * 64, b"\x80" * 32 + b"\x01" * 32,
     b"\x01" * 32 + b"\x80" * 32, b"\x00" * 31 + b"\x01" + b"\x00" * 31 + b"\x80",
     b"\x00\x80" + b"\x01" * 62, b"\x01" * 32 + b"\x00" * 31 + b"\x05",
     b"\x7f" + b"\xff" * 63, *(os.urandom(64) for _ in range(200))],
)
def test_der_signatures_match_cryptography(raw: bytes) -> None:
    expected = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                    int.from_bytes(raw[32:], "big"))
    assert canonical.der_signature(raw) == expected


def test_the_documented_proof_digest_example_reads() -> None:
    # cardsys.formats.credential's docstring example: the empty credential, time 1898586000.
    payload = bytes.fromhex("a2011a712a1f90025820") + hashlib.sha256(b"").digest()
    proof = b"\x84\x43\xa1\x01\x26\xa0\x58\x2a" + payload + b"\x58\x40" + bytes(64)
    read = canonical.read_presentation(b"\x82\x40\x58\x74" + proof)
    assert (read.credential, read.time, read.nonce) == (b"", 1898586000, None)
    assert read.proof_signed == bytes.fromhex("846a5369676e61747572653143a1012640582a") + payload
