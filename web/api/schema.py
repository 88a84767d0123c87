"""JSON Schemas of the API, and the small validator that holds requests to them.

The schemas here are the single source of truth twice over: `web.api.openapi` publishes them
(OpenAPI 3.1 uses JSON Schema 2020-12 as it is), and `validate` checks every request body and
parameter against the same dictionaries before a view sees it, so the document cannot promise
what the server does not enforce. Response schemas close their objects
(`additionalProperties: false`): a field added to `issuance.present` without the document
fails the schemathesis run.

`validate` implements the subset these schemas use: `type` (one or a list), `enum`, `pattern`
(matched against the whole string: every pattern here is written `^...$`), `minLength`,
`maxLength`, `format: date`, `minimum`, `maximum`, `items`, `minItems`, `maxItems`,
`properties`, `required`, `additionalProperties: false`, `anyOf`, `$ref` into `COMPONENTS`. Anything
else in a schema it is given is an error of the schema, raised at import time by the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from cardsys.lifecycle import CardKind, CardStatus
from cardsys.models import Role, Sex

Schema = dict[str, Any]

SUPPORTED: Final = frozenset({
    "type", "enum", "pattern", "minLength", "maxLength", "format", "minimum", "maximum",
    "items", "minItems", "maxItems", "properties", "required", "additionalProperties", "$ref",
    "anyOf",
    # annotations: published, not checked
    "description", "examples", "contentEncoding", "default", "title",
})
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "string": (str,), "boolean": (bool,), "array": (list,), "object": (dict,),
    "null": (type(None),), "integer": (int,), "number": (int, float),
}

CARD_NUMBER: Final = "^[A-Z]{2}[0-9]{11}[0-9A-Z]$"
ID_NUMBER: Final = "^[0-9]{17}[0-9X]$"
REGION: Final = "^[0-9]{6}$"
OFFICE_CODE: Final = "^[A-Z0-9][A-Z0-9-]{1,15}$"


def string(pattern: str | None = None, *, min_length: int = 0, max_length: int | None = None,
           **more: Any) -> Schema:
    """A string schema."""
    schema: Schema = {"type": "string", **more}
    if pattern is not None:
        schema["pattern"] = pattern
    if min_length:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def nullable(schema: Schema) -> Schema:
    """The same schema, also admitting null (OpenAPI 3.1 style: a list of types)."""
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]} if isinstance(kind, str) else schema


def closed(required: list[str], **properties: Schema) -> Schema:
    """An object with exactly these properties (the `required` ones must be there)."""
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def values(kind: Any) -> list[str]:
    return [member.value for member in kind]


_DATE_TEXT = string(_DATE.pattern.join("^$"), format="date")
_TIME_TEXT = string(format="date-time")

COMPONENTS: Final[dict[str, Schema]] = {
    "Card": closed(
        ["number", "kind", "status", "reason", "version", "resident", "office", "issue_date",
         "expiry_date", "created_at", "status_changed_at", "status_slot"],
        number=string(CARD_NUMBER),
        kind={"type": "string", "enum": values(CardKind)},
        status={"type": "string", "enum": values(CardStatus)},
        reason=nullable(string()),
        version={"type": "integer", "minimum": 1},
        resident=string(ID_NUMBER),
        office=string(OFFICE_CODE),
        issue_date=nullable(_DATE_TEXT),
        expiry_date=nullable(_DATE_TEXT),
        created_at=_TIME_TEXT,
        status_changed_at=_TIME_TEXT,
        status_slot={"type": ["array", "null"], "items": {"type": "integer", "minimum": 0},
                     "minItems": 2, "maxItems": 2,
                     "description": "Shard and index of the card in the status lists."},
    ),
    "CardList": closed(["cards"], cards={"type": "array", "items": ref("Card")}),
    "Resident": closed(
        ["id_number", "surname", "given_names", "sex", "birth_date", "region", "schemes",
         "office", "photo_sha256", "review_required", "deceased"],
        id_number=string(ID_NUMBER),
        surname=string(),
        given_names=string(),
        sex={"type": "string", "enum": values(Sex)},
        birth_date=_DATE_TEXT,
        region=string(REGION),
        schemes={"type": "array", "items": string()},
        office=string(OFFICE_CODE),
        photo_sha256=nullable(string("^[0-9a-f]{64}$")),
        review_required={"type": "boolean"},
        deceased={"type": "boolean"},
    ),
    "ResidentList": closed(["residents"], residents={"type": "array", "items": ref("Resident")}),
    "Event": closed(
        ["seq", "at", "actor", "office", "tag", "subject", "details", "hash"],
        seq={"type": "integer", "minimum": 1},
        at=_TIME_TEXT,
        actor=string(),
        office=nullable(string()),
        tag=string(),
        subject=string(),
        details={"type": "object"},
        hash=string("^[0-9a-f]{64}$"),
    ),
    "EventList": closed(["events"], events={"type": "array", "items": ref("Event")}),
    "ChainCheck": closed(
        ["intact", "events", "head_seq", "head_hash", "broken"],
        intact={"type": "boolean"},
        events={"type": ["integer", "null"], "minimum": 0},
        head_seq={"type": ["integer", "null"], "minimum": 0},
        head_hash=nullable(string("^[0-9a-f]{64}$")),
        broken=nullable(string(description="The first broken link, when the chain is not "
                                           "intact.")),
    ),
    "ActivationCode": closed(
        ["code", "card_number", "expires_at"],
        code=string("^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$",
                    description="Shown once: it is not stored and never answered again."),
        card_number=string(CARD_NUMBER),
        expires_at=_TIME_TEXT,
    ),
    "Provisioned": closed(
        ["card_number", "credential", "expires_at"],
        card_number=string(CARD_NUMBER, description="The new digital card."),
        credential=string("^[A-Za-z0-9_-]+$", description="The credential (COSE_Sign1), "
                          "base64url without padding."),
        expires_at=_TIME_TEXT,
    ),
    "VerifiedCard": closed(
        ["evidence", "card_number", "document_number", "surname", "given_names", "sex",
         "birth_date", "region", "schemes", "photo_sha256", "expires", "signer_kid", "status",
         "checked_at"],
        evidence={"type": "string", "enum": ["presentation", "static", "chip"]},
        card_number=string(),
        document_number=string(),
        surname=string(),
        given_names=string(),
        sex=string(),
        birth_date=_DATE_TEXT,
        region=string(),
        schemes={"type": "array", "items": string()},
        photo_sha256=nullable(string("^[0-9a-f]{64}$")),
        expires=_TIME_TEXT,
        signer_kid=string("^[0-9a-f]+$"),
        status={"type": "string", "enum": ["good", "unknown"]},
        checked_at=_TIME_TEXT,
    ),
    "Verdict": closed(
        ["valid", "reason", "message", "card"],
        valid={"type": "boolean"},
        reason=string(description="`valid`, or the code of the refusal (`revoked`, "
                                  "`stale_proof`, `replayed` ...)."),
        message=string(),
        card={"anyOf": [ref("VerifiedCard"), {"type": "null"}]},
    ),
    "Operator": closed(
        ["login", "name", "role", "office", "token"],
        login=string(),
        name=string(),
        role={"type": "string", "enum": values(Role)},
        office=nullable(string(OFFICE_CODE)),
        token=closed(["id", "prefix", "name", "expires_at"], id={"type": "integer"},
                     prefix=string(), name=string(), expires_at=_TIME_TEXT),
    ),
    "Index": closed(["api", "version", "openapi"], api=string(), version=string(),
                    openapi=string()),
    "ProblemType": closed(["type", "code", "title", "status"], type=string(), code=string(),
                          title=string(), status={"type": "integer"}),
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "properties": {
            "type": string(format="uri-reference"),
            "title": string(),
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": string(),
            "instance": string(format="uri-reference"),
            "code": string(description="The stable, machine-readable error code."),
            "errors": {"type": "array", "items": closed(
                ["pointer", "message"], pointer=string(), message=string())},
        },
        "required": ["type", "title", "status", "detail", "instance", "code"],
        "additionalProperties": False,
    },
}


@dataclass(frozen=True)
class Issue:
    """One way a value fails its schema: where (a JSON pointer) and what."""

    pointer: str
    message: str


def validate(schema: Schema, value: Any, pointer: str = "") -> list[Issue]:
    """Every way `value` fails `schema` (empty when it conforms)."""
    unknown = set(schema) - SUPPORTED
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} are not supported")
    if "$ref" in schema:
        return validate(COMPONENTS[schema["$ref"].rsplit("/", 1)[-1]], value, pointer)
    if "anyOf" in schema:
        branches = [validate(branch, value, pointer) for branch in schema["anyOf"]]
        return [] if any(not found for found in branches) else branches[0]
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is(value, name) for name in names):
            return [Issue(pointer, f"must be of type {' or '.join(names)}")]
    if "enum" in schema and value not in schema["enum"]:
        return [Issue(pointer, f"must be one of {', '.join(map(str, schema['enum']))}")]
    if isinstance(value, str):
        return _string(schema, value, pointer)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(schema, value, pointer)
    if isinstance(value, list):
        return _array(schema, value, pointer)
    if isinstance(value, dict):
        return _object(schema, value, pointer)
    return []


def _is(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return name == "boolean"
    if name == "integer" and isinstance(value, float):
        return value.is_integer()  # JSON Schema: 1.0 is an integer
    return isinstance(value, _TYPES[name])


def _string(schema: Schema, value: str, pointer: str) -> list[Issue]:
    if len(value) < schema.get("minLength", 0):
        return [Issue(pointer, f"must have at least {schema['minLength']} characters")]
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return [Issue(pointer, f"must have at most {schema['maxLength']} characters")]
    pattern = schema.get("pattern")
    if pattern is not None:
        if not (pattern.startswith("^") and pattern.endswith("$")):
            raise ValueError(f"pattern {pattern!r} must be anchored with ^ and $")
        # fullmatch of the inner part: Python's `$` would also match before a final newline.
        if re.fullmatch(pattern[1:-1], value) is None:
            return [Issue(pointer, f"must match {pattern}")]
    if schema.get("format") == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return [Issue(pointer, "must be a date (YYYY-MM-DD)")]
    return []


def _number(schema: Schema, value: float, pointer: str) -> list[Issue]:
    if "minimum" in schema and value < schema["minimum"]:
        return [Issue(pointer, f"must be at least {schema['minimum']}")]
    if "maximum" in schema and value > schema["maximum"]:
        return [Issue(pointer, f"must be at most {schema['maximum']}")]
    return []


def _array(schema: Schema, value: list[Any], pointer: str) -> list[Issue]:
    if len(value) < schema.get("minItems", 0):
        return [Issue(pointer, f"must have at least {schema['minItems']} items")]
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return [Issue(pointer, f"must have at most {schema['maxItems']} items")]
    issues: list[Issue] = []
    if "items" in schema:
        for index, item in enumerate(value):
            issues += validate(schema["items"], item, f"{pointer}/{index}")
    return issues


def _object(schema: Schema, value: dict[str, Any], pointer: str) -> list[Issue]:
    properties: dict[str, Schema] = schema.get("properties", {})
    issues = [Issue(f"{pointer}/{_escape(name)}", "is required")
              for name in schema.get("required", ()) if name not in value]
    for name, item in value.items():
        if name in properties:
            issues += validate(properties[name], item, f"{pointer}/{_escape(name)}")
        elif schema.get("additionalProperties", True) is False:
            issues.append(Issue(f"{pointer}/{_escape(name)}", "is not a known field"))
    return issues


def _escape(name: str) -> str:
    """A JSON pointer reference token (RFC 6901 §3)."""
    return name.replace("~", "~0").replace("/", "~1")
