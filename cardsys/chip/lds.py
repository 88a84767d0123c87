"""The files on our chip: an LDS1-style layout (ICAO Doc 9303 Part 10) under our own AID.

Application identifier: ``F0 43 41 52 44 53 59 53 01`` = ``F0`` + ASCII "CARDSYS" + version
``01``. ISO/IEC 7816-4 §8.2.1.2 reserves AIDs whose first nibble is ``F`` for proprietary,
unregistered use, so we cannot collide with a registered RID (ICAO's A0 00 00 02 47 is not
ours to use).

Files (FID, outer tag, contents). Inner tags are our own, context-specific primitives unless
noted; text is UTF-8, dates are ASCII ``YYYYMMDD``:

========  =====  ====  ====================================================================
EF.COM    011E   60    5F01 LDS version "0108", 5F36 Unicode version "040000",
                       5C list of the data-group tags present
EF.DG1    0101   61    80 card number, 81 surname, 82 given names, 83 sex (F/M/X),
                       84 birth date, 85 expiry date, 86 issuing agency
EF.DG2    0102   75    80 image format (01 = JPEG), 5F2E image bytes (the portrait)
EF.DG11   010B   6B    80 resident ID number, 81 region code,
                       A2 (constructed) insurance schemes, one 80 each, in order,
                       83 status-list number, 84 index in that list (see below)
EF.DG14   010E   6E    SecurityInfos DER (ActiveAuthenticationInfo, see `aa`)
EF.DG15   010F   6F    SubjectPublicKeyInfo DER of the Active Authentication key
EF.SOD    011D   77    CMS SignedData over the LDSSecurityObject (see `sod`)
========  =====  ====  ====================================================================

The card's slot in the published status lists (list number and index, both unsigned
big-endian integers of 1 to 4 bytes, minimally encoded) travels in DG11, so it is covered by
the SOD signature: a terminal looks the card up where the agency signed it is, not where an
altered chip would like it to look.

Parsers refuse missing or repeated fields, unknown tags inside DG1/DG2/DG11, bad dates and
non-minimal integers with `DecodeError`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.chip import aa
from cardsys.errors import DecodeError, ValidationError
from cardsys.formats import tlv

AID = bytes.fromhex("F0") + b"CARDSYS" + b"\x01"

FID_COM = 0x011E
FID_SOD = 0x011D

TAG_COM = 0x60
TAG_SOD = 0x77
DG_TAGS: Mapping[int, int] = {1: 0x61, 2: 0x75, 11: 0x6B, 14: 0x6E, 15: 0x6F}
#: Every data group our cards carry, in file order.
DATA_GROUPS = tuple(DG_TAGS)

LDS_VERSION = b"0108"
UNICODE_VERSION = b"040000"
IMAGE_JPEG = 0x01
SEXES = frozenset({"F", "M", "X"})
#: Status-list numbers and indexes fit 4 bytes (2^32 lists of up to 2^32 entries).
MAX_SLOT = 0xFFFFFFFF


def file_id(dg: int) -> int:
    """The file identifier of data group `dg` (Doc 9303 Part 10: 01 then the DG number)."""
    if dg not in DG_TAGS:
        raise ValidationError(f"data group {dg} is not part of our layout")
    return 0x0100 + dg


#: File identifiers of every file a personalized card holds.
ALL_FILE_IDS = (FID_COM, *(file_id(dg) for dg in DATA_GROUPS), FID_SOD)


@dataclass(frozen=True)
class ChipHolder:
    """The holder data a card's chip carries."""

    card_number: str
    surname: str
    given_names: str
    sex: str
    birth_date: date
    expiry_date: date
    id_number: str
    region: str
    schemes: tuple[str, ...]
    portrait: bytes
    issuer: str
    #: The card's status-list slot: list (shard) number and index inside it.
    status_list: int
    status_index: int

    def __post_init__(self) -> None:
        for name in ("status_list", "status_index"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SLOT:
                raise ValidationError(f"chip holder {name} must be an integer 0..{MAX_SLOT}")
        if self.sex not in SEXES:
            raise ValidationError(f"sex must be one of F, M, X, not {self.sex!r}")
        for name in ("card_number", "surname", "id_number", "region", "issuer"):
            if not getattr(self, name):
                raise ValidationError(f"chip holder {name} must not be empty")
        if not isinstance(self.schemes, tuple) or not all(self.schemes):
            raise ValidationError("schemes must be a tuple of non-empty names")
        if not self.portrait:
            raise ValidationError("the portrait must not be empty")


@dataclass(frozen=True)
class Dg1:
    """DG1 decoded."""

    card_number: str
    surname: str
    given_names: str
    sex: str
    birth_date: date
    expiry_date: date
    issuer: str


@dataclass(frozen=True)
class Dg11:
    """DG11 decoded."""

    id_number: str
    region: str
    schemes: tuple[str, ...]
    status_list: int
    status_index: int


def _uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _date(day: date) -> bytes:
    return day.strftime("%Y%m%d").encode("ascii")


def build_dg1(holder: ChipHolder) -> bytes:
    fields = (
        (0x80, holder.card_number.encode("ascii")),
        (0x81, holder.surname.encode("utf-8")),
        (0x82, holder.given_names.encode("utf-8")),
        (0x83, holder.sex.encode("ascii")),
        (0x84, _date(holder.birth_date)),
        (0x85, _date(holder.expiry_date)),
        (0x86, holder.issuer.encode("utf-8")),
    )
    return tlv.encode(DG_TAGS[1], tlv.encode_many(fields))


def build_dg2(portrait: bytes) -> bytes:
    return tlv.encode(
        DG_TAGS[2], tlv.encode_many(((0x80, bytes([IMAGE_JPEG])), (0x5F2E, portrait)))
    )


def build_dg11(holder: ChipHolder) -> bytes:
    schemes = tlv.encode_many((0x80, s.encode("utf-8")) for s in holder.schemes)
    body = tlv.encode_many(
        (
            (0x80, holder.id_number.encode("ascii")),
            (0x81, holder.region.encode("utf-8")),
            (0xA2, schemes),
            (0x83, _uint(holder.status_list)),
            (0x84, _uint(holder.status_index)),
        )
    )
    return tlv.encode(DG_TAGS[11], body)


@functools.cache
def build_dg14() -> bytes:
    """DG14: the same on every card (it names the AA algorithm, not a key), built once."""
    return tlv.encode(DG_TAGS[14], aa.active_authentication_info())


def build_data_groups(
    holder: ChipHolder, aa_public_key: ec.EllipticCurvePublicKey
) -> dict[int, bytes]:
    """Every data group's file content, keyed by DG number."""
    return {
        1: build_dg1(holder),
        2: build_dg2(holder.portrait),
        11: build_dg11(holder),
        14: build_dg14(),
        15: tlv.encode(DG_TAGS[15], aa.public_key_info(aa_public_key)),
    }


def build_ef_com(dg_numbers: tuple[int, ...] = DATA_GROUPS) -> bytes:
    """EF.COM listing the data groups present."""
    return _ef_com(tuple(dg_numbers))


@functools.lru_cache(maxsize=8)  # a bureau writes the same layout on every card
def _ef_com(dg_numbers: tuple[int, ...]) -> bytes:
    tags = bytes(DG_TAGS[dg] for dg in dg_numbers if dg in DG_TAGS)
    if len(tags) != len(dg_numbers):
        raise ValidationError("EF.COM may list only data groups of our layout")
    body = tlv.encode_many(((0x5F01, LDS_VERSION), (0x5F36, UNICODE_VERSION), (0x5C, tags)))
    return tlv.encode(TAG_COM, body)


# --- parsing ----------------------------------------------------------------------------


def _outer(data: bytes, tag: int, name: str) -> tlv.Tlv:
    item = tlv.parse_one(data, max_depth=3)
    if item.tag != tag:
        raise DecodeError(f"{name} must start with tag {tag:02X}, found {item.tag:X}")
    return item


def _fields(item: tlv.Tlv, allowed: set[int], name: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for child in item.children:
        if child.tag not in allowed:
            raise DecodeError(f"{name} holds an unknown tag {child.tag:X}")
        if child.tag in out:
            raise DecodeError(f"{name} repeats tag {child.tag:X}")
        out[child.tag] = child.value
    missing = allowed - out.keys()
    if missing:
        raise DecodeError(f"{name} lacks tag {min(missing):X}")
    return out


def _text(raw: bytes, name: str, encoding: str = "utf-8") -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise DecodeError(f"{name} is not valid {encoding} text") from None


def _parse_date(raw: bytes, name: str) -> date:
    text = _text(raw, name, "ascii")
    if len(text) != 8 or not text.isdigit():
        raise DecodeError(f"{name} must be YYYYMMDD")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise DecodeError(f"{name} {text} is not a date") from None


def _parse_uint(raw: bytes, name: str) -> int:
    if not 1 <= len(raw) <= 4 or (len(raw) > 1 and raw[0] == 0):
        raise DecodeError(f"{name} must be a minimally encoded integer of 1 to 4 bytes")
    return int.from_bytes(raw, "big")


def parse_dg1(data: bytes) -> Dg1:
    """Decode DG1; DecodeError when malformed."""
    f = _fields(_outer(data, DG_TAGS[1], "DG1"), set(range(0x80, 0x87)), "DG1")
    sex = _text(f[0x83], "sex", "ascii")
    if sex not in SEXES:
        raise DecodeError(f"DG1 sex {sex!r} is not F, M or X")
    return Dg1(
        card_number=_text(f[0x80], "card number", "ascii"),
        surname=_text(f[0x81], "surname"),
        given_names=_text(f[0x82], "given names"),
        sex=sex,
        birth_date=_parse_date(f[0x84], "birth date"),
        expiry_date=_parse_date(f[0x85], "expiry date"),
        issuer=_text(f[0x86], "issuer"),
    )


def parse_dg2(data: bytes) -> bytes:
    """The portrait JPEG from DG2."""
    f = _fields(_outer(data, DG_TAGS[2], "DG2"), {0x80, 0x5F2E}, "DG2")
    if f[0x80] != bytes([IMAGE_JPEG]):
        raise DecodeError("DG2 image format is not JPEG")
    if not f[0x5F2E]:
        raise DecodeError("DG2 holds an empty image")
    return f[0x5F2E]


def parse_dg11(data: bytes) -> Dg11:
    """Decode DG11; DecodeError when malformed."""
    f = _fields(_outer(data, DG_TAGS[11], "DG11"), {0x80, 0x81, 0xA2, 0x83, 0x84}, "DG11")
    schemes_item = tlv.parse_one(tlv.encode(0xA2, f[0xA2]))
    schemes = []
    for child in schemes_item.children:
        if child.tag != 0x80:
            raise DecodeError(f"DG11 scheme list holds an unknown tag {child.tag:X}")
        schemes.append(_text(child.value, "scheme"))
    return Dg11(
        id_number=_text(f[0x80], "ID number", "ascii"),
        region=_text(f[0x81], "region"),
        schemes=tuple(schemes),
        status_list=_parse_uint(f[0x83], "DG11 status-list number"),
        status_index=_parse_uint(f[0x84], "DG11 status index"),
    )


def parse_dg14(data: bytes) -> str:
    """The Active Authentication signature algorithm OID that DG14 announces."""
    item = tlv.decode(data)
    if item.tag != DG_TAGS[14]:
        raise DecodeError(f"DG14 must start with tag 6E, found {item.tag:X}")
    return aa.parse_security_infos(item.value)


def parse_dg15(data: bytes) -> bytes:
    """The SubjectPublicKeyInfo DER from DG15 (checked to be an EC P-256 key)."""
    item = tlv.decode(data)
    if item.tag != DG_TAGS[15]:
        raise DecodeError(f"DG15 must start with tag 6F, found {item.tag:X}")
    aa.load_public_key_info(item.value)
    return item.value


def parse_ef_com(data: bytes) -> tuple[int, ...]:
    """The data-group numbers EF.COM lists."""
    f = _fields(_outer(data, TAG_COM, "EF.COM"), {0x5F01, 0x5F36, 0x5C}, "EF.COM")
    by_tag = {tag: dg for dg, tag in DG_TAGS.items()}
    try:
        return tuple(by_tag[t] for t in f[0x5C])
    except KeyError:
        raise DecodeError("EF.COM lists a data group outside our layout") from None


def parse_holder(dgs: Mapping[int, bytes]) -> ChipHolder:
    """Rebuild the holder from DG1, DG2 and DG11 (DecodeError when one is missing)."""
    missing = [dg for dg in (1, 2, 11) if dg not in dgs]
    if missing:
        raise DecodeError(f"data group {missing[0]} is missing")
    dg1, dg11 = parse_dg1(dgs[1]), parse_dg11(dgs[11])
    try:
        return ChipHolder(
            card_number=dg1.card_number,
            surname=dg1.surname,
            given_names=dg1.given_names,
            sex=dg1.sex,
            birth_date=dg1.birth_date,
            expiry_date=dg1.expiry_date,
            id_number=dg11.id_number,
            region=dg11.region,
            schemes=dg11.schemes,
            portrait=parse_dg2(dgs[2]),
            issuer=dg1.issuer,
            status_list=dg11.status_list,
            status_index=dg11.status_index,
        )
    except ValidationError as exc:
        raise DecodeError(f"chip holder data is invalid: {exc}") from None
