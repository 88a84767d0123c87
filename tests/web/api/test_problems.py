"""Errors are RFC 9457 problem documents: one status mapping, a resolvable type per code."""

from __future__ import annotations

import pytest
from flask import Flask

from cardsys.errors import (
    ActiveCardExistsError,
    AuthenticationError,
    CardsysError,
    ConflictError,
    DatabaseUnavailableError,
    DecodeError,
    DuplicateError,
    IllegalTransitionError,
    InvalidIdNumberError,
    LimitExceededError,
    LockedError,
    NoActiveSignerError,
    NotFoundError,
    PermissionDeniedError,
    PossibleDuplicateError,
    ValidationError,
)
from tests.web.api.conftest import Api, problem
from web.api import problems


@pytest.mark.parametrize(("error", "status"), [
    (NotFoundError, 404), (PermissionDeniedError, 403), (AuthenticationError, 401),
    (LockedError, 423), (ConflictError, 409), (DuplicateError, 409),
    (PossibleDuplicateError, 409), (IllegalTransitionError, 409), (ActiveCardExistsError, 409),
    (LimitExceededError, 409), (ValidationError, 422), (InvalidIdNumberError, 422),
    (DecodeError, 422), (DatabaseUnavailableError, 503), (NoActiveSignerError, 503),
    (CardsysError, 500),
])
def test_one_mapping_from_errors_to_statuses(error: type[CardsysError], status: int) -> None:
    assert problems.status_of(error("x")) == status
    assert problems.status_of(error) == status


def test_every_code_has_a_type_that_resolves(api: Api) -> None:
    catalog = problems.catalog()
    assert {"not_found", "invalid_body", "precondition_failed", "shown_once"} <= set(catalog)
    for code, (status, title) in catalog.items():
        body = api.client.get(f"/api/v1/problems/{code}").get_json()
        assert body == {"type": f"/api/v1/problems/{code}", "code": code, "title": title,
                        "status": status}
    problem(api.client.get("/api/v1/problems/no_such_thing"), 404)


def test_the_shape_of_protocol_refusals(api: Api) -> None:
    world = api.world
    not_json = api.client.post("/api/v1/cards", data="{", content_type="application/json",
                               headers={"Authorization": f"Bearer {api.tokens[world.a.clerk]}",
                                        "Idempotency-Key": "k" * 20})
    problem(not_json, 400, "malformed_json")
    form = api.client.post("/api/v1/cards", data={"resident": world.resident_a},
                           headers={"Authorization": f"Bearer {api.tokens[world.a.clerk]}",
                                    "Idempotency-Key": "k" * 20})
    problem(form, 415, "unsupported_media_type")
    for body in ("[]", "null", '"x"', "NaN", "[" * 100_000 + "]" * 100_000,
                 '{"resident": NaN}'):
        refused = api.client.post(
            "/api/v1/cards", data=body, content_type="application/json",
            headers={"Authorization": f"Bearer {api.tokens[world.a.clerk]}",
                     "Idempotency-Key": "k" * 20})
        assert refused.status_code in (400, 422), body[:20]
    huge = api.client.post("/api/v1/residents", data="x" * (2 * 1024 * 1024),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {api.tokens[world.a.clerk]}",
                                    "Idempotency-Key": "k" * 20})
    problem(huge, 413, "too_large")


def test_methods_and_unknown_addresses(api: Api) -> None:
    refused = problem(api.client.delete("/api/v1/cards"), 405, "method_not_allowed")
    assert refused["detail"]
    assert api.client.delete("/api/v1/cards").headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    options = api.client.open("/api/v1/cards/SS110000000017", method="OPTIONS")
    assert (options.status_code, options.headers["Allow"]) == (204, "GET, HEAD, OPTIONS")
    problem(api.client.get("/api/v1/no/such/thing"), 404, "not_found")
    head = api.client.head("/api/v1/")
    assert (head.status_code, head.data) == (200, b"")


def test_no_csrf_token_no_cookie(api: Api, api_app: Flask) -> None:
    # A bearer request is not a form: no CSRF token needed, and no session cookie is set.
    response = api.create("/cards", {"resident": api.world.resident_a})
    assert response.status_code == 409  # the service's answer, not a CSRF refusal
    assert "Set-Cookie" not in response.headers


def test_an_unmapped_error_says_nothing_internal(api: Api, api_app: Flask) -> None:
    with api_app.test_request_context("/api/v1/x"):
        response = problems.from_service(CardsysError("secret detail"))
    assert response.status_code == 500
    assert b"secret detail" not in response.get_data()
