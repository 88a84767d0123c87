"""The OpenAPI document against the real app: every route is in it, and schemathesis's
property-based checks hold for the real responses (status codes, media types, headers and
bodies as documented; schema-valid requests accepted or refused for a documented reason;
schema-violating ones refused; a missing token is 401).

Schemathesis drives the app through its WSGI interface (no server), with a fixed seed and a
bounded number of examples per operation so the run stays short and repeatable. Two checks
are told what this API answers on purpose:

* `positive_data_acceptance`: a request the schema accepts may still fail a rule JSON Schema
  cannot state (an ID number's check character: 422; a card version that is not the
  current one: 412; a locked activation code: 423);
* `missing_required_header`: a change of a card without `If-Match` is 428 (RFC 6585), not 400.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
import schemathesis.engine.events
from flask import Flask
from schemathesis.engine import Status

from tests.web.api.conftest import Api
from web.api.openapi import document, error_statuses
from web.api.routing import METHODS, OPERATIONS
from web.api.schema import COMPONENTS, validate

SEED = 20300301


def _config(token: str) -> Any:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {token}"},
        "generation": {"max-examples": 30, "deterministic": True},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", 401, 403, 404, 409, 412, 422, 423, 429],
            },
            "missing_required_header": {
                "expected-statuses": [400, 401, 403, 406, 415, 422, 428],
            },
        },
    })


def _api_rules(app: Flask) -> dict[str, set[str]]:
    """Every route of the app under /api/v1 (the catch-all excepted), in OpenAPI spelling."""
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint == "api.unknown":
            continue
        path = rule.rule.removeprefix("/api/v1").replace("<", "{").replace(">", "}") or "/"
        found.setdefault(path, set()).update(rule.methods or ())
    return found


def test_every_route_is_in_the_document(api_app: Flask, api: Api) -> None:
    served = api.client.get("/api/v1/openapi.json").get_json()
    assert served == document()
    assert served["openapi"].startswith("3.1")
    rules = _api_rules(api_app)
    assert set(rules) == set(served["paths"])
    for path, methods in served["paths"].items():
        concrete = path.replace("{number}", api.world.card_a).replace(
            "{id_number}", api.world.resident_a).replace("{code}", "not_found")
        for method in METHODS:
            if method in ("HEAD", "OPTIONS"):
                continue
            response = api.client.open(f"/api/v1{concrete}", method=method)
            if method.lower() in methods:
                assert response.status_code != 405, (method, path)
            else:
                assert response.status_code == 405, (method, path)
                assert response.mimetype == "application/problem+json"


def test_every_operation_documents_its_refusals() -> None:
    for op in OPERATIONS:
        statuses = error_statuses(op)
        if op.roles is not None:
            assert {401, 403} <= set(statuses), op.operation_id
        if op.if_match:
            assert {412, 428} <= set(statuses), op.operation_id
        if op.body is not None:
            assert {415, 422} <= set(statuses), op.operation_id


def test_the_validator_knows_every_keyword_the_document_uses() -> None:
    # Request schemas are enforced by web.api.schema.validate: it must understand all of them.
    for op in OPERATIONS:
        for schema in [*op.path_params.values(), *(p.schema for p in op.query.values()),
                       *([op.body] if op.body is not None else [])]:
            validate(schema, None)
    for schema in COMPONENTS.values():
        validate(schema, {})


def _failures(event: Any) -> list[str]:
    """What a finished scenario's checks found wrong, readable."""
    found = []
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                failure = check.failure_info.failure
                found.append(f"{event.label} [{check.name}]: {failure.title}\n"
                             f"{failure.message}\n{check.failure_info.code_sample}")
    return found or [f"{event.label}: {event.status}"]


@pytest.fixture
def wsgi_transport_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schemathesis 4.32 passes network-only options (`max_redirects` ...) to Werkzeug's test
    client when a phase hands it a Werkzeug session; drop them, as it does for requests."""
    from schemathesis.transport import wsgi

    original = wsgi.WSGITransport.send

    def send(self: Any, case: Any, *, session: Any = None, **kwargs: Any) -> Any:
        for name in ("max_redirects", "verify", "cert", "proxies"):
            kwargs.pop(name, None)
        return original(self, case, session=session, **kwargs)

    monkeypatch.setattr(wsgi.WSGITransport, "send", send)


@pytest.mark.usefixtures("wsgi_transport_fix")
def test_the_document_holds_for_the_real_responses(api_app: Flask, api: Api) -> None:
    token = api.tokens[api.world.a.supervisor]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app,
                                            config=_config(token))
    problems: list[str] = []
    scenarios = 0
    statuses: Counter[int] = Counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, schemathesis.engine.events.ScenarioFinished):
            scenarios += 1
            statuses.update(i.response.status_code for i in event.recorder.interactions.values()
                            if i.response is not None)
            if event.status in (Status.FAILURE, Status.ERROR):
                problems += _failures(event)
        elif isinstance(event, schemathesis.engine.events.NonFatalError |
                        schemathesis.engine.events.FatalError):
            problems.append(repr(event))
    print(f"schemathesis: {scenarios} scenarios, responses by status {sorted(statuses.items())}")
    assert scenarios >= len(OPERATIONS)
    # It reached the views, not only the doors: successes and refusals of the services.
    assert sum(statuses.values()) > 20 * len(OPERATIONS)
    assert {200, 401, 404, 422} <= set(statuses)
    assert not problems, "\n\n".join(problems[:10])
