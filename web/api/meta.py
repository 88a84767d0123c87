"""What the API says about itself: its index, its OpenAPI document, its problem types, and
who a token acts as."""

from __future__ import annotations

import json

from flask import Response, url_for

from web.api import openapi, problems
from web.api.problems import Problem
from web.api.routing import Call, Raw, Reply, operation, raw_operation
from web.api.schema import string

TAG = "meta"


def _json(body: object) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")


@raw_operation(method="GET", path="/", operation_id="index", tag=TAG, response="Index",
               summary="What this is, and where its description lives.")
def index(raw: Raw) -> Response:
    return _json({"api": "cardsys", "version": "v1",
                  "openapi": url_for("api.op_openapi_json")})


@raw_operation(method="GET", path="/openapi.json", operation_id="openapi", tag=TAG,
               response=None, summary="This API's OpenAPI 3.1 document.")
def openapi_json(raw: Raw) -> Response:
    response = _json(openapi.document())
    # The same for everyone and changes only with a deployment.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@raw_operation(
    method="GET", path="/problems/{code}", operation_id="problemType", tag=TAG,
    response="ProblemType", path_params={"code": string("^[a-z_]{1,40}$")},
    summary="What a problem `type` means: its code, status and title.",
)
def problem(raw: Raw) -> Response:
    code = raw.path["code"]
    known = problems.catalog()
    if code not in known:
        raise Problem("not_found", f"no problem type {code!r}")
    status, title = known[code]
    return _json({"type": problems.problem_type(code), "code": code, "title": title,
                  "status": status})


@operation(method="GET", path="/me", operation_id="whoAmI", tag=TAG, response="Operator",
           summary="The operator this token acts as, and the token.")
def me(call: Call) -> Reply:
    actor, token = call.actor, call.token
    assert token is not None
    return Reply(200, {
        "login": actor.login, "name": actor.name, "role": actor.role.value,
        "office": actor.office.code if actor.office is not None else None,
        "token": {"id": token.id, "prefix": token.prefix, "name": token.name,
                  "expires_at": token.expires_at.isoformat()},
    })
