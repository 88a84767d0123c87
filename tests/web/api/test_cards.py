"""Cards through the API: the whole life, versions (If-Match), scope, roles, idempotency."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from cardsys.models import Card, IdempotencyKey
from tests.web.api.conftest import Api, new_key, problem, walk_to_active


def card_count(api: Api) -> int:
    with api.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Card)) or 0)


def test_a_card_walks_its_whole_life(api: Api) -> None:
    world = api.world
    applied = api.create("/cards", {"resident": world.resident_a}, as_=world.a.clerk)
    # The seeded card is still open: a second application is refused, not made.
    problem(applied, 409, "active_card_exists")
    number = world.card_a
    body = walk_to_active(api, number)
    assert body["issue_date"]
    assert body["expiry_date"]
    suspended = api.step(number, "suspend", json={"reason": "lost"}, as_=world.a.clerk)
    assert suspended.status_code == 200
    assert (suspended.get_json()["status"], suspended.get_json()["reason"]) == ("suspended",
                                                                              "lost")
    assert suspended.headers["ETag"] == f'"{suspended.get_json()["version"]}"'
    resumed = api.step(number, "resume", as_=world.a.supervisor)
    assert resumed.get_json()["status"] == "active"
    revoked = api.step(number, "revoke", json={"reason": "fraud"}, as_=world.a.supervisor)
    assert (revoked.get_json()["status"], revoked.get_json()["reason"]) == ("revoked", "fraud")
    again = api.create("/cards", {"resident": world.resident_a}, as_=world.a.clerk)
    assert again.status_code == 201
    new = again.get_json()
    assert new["status"] == "applied"
    assert new["number"] != number
    assert again.headers["Location"] == f"/api/v1/cards/{new['number']}"
    assert again.headers["ETag"] == f'"{new["version"]}"'


def test_maker_checker_holds(api: Api) -> None:
    # The supervisor who prepared an application may not approve it.
    world = api.world
    walk_to_active(api, world.card_a)
    api.step(world.card_a, "revoke", json={"reason": "damaged"}, as_=world.a.supervisor)
    made = api.create("/cards", {"resident": world.resident_a}, as_=world.a.supervisor)
    number = made.get_json()["number"]
    problem(api.step(number, "approve", as_=world.a.supervisor), 409, "maker_checker")
    assert api.step(number, "approve", as_=world.a.supervisor2).status_code == 200


@pytest.mark.parametrize(("slug", "reason"), [
    ("suspend", None), ("suspend", "superseded"), ("revoke", "superseded"),
    ("replace", "fraud"), ("revoke", "nonsense"),
])
def test_a_step_needs_one_of_its_reasons(api: Api, slug: str, reason: str | None) -> None:
    world = api.world
    walk_to_active(api, world.card_a)
    body = {} if reason is None else {"reason": reason}
    response = api.step(world.card_a, slug, json=body, as_=world.a.supervisor)
    found = problem(response, 422, "invalid_body")
    assert found["errors"][0]["pointer"] == "/reason"
    assert api.get(f"/cards/{world.card_a}").get_json()["status"] == "active"


def test_an_illegal_step_is_a_conflict(api: Api) -> None:
    world = api.world
    problem(api.step(world.card_a, "activate", as_=world.a.clerk), 409, "illegal_transition")


def test_if_match_is_required_and_checked(api: Api) -> None:
    world = api.world
    path = f"/cards/{world.card_a}/approve"
    boss = world.a.supervisor
    problem(api.post(path, as_=boss), 428, "precondition_required")
    for bad in ('"0"', "1", '"abc"', 'W/"1"', "*", '"1", "2"'):
        problem(api.post(path, as_=boss, version=bad), 400, "bad_header")
    current = api.version(world.card_a)
    stale = problem(api.post(path, as_=boss, version=current + 1), 412, "precondition_failed")
    assert "read it again" in stale["detail"]
    response = api.post(path, as_=boss, version=current + 1)
    assert response.headers["ETag"] == f'"{current}"'
    assert api.get(f"/cards/{world.card_a}").get_json()["status"] == "applied"
    done = api.post(path, as_=boss, version=current)
    assert done.status_code == 200
    # The same version again is now stale: the card moved on.
    problem(api.post(f"/cards/{world.card_a}/personalize", version=current), 412)


def test_another_office_is_not_found_and_roles_are_forbidden(api: Api) -> None:
    world = api.world
    theirs = world.card_b
    problem(api.get(f"/cards/{theirs}", as_=world.a.clerk), 404, "not_found")
    problem(api.post(f"/cards/{theirs}/approve", as_=world.a.supervisor, version=1), 404)
    listed = api.get("/cards", as_=world.a.auditor).get_json()["cards"]
    assert world.card_a in [c["number"] for c in listed]
    assert {c["office"] for c in listed} == {"OFF-A"}
    problem(api.get(f"/cards?resident={world.resident_b}", as_=world.a.clerk), 404)
    # Roles: an auditor changes nothing, a clerk does not approve or revoke.
    problem(api.post(f"/cards/{world.card_a}/approve", as_=world.a.auditor, version=1), 403,
            "forbidden")
    problem(api.post(f"/cards/{world.card_a}/approve", as_=world.a.clerk, version=1), 403)
    problem(api.create("/cards", {"resident": world.resident_a}, as_=world.a.auditor), 403)
    # A number failing its check digit is simply not there.
    problem(api.get(f"/cards/{theirs[:-1]}{'0' if theirs[-1] != '0' else '1'}"), 404)


def test_list_filters(api: Api) -> None:
    world = api.world
    by_status = api.get("/cards?status=applied").get_json()["cards"]
    assert world.card_a in [c["number"] for c in by_status]
    assert {c["status"] for c in by_status} == {"applied"}
    active = api.get("/cards?status=active").get_json()["cards"]
    assert {c["status"] for c in active} <= {"active"}
    assert world.card_a not in [c["number"] for c in active]
    assert len(api.get(f"/cards?resident={world.resident_a}&limit=1").get_json()["cards"]) == 1
    problem(api.get("/cards?limit=0"), 422, "invalid_parameters")
    problem(api.get("/cards?status=lost"), 422, "invalid_parameters")


def test_replace_and_renew_answer_the_new_card(api: Api) -> None:
    world = api.world
    walk_to_active(api, world.card_a)
    renewed = api.step(world.card_a, "renew", as_=world.a.clerk)
    assert renewed.status_code == 201
    successor = renewed.get_json()
    assert successor["status"] == "applied"
    assert api.get(f"/cards/{world.card_a}").get_json()["status"] == "active"
    problem(api.step(world.card_a, "renew", as_=world.a.clerk), 409, "active_card_exists")
    # The renewal is pending: a replacement would make a second open card.
    problem(api.step(world.card_a, "replace", json={"reason": "stolen"},
                     as_=world.a.supervisor), 409, "active_card_exists")


def test_replace(api: Api) -> None:
    world = api.world
    walk_to_active(api, world.card_a)
    problem(api.step(world.card_a, "replace", json={"reason": "stolen"}, as_=world.a.clerk),
            403)
    replaced = api.step(world.card_a, "replace", json={"reason": "stolen"},
                        as_=world.a.supervisor)
    assert replaced.status_code == 201, replaced.get_json()
    assert replaced.get_json()["status"] == "applied"
    old = api.get(f"/cards/{world.card_a}").get_json()
    assert (old["status"], old["reason"]) == ("revoked", "superseded")


def test_a_retry_answers_the_first_response_and_makes_no_second_card(api: Api) -> None:
    world = api.world
    walk_to_active(api, world.card_a)
    version = api.version(world.card_a)
    key = new_key()
    path = f"/cards/{world.card_a}/renew"
    first = api.post(path, key=key, version=version)
    before = card_count(api)
    second = api.post(path, key=key, version=version)
    assert second.status_code == first.status_code == 201
    assert second.get_json() == first.get_json()
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert card_count(api) == before
    # The same key for another request: refused, nothing made.
    other = api.post(f"/cards/{world.card_a}/renew", key=key, version=version + 1)
    problem(other, 422, "idempotency_key_reused")
    problem(api.post("/cards", {"resident": world.resident_a}, key=key), 422)
    assert card_count(api) == before


def test_keys_belong_to_their_operator(api: Api) -> None:
    # Another operator's key is not theirs to replay: it is a new request for them.
    world = api.world
    key = new_key()
    api.step(world.card_a, "approve", as_=world.a.supervisor)
    api.step(world.card_a, "personalize")
    api.step(world.card_a, "hand-over")
    api.step(world.card_a, "activate")
    version = api.version(world.card_a)
    first = api.post(f"/cards/{world.card_a}/renew", key=key, version=version,
                     as_=world.a.clerk)
    assert first.status_code == 201
    problem(api.post(f"/cards/{world.card_a}/renew", key=key, version=version,
                     as_=world.a.supervisor), 409, "active_card_exists")


def test_creating_requests_need_a_good_key(api: Api) -> None:
    world = api.world
    problem(api.post("/cards", {"resident": world.resident_a}), 400, "idempotency_key_required")
    for bad in ("short", "x" * 65, "has space in it!!", "ключ-ключ-ключ-ключ"):
        problem(api.post("/cards", {"resident": world.resident_a}, key=bad), 400, "bad_header")


def test_a_refused_request_keeps_no_claim(api: Api) -> None:
    # The service refused: the key was rolled back with the rest and may be used again.
    world = api.world
    key = new_key()
    problem(api.post("/cards", {"resident": world.resident_a}, key=key), 409)
    with api.db.transaction() as session:
        assert session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == key)) is None
    api.step(world.card_a, "revoke", json={"reason": "damaged"}, as_=world.a.supervisor)
    assert api.post("/cards", {"resident": world.resident_a}, key=key).status_code == 201


def test_concurrent_retries_make_one_card(api: Api) -> None:
    world = api.world
    api.step(world.card_a, "revoke", json={"reason": "damaged"}, as_=world.a.supervisor)
    before = card_count(api)
    key = new_key()
    answers: list[tuple[int, object]] = []
    start = threading.Barrier(6)

    def send() -> None:
        client = api.app.test_client()
        start.wait()
        response = client.post("/api/v1/cards", json={"resident": world.resident_a},
                               headers={"Authorization": f"Bearer {api.tokens[world.a.clerk]}",
                                        "Idempotency-Key": key})
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert card_count(api) == before + 1
    assert {status for status, _ in answers} == {201}
    assert len({repr(body) for _, body in answers}) == 1
