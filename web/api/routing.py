"""The API's one table of operations, and the pipeline every request goes through.

Each view module declares its operations with `@operation(...)`: method, path, roles, the
schemas of its parameters and body, its response, and whether it creates (Idempotency-Key) or
changes a card (If-Match). `install` turns the table into Flask routes, and
`web.api.openapi` turns the same table into the OpenAPI document: nothing is said twice.

The pipeline, in order (each step's refusal is a problem document, `web.api.problems`):

1. method: a path answers only the methods the table names (405 with `Allow`; OPTIONS 204);
2. authentication: `Authorization: Bearer <token>` (401 with `WWW-Authenticate`), in its own
   short transaction, which also records the token's last use;
3. role: the operation's roles (403) - office scope is the services' (another office's
   record is 404);
4. parameters: path parameters that do not match their pattern are 404, query parameters
   that fail their schema 422;
5. headers: `If-Match: "<version>"` where the table asks (428 missing, 400 malformed, 412
   stale - the view compares it with the card it locked); `Idempotency-Key` on creating
   requests (400 missing or malformed);
6. body: `application/json` (415), JSON (400), valid against the schema (422 with `errors`);
7. one transaction: the key is claimed (or the first response replayed), the view calls the
   service, the response is recorded on the claim, and all of it commits together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

from flask import Blueprint, Response, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import MethodNotAllowed

from cardsys.errors import AuthenticationError, LockedError, PermissionDeniedError
from cardsys.models import Operator, Role
from issuance import tokens
from web.api import idempotency, problems
from web.api.problems import Problem
from web.api.schema import Schema, validate
from web.database import now, transaction

METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY")
OFFICE: Final = tokens.TOKEN_ROLES
BEARER: Final = 'Bearer realm="cardsys"'
_BEARER_HEADER: Final = re.compile(r"Bearer +([^\s]+)", re.IGNORECASE)
_IF_MATCH: Final = re.compile(r'"([1-9][0-9]{0,8})"')
IF_MATCH_PATTERN: Final = '^"[1-9][0-9]{0,8}"$'


@dataclass(frozen=True)
class TokenInfo:
    """The token a request came with (for `/me`)."""

    id: int
    prefix: str
    name: str
    expires_at: datetime


@dataclass(frozen=True)
class Call:
    """What a view gets: the transaction, the operator, and the checked request."""

    db: Session
    actor: Operator
    token: TokenInfo | None
    at: datetime
    path: Mapping[str, str]
    query: Mapping[str, Any]
    body: Mapping[str, Any]
    #: The card version the client named in If-Match (operations that change a card).
    version: int | None


@dataclass(frozen=True)
class Raw:
    """What a view that runs its own transactions gets (public operations)."""

    op: Operation
    at: datetime
    path: Mapping[str, str]
    body: Mapping[str, Any]
    key: str | None
    fingerprint: str | None


@dataclass(frozen=True)
class Reply:
    """A view's answer: status and JSON body (headers come from the operation)."""

    status: int
    body: dict[str, Any]


Handler = Callable[[Call], Reply]
RawHandler = Callable[[Raw], Response]


@dataclass(frozen=True)
class Param:
    """A query parameter: its schema and whether it must be there."""

    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One row of the table (see the module docstring for what each field drives)."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    response: str | None
    handler: Handler | None = None
    raw: RawHandler | None = None
    status: int = 200
    description: str = ""
    #: Who may call it; None: no token (public).
    roles: tuple[Role, ...] | None = OFFICE
    path_params: Mapping[str, Schema] = field(default_factory=dict)
    query: Mapping[str, Param] = field(default_factory=dict)
    body: Schema | None = None
    creates: bool = False
    if_match: bool = False
    #: Response fields never stored for a replay (see `web.api.idempotency`).
    secret: tuple[str, ...] = ()
    #: Response headers derived from the body (ETag, Location), also on a replay.
    headers: Callable[[Mapping[str, Any]], dict[str, str]] | None = None
    #: Error statuses the operation documents besides the common ones.
    errors: tuple[int, ...] = ()
    #: The challenge of a 401 (the bearer token, or for provisioning the activation code).
    challenge: str = BEARER
    #: Runs after the checks and before the transaction (work that opens its own, which
    #: must not wait on ours: SQLite has one writer).
    prepare: Callable[[datetime], None] | None = None

    @property
    def flask_rule(self) -> str:
        return re.sub(r"\{(\w+)\}", r"<\1>", self.path)


OPERATIONS: list[Operation] = []


def operation(**spec: Any) -> Callable[[Handler], Handler]:
    """Declare an operation whose view runs inside the pipeline's transaction."""

    def register(view: Handler) -> Handler:
        OPERATIONS.append(Operation(handler=view, **spec))
        return view

    return register


def raw_operation(**spec: Any) -> Callable[[RawHandler], RawHandler]:
    """Declare a public operation whose view runs its own transactions."""

    def register(view: RawHandler) -> RawHandler:
        OPERATIONS.append(Operation(raw=view, roles=None, **spec))
        return view

    return register


def install(bp: Blueprint) -> None:
    """One Flask route per path of the table, answering every method (the pipeline says
    405 itself, so the answer is a problem document with `Allow`)."""
    by_path: dict[str, dict[str, Operation]] = {}
    for op in OPERATIONS:
        methods = by_path.setdefault(op.path, {})
        if op.method in methods:
            raise ValueError(f"{op.method} {op.path} is declared twice")
        methods[op.method] = op
    for path, methods in by_path.items():
        def view(_methods: dict[str, Operation] = methods, **args: str) -> Response:
            return dispatch(_methods, args)

        endpoint = "op_" + "_".join(re.findall(r"\w+", path)) if path != "/" else "op_index"
        bp.add_url_rule(methods[next(iter(methods))].flask_rule, endpoint=endpoint,
                        view_func=view, methods=list(METHODS), provide_automatic_options=False)


def allowed(methods: Mapping[str, Operation]) -> str:
    names = set(methods) | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
    return ", ".join(sorted(names))


def dispatch(methods: Mapping[str, Operation], args: Mapping[str, str]) -> Response:
    """Run the operation the request's method names (module docstring)."""
    method = "GET" if request.method == "HEAD" else request.method
    if method == "OPTIONS":
        return Response(status=204, headers={"Allow": allowed(methods)})
    op = methods.get(method)
    if op is None:
        raise MethodNotAllowed(valid_methods=allowed(methods).split(", "))
    try:
        return _run(op, args)
    except AuthenticationError as exc:
        if isinstance(exc, LockedError):
            raise
        return problems.from_service(exc, headers={"WWW-Authenticate": _challenge(op, exc)})


def _challenge(op: Operation, error: AuthenticationError) -> str:
    if op.challenge != BEARER or request.headers.get("Authorization") is None:
        return op.challenge
    detail = str(error).replace('"', "'")
    return f'{BEARER}, error="invalid_token", error_description="{detail}"'


def _run(op: Operation, args: Mapping[str, str]) -> Response:
    at = now()
    signed = _authenticate(op, at) if op.roles is not None else None
    path = _path(op, args)
    query = _query(op)
    version = _version(op)
    key = idempotency.check_key(request.headers.get(idempotency.HEADER)) if op.creates else None
    body = _body(op)
    fingerprint = (idempotency.fingerprint(op.method, request.path, version, body)
                   if op.creates else None)
    if op.raw is not None:
        return op.raw(Raw(op=op, at=at, path=path, body=body, key=key, fingerprint=fingerprint))
    assert op.handler is not None
    assert signed is not None
    operator_id, token = signed
    if op.prepare is not None:
        op.prepare(at)
    with transaction() as db:
        actor = db.get(Operator, operator_id)
        assert actor is not None
        claim = None
        if key is not None and fingerprint is not None:
            claimed = idempotency.claim(db, actor.id, key, fingerprint, at=at)
            if isinstance(claimed, idempotency.Replay):
                return respond(op, Reply(claimed.status, claimed.body), replayed=True)
            claim = claimed
        reply = op.handler(Call(db=db, actor=actor, token=token, at=at, path=path,
                                query=query, body=body, version=version))
        if claim is not None:
            idempotency.settle(claim, reply.status, reply.body, op.secret)
    return respond(op, reply)


def respond(op: Operation, reply: Reply, *, replayed: bool = False) -> Response:
    """The JSON response, with the operation's headers."""
    response = Response(json.dumps(reply.body, ensure_ascii=False), status=reply.status,
                        mimetype="application/json")
    if op.headers is not None:
        for name, value in op.headers(reply.body).items():
            response.headers[name] = value
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _authenticate(op: Operation, at: datetime) -> tuple[int, TokenInfo]:
    header = request.headers.get("Authorization")
    if header is None:
        raise AuthenticationError("this request needs an API token: "
                                  "Authorization: Bearer <token>")
    match = _BEARER_HEADER.fullmatch(header.strip())
    if match is None:
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
    with transaction() as db:
        row = tokens.authenticate(db, match.group(1), now=at)
        operator = row.operator
        if op.roles is not None and operator.role not in op.roles:
            raise PermissionDeniedError(
                f"operator {operator.login} ({operator.role.value}) may not do this (needs "
                f"{', '.join(r.value for r in op.roles)})"
            )
        return operator.id, TokenInfo(row.id, row.prefix, row.name, row.expires_at)


def _path(op: Operation, args: Mapping[str, str]) -> dict[str, str]:
    for name, value in args.items():
        if validate(op.path_params[name], value):
            raise Problem("not_found", f"no such {name.replace('_', ' ')}: {value!r}")
    return dict(args)


def _query(op: Operation) -> dict[str, Any]:
    found: dict[str, Any] = {}
    issues = []
    for name, param in op.query.items():
        text = request.args.get(name)
        if text is None:
            if param.required:
                issues.append({"pointer": name, "message": "is required"})
            continue
        value: Any = text
        if param.schema.get("type") == "integer":
            value = int(text) if re.fullmatch(r"-?[0-9]{1,9}", text) else text
        problems_found = validate(param.schema, value, name)
        issues += [{"pointer": i.pointer, "message": i.message} for i in problems_found]
        found[name] = value
    if issues:
        raise Problem("invalid_parameters", "the query parameters are not valid", errors=issues)
    return found


def _version(op: Operation) -> int | None:
    if not op.if_match:
        return None
    header = request.headers.get("If-Match")
    if header is None:
        raise Problem("precondition_required",
                      'send If-Match: "<version>" with the card version you last read (its '
                      "ETag)")
    match = _IF_MATCH.fullmatch(header.strip())
    if match is None:
        raise Problem("bad_header", 'If-Match must be one card version in quotes, e.g. "3"')
    return int(match.group(1))


def _body(op: Operation) -> dict[str, Any]:
    if op.body is None:
        return {}
    if request.mimetype != "application/json":
        raise Problem("unsupported_media_type", "send the body as application/json")
    try:
        data = json.loads(request.get_data(cache=False) or b"null",
                          parse_constant=_no_constant)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise Problem("malformed_json", "the body is not valid JSON") from None
    issues = validate(op.body, data)
    if issues:
        raise Problem("invalid_body", "the body does not match the schema of this operation",
                      errors=[{"pointer": i.pointer, "message": i.message} for i in issues])
    return cast(dict[str, Any], data)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
