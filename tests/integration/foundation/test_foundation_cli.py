"""The `cardsys` command: the README's journey, `--json` output, and one-line errors.

The CLI runs in-process through its real entry point `cardsys.cli.main` (inside click's
CliRunner isolation, so stdout and stderr are captured separately). On SQLite the instance
folder starts empty and `cardsys init` creates the database; on PostgreSQL it points at the
test server through CARDSYS_DATABASE_URL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tests.factories as f
from cardsys.db import Database
from cardsys.ids import CardNumber
from tests.cli import CLEAN, Run, run_cli

HOLDER = "11010519491231002X"  # the README's resident (GB 11643 specimen)
FIRST = "SS110000000017"  # the README's first card number
SECOND = str(CardNumber.build("SS", "11", 2))
JPEG = b"\xff\xd8\xff\xe0" + b"portrait" * 64


@dataclass(frozen=True)
class Cli:
    """The CLI bound to one instance folder (and database)."""

    env: dict[str, str | None]
    url: str

    def __call__(self, *args: str, **extra_env: str) -> Run:
        return run_cli(self.env | extra_env, *args)

    def ok(self, *args: str) -> Run:
        result = self(*args)
        # This instance has no PKI, so status changes cannot be published: that one warning
        # is expected; anything else on stderr is not.
        noise = [line for line in result.err.splitlines()
                 if not line.startswith("warning: status lists not republished")]
        assert (result.code, noise) == (0, []), result
        return result

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        database = Database(self.url)
        try:
            return f.snapshot(database)
        finally:
            database.dispose()


@pytest.fixture
def cli(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Cli:
    instance = tmp_path / "instance"
    env: dict[str, str | None] = CLEAN | {"CARDSYS_INSTANCE_PATH": str(instance)}
    if backend == "postgresql":
        database: Database = request.getfixturevalue("database")  # emptied for this test
        return Cli(env | {"CARDSYS_DATABASE_URL": database.url}, database.url)
    return Cli(env, f"sqlite:///{instance / 'cardsys.db'}")


@pytest.fixture
def office(cli: Cli, tmp_path: Path) -> Cli:
    """An initialised instance with the README's office, clerk alice, supervisors bob, carol."""
    init = cli.ok("init")
    assert "created admin operator 'admin'" in init.out
    created = cli.ok("office", "add", "NB-01", "--name", "Ningbo Haishu Office",
                     "--region", "330203", "--as", "admin", "--json").json()
    assert created == {"code": "NB-01", "name": "Ningbo Haishu Office", "region": "330203"}
    for login, role in (("alice", "clerk"), ("bob", "supervisor"), ("carol", "supervisor"),
                        ("dora", "auditor")):
        made = cli.ok("operator", "add", login, "--name", login.title(), "--role", role,
                      "--office", "NB-01", "--as", "admin", "--json").json()
        assert made == {"login": login, "role": role, "office": "NB-01"}
    return cli


def test_the_readme_journey(office: Cli, tmp_path: Path) -> None:
    cli = office
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(JPEG)
    enrolled = cli.ok("resident", "add", HOLDER, "--surname", "Wang", "--given-names", "Li",
                      "--sex", "F", "--scheme", "URBAN-EMP", "--photo", str(photo),
                      "--as", "alice", "--json").json()
    assert enrolled["id_number"] == HOLDER
    assert enrolled["birth_date"] == "1949-12-31"
    assert enrolled["region"] == "110105"
    assert enrolled["schemes"] == ["URBAN-EMP"]
    assert enrolled["photo_sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert enrolled["office"] == "NB-01"

    applied = cli.ok("card", "apply", HOLDER, "--as", "alice", "--json").json()
    assert (applied["number"], applied["status"]) == (FIRST, "applied")
    steps = [("approve", "bob", "approved"), ("personalize", "alice", "personalized"),
             ("issue", "alice", "issued"), ("activate", "alice", "active")]
    for command, login, status in steps:
        card = cli.ok("card", command, FIRST, "--as", login, "--json").json()
        assert (card["number"], card["status"]) == (FIRST, status)
    suspended = cli.ok("card", "suspend", FIRST, "--reason", "lost", "--as", "alice",
                       "--json").json()
    assert (suspended["status"], suspended["reason"]) == ("suspended", "lost")
    new = cli.ok("card", "replace", FIRST, "--reason", "lost", "--as", "bob", "--json").json()
    assert (new["number"], new["status"], new["resident"]) == (SECOND, "applied", HOLDER)

    shown = cli.ok("card", "show", FIRST, "--as", "alice", "--json").json()
    assert (shown["status"], shown["reason"]) == ("revoked", "superseded")
    assert [e["tag"].split(":")[-1] for e in shown["history"]] == [
        "apply", "approve", "personalize", "hand_over", "activate", "suspend", "revoke"]
    text = cli.ok("card", "show", FIRST, "--as", "alice").out
    assert FIRST in text
    assert "revoked (superseded)" in text

    listed = cli.ok("card", "list", "--resident", HOLDER, "--as", "dora", "--json").json()
    assert [(c["number"], c["status"]) for c in listed] == [(SECOND, "applied"),
                                                           (FIRST, "revoked")]
    resident = cli.ok("resident", "show", HOLDER, "--as", "dora", "--json").json()
    assert [c["number"] for c in resident["cards"]] == [FIRST, SECOND]
    found = cli.ok("resident", "find", "wang", "--as", "alice", "--json").json()
    assert [r["id_number"] for r in found] == [HOLDER]
    events = cli.ok("audit", "show", "--subject", FIRST, "--as", "dora", "--json").json()
    assert len(events) == 7

    verified = cli.ok("audit", "verify", "--json").json()
    assert verified["ok"] is True
    # init 2 (system, admin), office 1, operators 4, enrolment 1, first card 7, second card 1
    assert verified["events"] == 16
    assert "audit chain intact" in cli.ok("audit", "verify").out
    assert cli.ok("card", "expire", "--now", "2060-01-01", "--json").json() == {"expired": []}


def test_renewal_and_expiry_through_the_cli(office: Cli) -> None:
    cli = office
    cli.ok("resident", "add", HOLDER, "--surname", "Wang", "--given-names", "Li", "--sex", "F",
           "--as", "alice")
    cli.ok("card", "apply", HOLDER, "--as", "alice")
    cli.ok("card", "approve", FIRST, "--as", "bob")
    for command in ("personalize", "issue", "activate"):
        cli.ok("card", command, FIRST, "--as", "alice")
    renewal = cli.ok("card", "renew", FIRST, "--as", "alice", "--json").json()
    assert renewal["number"] == SECOND
    expiry = cli.ok("card", "show", FIRST, "--as", "alice", "--json").json()["expiry_date"]
    assert cli.ok("card", "expire", "--now", expiry, "--json").json() == {"expired": []}
    year, rest = expiry.split("-", 1)
    after = f"{int(year) + 1}-{rest}"
    assert cli.ok("card", "expire", "--now", after, "--json").json() == {"expired": [FIRST]}


# (arguments, what the one error line must mention)
CLI_ERRORS: list[tuple[list[str], str]] = [
    (["resident", "add", "110105194912310021", "--surname", "W", "--given-names", "L",
      "--sex", "F", "--as", "alice"], "check character"),
    (["resident", "add", "11010519990230002X", "--surname", "W", "--given-names", "L",
      "--sex", "F", "--as", "alice"], "not a date"),
    (["resident", "add", HOLDER, "--surname", "W", "--given-names", "L", "--sex", "F",
      "--as", "alice"], "already registered"),
    (["resident", "add", "110105194912310038", "--surname", "Wang", "--given-names", "Li",
      "--sex", "F", "--as", "alice"], "possible duplicate"),
    (["card", "apply", HOLDER, "--as", "alice"], "already has card"),
    (["card", "approve", FIRST, "--as", "carol"], "another supervisor"),
    (["card", "approve", FIRST, "--as", "alice"], "may not do this"),
    (["card", "approve", FIRST, "--as", "nobody"], "no active operator"),
    (["card", "activate", FIRST, "--as", "alice"], "cannot activate"),
    (["card", "replace", FIRST, "--reason", "fraud", "--as", "carol"], "needs a reason"),
    (["card", "show", "SS110000000014", "--as", "alice"], "check character"),
    (["card", "show", "SS11999999999R", "--as", "alice"], "not found"),
    (["office", "add", "NB-02", "--name", "X", "--region", "330203", "--as", "alice"],
     "may not do this"),
    (["operator", "add", "eve", "--name", "Eve", "--role", "clerk", "--office", "XX-99",
      "--as", "admin"], "no office"),
    (["resident", "show", HOLDER, "--as", "admin"], "may not do this"),
    (["card", "expire", "--now", "2060-01-01", "--as", "alice"], "may not do this"),
]


@pytest.fixture
def applied(office: Cli) -> Cli:
    """The README's resident with an application made by carol (a supervisor)."""
    office.ok("resident", "add", HOLDER, "--surname", "Wang", "--given-names", "Li", "--sex",
              "F", "--as", "alice")
    office.ok("card", "apply", HOLDER, "--as", "carol")
    return office


def test_every_error_is_one_line_exit_1_and_changes_nothing(
    applied: Cli, subtests: pytest.Subtests
) -> None:
    before = applied.snapshot()
    for args, mention in CLI_ERRORS:
        with subtests.test(command=" ".join(args[:2]), mention=mention):
            result = applied(*args)
            assert result.code == 1, result
            assert result.out == ""
            lines = result.err.splitlines()
            assert len(lines) == 1, result.err
            assert lines[0].startswith("error: ")
            assert mention in lines[0]
            assert "Traceback" not in result.err
    assert applied.snapshot() == before


def test_a_bad_setting_is_one_error_line(applied: Cli) -> None:
    result = applied("card", "list", "--as", "alice", CARDSYS_MAX_DEVICES="0")
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("error: ")
    assert result.err.count("\n") == 1
    assert "max_devices" in result.err


def test_usage_errors_exit_2_without_traceback_and_change_nothing(applied: Cli) -> None:
    before = applied.snapshot()
    for args, mention in [
        (["card", "suspend", FIRST, "--as", "alice"], "--reason"),
        (["card", "suspend", FIRST, "--reason", "bored", "--as", "alice"], "bored"),
        (["card", "approve", FIRST], "--as"),
        (["card", "expire", "--now", "someday"], "someday"),
    ]:
        result = applied(*args)
        assert result.code == 2, result
        assert mention in result.err
        assert "Traceback" not in result.err
    assert applied.snapshot() == before


@pytest.mark.parametrize("folder_exists", [False, True], ids=["no folder", "empty folder"])
def test_a_command_before_init_is_one_error_line(tmp_path: Path, folder_exists: bool) -> None:
    """Forgetting `cardsys init` is a user's mistake: one line that says so, exit 1, not an
    internal error quoting SQLite ("unable to open database file", "no such table")."""
    instance = tmp_path / "fresh"
    if folder_exists:
        instance.mkdir()
    cli = Cli(CLEAN | {"CARDSYS_INSTANCE_PATH": str(instance)}, "")
    result = cli("card", "list", "--as", "alice")
    assert result.code == 1, result
    assert result.err.startswith("error: "), result.err
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    instance = tmp_path / "inst"
    instance.mkdir()
    cli = Cli(CLEAN | {"CARDSYS_INSTANCE_PATH": str(instance)},
              f"sqlite:///{instance / 'cardsys.db'}")
    assert cli.ok("db", "upgrade").out.strip() == "database at head"
    tables = cli.snapshot()
    assert {"cards", "residents", "audit_events", "alembic_version"} <= set(tables)
    assert tables["cards"] == []
