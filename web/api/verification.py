"""Verifying a scanned QR through the API (`POST /api/v1/verify/qr`).

The same check as the app's terminal page: `verify.check_qr` against the app's synced
terminal trust store (`<instance>/terminal`, `web.terminal.state.TerminalState`, synced from
the app's own public files when a sync is due) with its replay cache, so a QR verified on
the page is a replay here and the other way round. The answer is a verdict, valid or not,
with the reason code: a refused card is a 200 with `valid: false`, not an error of the
request.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from flask import current_app

from web.api.routing import Call, Reply, operation
from web.api.schema import closed, string
from web.terminal.state import TerminalState

#: A version-40 QR holds 4,296 alphanumeric characters.
MAX_TEXT = 8192


def _terminal() -> TerminalState:
    return cast(TerminalState, current_app.extensions["cardsys_terminal"])


def _sync_if_due(at: datetime) -> None:
    # Before the request's transaction: the sync reads the database in its own.
    _terminal().sync_if_due(at)


@operation(
    method="POST", path="/verify/qr", operation_id="verifyQr", tag="verification",
    response="Verdict", prepare=_sync_if_due,
    summary="Verify the text of a scanned QR (a phone's presentation `SSP1:` or a card's "
            "`SSC1:`) as the app's terminal does, offline, against its synced trust.",
    body=closed(["text"], text=string(min_length=1, max_length=MAX_TEXT,
                                      description="What the scanner read.")),
)
def verify_qr(call: Call) -> Reply:
    verdict = _terminal().verify(call.body["text"], call.at)
    return Reply(200, verdict.as_dict())
