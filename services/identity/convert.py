"""The identity service's messages and its domain values, both ways: the servicer uses one
direction, ``client.py`` the other."""

from __future__ import annotations

from datetime import UTC, datetime

from omnicdp.api.identity.v1 import identity_pb2
from omnicdp.core import protoconv
from omnicdp.core.vocabulary import IDENTIFIER_TYPES
from omnicdp.services.identity.model import (
    Change,
    Explanation,
    IdentityRecord,
    LinkedCustomer,
    Resolution,
    ReviewItem,
    Separation,
    StoredLink,
    StoredRecord,
)
from omnicdp.services.identity.records import FEATURES

_CHANGE_KINDS = {
    "created": identity_pb2.CHANGE_KIND_CREATED,
    "linked": identity_pb2.CHANGE_KIND_LINKED,
    "merged": identity_pb2.CHANGE_KIND_MERGED,
    "split": identity_pb2.CHANGE_KIND_SPLIT,
    "erased": identity_pb2.CHANGE_KIND_ERASED,
}
_CHANGE_KIND_NAMES = {value: name for name, value in _CHANGE_KINDS.items()}


def record_to_proto(record: IdentityRecord) -> identity_pb2.IdentityRecord:
    return identity_pb2.IdentityRecord(
        record_id=record.record_id,
        identifiers=protoconv.identifiers_from_dict(dict(record.identifiers)),
        observed_at=protoconv.timestamp_from_datetime(record.observed_at),
        source=record.source,
        traits=identity_pb2.PersonTraits(**{
            name: str(record.traits[name]) for name in FEATURES
            if isinstance(record.traits.get(name), str | int)
            and not isinstance(record.traits.get(name), bool)}))


def record_from_proto(message: identity_pb2.IdentityRecord) -> IdentityRecord:
    return IdentityRecord(
        record_id=message.record_id,
        identifiers=protoconv.identifiers_to_dict(message.identifiers),
        observed_at=protoconv.timestamp_to_datetime(message.observed_at) or datetime.now(UTC),
        source=message.source,
        traits=_traits_from_proto(message.traits))


def change_to_proto(change: Change) -> identity_pb2.CustomerChange:
    return identity_pb2.CustomerChange(
        seq=change.seq, kind=_CHANGE_KINDS[change.kind], customer_id=change.customer_id,
        other_customer_id=change.other_customer_id or "",
        record_ids=[change.record_id] if change.record_id else [],
        committed_at=protoconv.timestamp_from_datetime(change.at))


def change_from_proto(message: identity_pb2.CustomerChange) -> Change:
    return Change(message.seq, _CHANGE_KIND_NAMES[message.kind], message.customer_id,
                  message.other_customer_id or None,
                  message.record_ids[0] if message.record_ids else None,
                  protoconv.timestamp_to_datetime(message.committed_at))


def resolution_to_proto(resolution: Resolution) -> identity_pb2.Resolution:
    return identity_pb2.Resolution(
        record_id=resolution.record_id,
        customer_id=resolution.customer_id or "",
        created=resolution.created,
        merged_customer_ids=resolution.merged_customer_ids,
        matched_on=[protoconv.identifier_type_value(t) for t in resolution.matched_on if t],
        identifiers=protoconv.identifiers_from_dict(resolution.identifiers),
        violations=protoconv.violations_to_proto(resolution.violations),
        warnings=protoconv.violations_to_proto(resolution.warnings),
        identity_record_id=resolution.identity_record_id,
        suppressed=resolution.suppressed,
    )


def resolution_from_proto(message: identity_pb2.Resolution) -> Resolution:
    return Resolution(
        record_id=message.record_id,
        customer_id=message.customer_id or None,
        created=message.created,
        merged_customer_ids=tuple(message.merged_customer_ids),
        matched_on=tuple(protoconv.identifier_type_name(t) for t in message.matched_on),
        identifiers=protoconv.identifiers_to_dict(message.identifiers),
        violations=protoconv.violations_from_proto(message.violations),
        warnings=protoconv.violations_from_proto(message.warnings),
        identity_record_id=message.identity_record_id,
        suppressed=message.suppressed,
    )


def customer_to_proto(customer: LinkedCustomer) -> identity_pb2.Customer:
    return identity_pb2.Customer(
        customer_id=customer.customer_id,
        identifiers=protoconv.identifier_list_to_proto(
            (t, v) for t in IDENTIFIER_TYPES for v in customer.identifiers.get(t, [])),
        merged_customer_ids=customer.merged_customer_ids)


def customer_from_proto(message: identity_pb2.Customer) -> LinkedCustomer:
    identifiers: dict[str, list[str]] = {}
    for id_type, value in protoconv.identifier_list_from_proto(message.identifiers):
        identifiers.setdefault(id_type, []).append(value)
    return LinkedCustomer(message.customer_id, identifiers, tuple(message.merged_customer_ids))


def explanation_to_proto(customer_id: str, records: list[StoredRecord],
                         links: list[StoredLink], merged: list[str],
                         kept_apart: list[Separation] = ()) -> identity_pb2.ExplainCustomerResponse:
    return identity_pb2.ExplainCustomerResponse(
        customer_id=customer_id,
        records=[identity_pb2.IdentityRecordView(
            record_id=r.record_id, source=r.source,
            traits=identity_pb2.PersonTraits(**dict(r.features)),
            identifiers=protoconv.identifiers_from_dict(
                {t: values[0] for t, values in r.identifiers.items() if values}),
            first_seen=protoconv.timestamp_from_datetime(r.first_seen),
            last_seen=protoconv.timestamp_from_datetime(r.last_seen)) for r in records],
        links=[identity_pb2.RecordLink(
            record_a=link.record_a, record_b=link.record_b, rule=link.rule,
            probability=link.probability or 0.0,
            created_at=protoconv.timestamp_from_datetime(link.created_at),
            created_by=link.created_by,
            revoked_at=protoconv.timestamp_from_datetime(link.revoked_at),
            revoked_by=link.revoked_by or "", revoke_reason=link.revoke_reason or "",
            weights=[identity_pb2.ComparisonWeight(comparison=c, level=level, match_weight=w)
                     for c, level, w in link.weights])
            for link in links],
        merged_customer_ids=merged,
        kept_apart=[identity_pb2.Separation(
            other_customer_id=k.other_customer_id,
            created_at=protoconv.timestamp_from_datetime(k.created_at),
            created_by=k.created_by, reason=k.reason) for k in kept_apart])


def link_to_proto(link: StoredLink) -> identity_pb2.RecordLink:
    return explanation_to_proto("", [], [link], []).links[0]


def review_item_to_proto(item: ReviewItem) -> identity_pb2.ReviewItem:
    return identity_pb2.ReviewItem(
        kind=identity_pb2.REVIEW_KIND_LINK if item.kind == "link"
        else identity_pb2.REVIEW_KIND_NEAR_MISS,
        record_a=item.record_a, record_b=item.record_b, probability=item.probability,
        model_version=item.model_version, customer_a=item.customer_a,
        customer_b=item.customer_b, scored_at=protoconv.timestamp_from_datetime(item.scored_at))


def review_item_from_proto(message: identity_pb2.ReviewItem) -> ReviewItem:
    return ReviewItem(
        "link" if message.kind == identity_pb2.REVIEW_KIND_LINK else "near_miss",
        message.record_a, message.record_b, message.probability, message.model_version,
        message.customer_a, message.customer_b,
        protoconv.timestamp_to_datetime(message.scored_at))


def explanation_from_proto(message: identity_pb2.ExplainCustomerResponse) -> Explanation:
    return Explanation(
        customer_id=message.customer_id,
        records=[StoredRecord(
            record_id=r.record_id, customer_id=message.customer_id, source=r.source,
            features=_traits_from_proto(r.traits),
            identifiers={t: [v] for t, v in protoconv.identifiers_to_dict(r.identifiers).items()},
            first_seen=protoconv.timestamp_to_datetime(r.first_seen),
            last_seen=protoconv.timestamp_to_datetime(r.last_seen)) for r in message.records],
        links=[StoredLink(
            record_a=link.record_a, record_b=link.record_b, rule=link.rule,
            created_at=protoconv.timestamp_to_datetime(link.created_at),
            created_by=link.created_by, probability=link.probability or None,
            revoked_at=protoconv.timestamp_to_datetime(link.revoked_at),
            revoked_by=link.revoked_by or None, revoke_reason=link.revoke_reason or None,
            weights=tuple((w.comparison, w.level, w.match_weight) for w in link.weights))
            for link in message.links],
        merged_customer_ids=list(message.merged_customer_ids),
        kept_apart=[Separation(k.other_customer_id,
                               protoconv.timestamp_to_datetime(k.created_at), k.created_by,
                               k.reason) for k in message.kept_apart])


def _traits_from_proto(message: identity_pb2.PersonTraits) -> dict[str, str]:
    return {name: getattr(message, name) for name in FEATURES if getattr(message, name)}
