"""The HTTP contract's JSON and the services' domain values, both ways."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from omnicdp.core.durations import parse_duration, parse_window
from omnicdp.core.jsonvalues import text_problem
from omnicdp.services.attribution.client import DIMENSIONS, AttributionReport
from omnicdp.services.gateway import schemas
from omnicdp.services.gateway.problems import ProblemError, violations_to_json
from omnicdp.services.profile.client import (
    AudienceChange,
    AudienceState,
    Consent,
    Erasure,
    EventIn,
    IngestResult,
    Member,
    Profile,
    Score,
    StoredEvent,
)


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_in(event: schemas.Event, sent_by: str) -> EventIn:
    """The partner's event, recorded as sent by the key named ``sent_by``."""
    return EventIn(
        message_id=event.message_id, type=event.type, channel=event.channel,
        event=event.event or "", source=event.source or "", timestamp=event.timestamp,
        identifiers={k: v for k, v in event.identifiers.model_dump().items() if v},
        traits=event.traits, properties=event.properties, sent_by=sent_by)


def stored_event_json(event: StoredEvent) -> dict[str, Any]:
    return {
        "message_id": event.message_id,
        "type": event.type,
        "event": event.event or None,
        "channel": event.channel,
        "source": event.source or None,
        "timestamp": rfc3339(event.timestamp),
        "identifiers": event.identifiers,
        "traits": event.traits,
        "properties": event.properties,
        "customer_id": event.customer_id,
        "received_at": rfc3339(event.received_at),
        "sent_by": event.sent_by or None,
    }


def profile_json(profile: Profile) -> dict[str, Any]:
    identifiers: dict[str, list[str]] = {}
    for id_type, value in profile.identifiers:
        identifiers.setdefault(id_type, []).append(value)
    return {
        "customer_id": profile.customer_id,
        "identifiers": identifiers,
        "traits": profile.traits,
        "consents": [consent_json(c) for c in profile.consents],
        "first_seen": rfc3339(profile.first_seen),
        "last_seen": rfc3339(profile.last_seen),
        "event_count": profile.event_count,
        "scores": scores_json(profile.scores.values()),
        "merged_customer_ids": list(profile.merged_customer_ids),
        "identifier_details": [{"type": d.id_type, "value": d.value,
                                "sources": list(d.sources),
                                "first_seen": rfc3339(d.first_seen),
                                "last_seen": rfc3339(d.last_seen)}
                               for d in profile.identifier_details],
        "counters": {"events_by_channel": dict(profile.counters.events_by_channel),
                     "orders_online": profile.counters.orders_online,
                     "orders_store": profile.counters.orders_store,
                     "revenue": profile.counters.revenue},
    }


def scores_json(scores: Iterable[Score]) -> dict[str, dict[str, Any]]:
    return {s.name: {"value": s.value, "model": s.model, "version": s.model_version,
                     "computed_at": rfc3339(s.computed_at)} for s in scores}


def consent_json(consent: Consent) -> dict[str, Any]:
    return {"purpose": consent.purpose, "channel": consent.channel or None,
            "status": consent.status, "granted": consent.granted,
            "updated_at": rfc3339(consent.updated_at), "source": consent.source,
            "legal_basis": consent.legal_basis, "proof_reference": consent.proof_reference,
            "recorded_at": rfc3339(consent.recorded_at)}


def consent_in(decision: schemas.ConsentDecision) -> Consent:
    return Consent(purpose=decision.purpose, channel=decision.channel or "",
                   status=decision.status, updated_at=decision.updated_at,  # type: ignore
                   source=decision.source or "", legal_basis=decision.legal_basis or "",
                   proof_reference=decision.proof_reference or "")


def erasure_json(erasure: Erasure) -> dict[str, Any]:
    return {"customer_id": erasure.customer_id, "events_erased": erasure.events,
            "identifiers_erased": erasure.identifiers, "consents_erased": erasure.consents,
            "records_erased": erasure.records, "erased_at": rfc3339(erasure.erased_at)}


def rejected_json(message_id: Any, violations: list[dict[str, str]]) -> dict[str, Any]:
    echoed = isinstance(message_id, str) and text_problem(message_id) is None
    return {"message_id": message_id if echoed else None,
            "status": "rejected",
            "error": "; ".join(f"{v['field']}: {v['description']}" for v in violations),
            "violations": violations}


def result_json(result: IngestResult) -> dict[str, Any]:
    if result.status == "rejected":
        return rejected_json(result.message_id, violations_to_json(result.violations))
    body: dict[str, Any] = {"message_id": result.message_id, "status": result.status,
                            "customer_id": result.customer_id}
    if result.warnings:
        body["warnings"] = violations_to_json(result.warnings)
    return body


def report_json(report: AttributionReport) -> dict[str, Any]:
    return {"model": report.model, "total_conversions": report.total_conversions,
            "total_revenue": report.total_revenue, "events_read": report.events_read,
            "method": report.method, "mlflow_run_id": report.mlflow_run_id or None,
            "channels": {name: {"conversions": c.conversions, "revenue": c.revenue,
                                **{f"by_{dimension}": {
                                    key: {"conversions": conv, "revenue": rev}
                                    for key, (conv, rev) in c.by(dimension).items()}
                                   for dimension in DIMENSIONS},
                                "splits": [{"place": x.place, "segment": x.segment,
                                            "touch": x.touch, "conversions": x.conversions,
                                            "revenue": x.revenue} for x in c.splits]}
                         for name, c in report.channels.items()}}


def report_options(post_view: list[str], event_post_view: list[str],
                   default_post_view: str | None, time_zone: str, start: str | None,
                   end: str | None) -> dict[str, Any]:
    """The attribution route's query parameters as the client's keyword arguments; a bad one
    is a 422 naming it."""
    problems: list[dict[str, str]] = []

    def windows(field: str, values: list[str]) -> dict[str, timedelta]:
        parsed = {}
        for value in values:
            try:
                name, window = parse_window(value)
            except ValueError as error:
                problems.append({"field": field, "description": str(error)})
                continue
            parsed[name] = window
        return parsed

    options: dict[str, Any] = {
        "post_view_windows": windows("post_view", post_view),
        "event_post_view_windows": windows("event_post_view", event_post_view),
        "time_zone": time_zone}
    if default_post_view is not None:
        try:
            options["default_post_view_window"] = parse_duration(default_post_view)
        except ValueError as error:
            problems.append({"field": "default_post_view", "description": str(error)})
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append({"field": "time_zone", "description": "an IANA time zone name, "
                                                          "e.g. Europe/Moscow"})
        zone = UTC
    for field, value in (("start", start), ("end", end)):
        if value is None:
            continue
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            problems.append({"field": field, "description": "an ISO date or date and time"})
            continue
        options[field] = moment if moment.tzinfo else moment.replace(tzinfo=zone)
    if problems:
        raise ProblemError(422, "INVALID_ARGUMENT", "invalid report parameters", problems)
    return options


def audience_json(state: AudienceState) -> dict[str, Any]:
    definition = state.audience.to_dict()
    return {**definition, "consent": definition.get("consent"),
            "summary": state.audience.describe(), "member_count": state.members,
            "created_at": rfc3339(state.created_at), "updated_at": rfc3339(state.updated_at)}


def member_json(member: Member) -> dict[str, Any]:
    identifiers: dict[str, list[str]] = {}
    for id_type, value in member.identifiers:
        identifiers.setdefault(id_type, []).append(value)
    return {"customer_id": member.customer_id, "since": rfc3339(member.since),
            "identifiers": identifiers}


def audience_change_json(change: AudienceChange) -> dict[str, Any]:
    return {"seq": change.seq, "customer_id": change.customer_id, "change": change.change,
            "at": rfc3339(change.at), "reason": change.reason}
