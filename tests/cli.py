"""Running the `cardsys` command inside a test, as a user would, with a chosen environment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from click.testing import CliRunner

from cardsys.cli import main

#: Variables of the developer's shell that would change what the CLI does.
CLEAN: dict[str, str | None] = {
    "CARDSYS_OPERATOR": None, "CARDSYS_CONFIG": None, "CARDSYS_DEBUG": None,
    "CARDSYS_DATABASE_URL": None, "CARDSYS_KEY_PASSPHRASE": None,
}


@dataclass(frozen=True)
class Run:
    """What one command did: exit status, standard output, standard error."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(env: Mapping[str, str | None], *args: str) -> Run:
    """`cardsys ARGS` in this process, with `env` on top of the test's environment."""
    with CliRunner().isolation(env=dict(env)) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Run(code, out.getvalue().decode(), err.getvalue().decode())
