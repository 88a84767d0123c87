"""What every template may use besides Flask's own: labels, form keys, the signed-in operator."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g

from cardsys.models import Sex
from web import labels
from web.forms import new_form_key


def has_endpoint(name: str) -> bool:
    """Whether a view exists (navigation to pages a later part adds appears by itself)."""
    return name in current_app.view_functions


def init_app(app: Flask) -> None:
    """Register the template globals."""
    app.add_template_global(new_form_key)
    app.add_template_global(has_endpoint)
    app.add_template_global(lambda status: labels.STATUS[status], "status_label")
    app.add_template_global(lambda reason: labels.REASON[reason], "reason_label")
    app.add_template_global(lambda role: labels.ROLE[role], "role_label")
    app.add_template_global(lambda sex: labels.SEX[sex], "sex_label")
    app.add_template_global(lambda kind: labels.KIND[kind], "kind_label")
    app.add_template_global(lambda purpose: labels.PURPOSE[purpose], "purpose_label")
    app.add_template_global(lambda state: labels.SIGNER_STATUS[state], "signer_status_label")
    app.jinja_env.globals["sexes"] = list(Sex)

    @app.context_processor
    def signed_in() -> dict[str, Any]:
        # Only what `requires` already loaded: an error page must not touch the database.
        return {"signed_in": g.get("signed_in")}
