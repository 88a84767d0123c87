"""The OpenAPI 3.1 document, built from the operation table (`web.api.routing.OPERATIONS`)
and the schemas (`web.api.schema.COMPONENTS`): the routes and the document are the same data.

The tests check the document against the real responses with schemathesis, and that every
route under `/api/v1` is in it.
"""

from __future__ import annotations

from typing import Any, Final

from web.api import idempotency
from web.api.problems import MEDIA_TYPE
from web.api.routing import IF_MATCH_PATTERN, OPERATIONS, Operation
from web.api.schema import COMPONENTS, ref

DESCRIPTION: Final = """\
JSON for every card lifecycle operation of an issuance office, digital-card activation, QR
verification and the audit log.

**Authentication.** `Authorization: Bearer <token>`, an operator API token made with
`cardsys operator token create LOGIN` (shown once, stored as its SHA-256). The token acts as
its operator: the same role checks as the office pages (403) and the same office scope
(another office's records are 404). Missing, unknown, expired or revoked: 401 with
`WWW-Authenticate`.

**Idempotency.** Every creating POST needs `Idempotency-Key` (16-64 of `A-Za-z0-9_-`). A retry
with the same key and the same request answers the first response again
(`Idempotent-Replayed: true`) and changes nothing; the same key with another request is 422.
The key is claimed in the transaction of the change, so concurrent retries make one change.

**Versions.** A card's ETag is its version. Every change of a card needs
`If-Match: "<version>"` (428 without it); a card changed meanwhile is 412.

**Errors.** RFC 9457 problem details (`application/problem+json`) with a stable `code`;
`type` resolves to `/api/v1/problems/{code}`.
"""

_HEADERS: Final[dict[str, dict[str, Any]]] = {
    "ETag": {"description": "The card's version, for If-Match.",
             "schema": {"type": "string", "pattern": '^"[0-9]+"$'}},
    "Location": {"description": "The record just created.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "Present on the answer to a retry.",
                            "schema": {"type": "string", "enum": ["true"]}},
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "The authentication challenge.",
                         "schema": {"type": "string"}},
}


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "cardsys API", "version": "1", "description": DESCRIPTION},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": name} for name in sorted({op.tag for op in OPERATIONS})],
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An operator API token."}},
            "responses": {"Problem": {"description": "A problem (RFC 9457).",
                                      "content": {MEDIA_TYPE: {"schema": ref("Problem")}}}},
        },
    }


def error_statuses(op: Operation) -> list[int]:
    """The error statuses an operation documents."""
    found = {400, 404, 422, 503, *op.errors}
    if op.roles is not None:
        found |= {401, 403, 409}
    if op.body is not None:
        found |= {413, 415}
    if op.creates:
        found |= {409}
    if op.if_match:
        found |= {409, 412, 428}
    return sorted(found)


def _operation(op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.description:
        spec["description"] = op.description
    if op.roles is None:
        spec["security"] = []
    else:
        spec["x-roles"] = [role.value for role in op.roles]
    if op.body is not None:
        spec["requestBody"] = {"required": True,
                               "content": {"application/json": {"schema": op.body}}}
    return spec


def _parameters(op: Operation) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for name, schema in op.path_params.items()
    ]
    found += [
        {"name": name, "in": "query", "required": param.required, "schema": param.schema,
         "description": param.description}
        for name, param in op.query.items()
    ]
    if op.creates:
        found.append({
            "name": idempotency.HEADER, "in": "header", "required": True,
            "schema": {"type": "string", "pattern": idempotency.PATTERN},
            "description": "New for each change, the same for its retries.",
        })
    if op.if_match:
        found.append({
            "name": "If-Match", "in": "header", "required": True,
            "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
            "description": "The card version last read (its ETag), e.g. `\"3\"`.",
        })
    return found


def _responses(op: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Done."}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": ref(op.response)}}
    headers = {}
    if op.response == "Card":
        headers["ETag"] = _HEADERS["ETag"]
    if op.status == 201 and op.headers is not None:
        headers["Location"] = _HEADERS["Location"]
    if op.creates:
        headers["Idempotent-Replayed"] = _HEADERS["Idempotent-Replayed"]
    if headers:
        success["headers"] = headers
    responses: dict[str, Any] = {str(op.status): success}
    for status in error_statuses(op):
        responses[str(status)] = {"$ref": "#/components/responses/Problem"}
    return responses
