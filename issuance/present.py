"""Plain-data views of records, shared by the CLI's JSON output and the JSON API."""

from __future__ import annotations

from typing import Any

from cardsys.models import AuditEvent, Card, Resident


def card_dict(card: Card) -> dict[str, Any]:
    return {
        "number": card.number,
        "kind": card.kind.value,
        "status": card.status.value,
        "reason": card.status_reason.value if card.status_reason else None,
        "version": card.version,
        "resident": card.resident.id_number,
        "office": card.office.code,
        "issue_date": card.issue_date.isoformat() if card.issue_date else None,
        "expiry_date": card.expiry_date.isoformat() if card.expiry_date else None,
        "created_at": card.created_at.isoformat(),
        "status_changed_at": card.status_changed_at.isoformat(),
        "status_slot": (
            [card.status_list, card.status_index] if card.status_index is not None else None
        ),
    }


def resident_dict(resident: Resident) -> dict[str, Any]:
    return {
        "id_number": resident.id_number,
        "surname": resident.surname,
        "given_names": resident.given_names,
        "sex": resident.sex.value,
        "birth_date": resident.birth_date.isoformat(),
        "region": resident.region,
        "schemes": resident.schemes.split(),
        "office": resident.office.code,
        "photo_sha256": resident.photo.sha256 if resident.photo else None,
        "review_required": resident.review_required,
        "deceased": resident.deceased,
    }


def event_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "office": event.office,
        "tag": event.tag,
        "subject": event.subject,
        "details": event.details,
        "hash": event.hash,
    }
