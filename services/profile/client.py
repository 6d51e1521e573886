"""How the other services call the profile service: typed calls with deadlines, failures
raised as the domain errors the profile service raised (``omnicdp.core.status``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from omnicdp.api.profile.v1 import audience_pb2, audience_pb2_grpc, profile_pb2, profile_pb2_grpc
from omnicdp.core import channels, protoconv
from omnicdp.services.profile import convert
from omnicdp.services.profile.audiences import rules
from omnicdp.services.profile.audiences.export import Member
from omnicdp.services.profile.model import (
    AudienceChange,
    AudienceState,
    Consent,
    CustomerScores,
    Erasure,
    EventIn,
    IngestResult,
    Profile,
    Score,
    ScoreWrite,
    StoredEvent,
)

__all__ = ["AudienceChange", "AudienceClient", "AudienceState", "Consent", "CustomerScores",
           "EventIn", "Erasure", "IngestResult", "Member", "Profile", "ProfileClient", "Score",
           "ScoreWrite", "StoredEvent"]

class ProfileClient(channels.ServiceClient):
    PEER = "profile"
    STUB = profile_pb2_grpc.ProfileServiceStub

    def ingest(self, events: Sequence[EventIn]) -> list[IngestResult]:
        """Store a batch durably; one result per event, in order."""
        request = profile_pb2.IngestEventsRequest(
            events=[convert.event_in_to_proto(e) for e in events])
        response = self._unary("IngestEvents", request)
        return [convert.result_from_proto(r) for r in response.results]

    def get_profile(self, customer_id: str) -> Profile:
        request = profile_pb2.GetProfileRequest(customer_id=customer_id)
        response = self._unary("GetProfile", request)
        return convert.profile_from_proto(response.profile)

    def lookup_profile(self, id_type: str, value: str) -> Profile:
        request = profile_pb2.LookupProfileRequest(
            type=protoconv.identifier_type_value(id_type), value=value)
        response = self._unary("LookupProfile", request)
        return convert.profile_from_proto(response.profile)

    def update_consents(self, customer_id: str, decisions: Sequence[Consent]) -> list[Consent]:
        """Record consent decisions; the customer's current consents."""
        response = self._unary("UpdateConsents", profile_pb2.UpdateConsentsRequest(
            customer_id=customer_id, consents=[convert.consent_to_proto(d) for d in decisions]))
        return [convert.consent_from_proto(c) for c in response.consents]

    def consent_history(self, customer_id: str, page_size: int = 0,
                        page_token: str = "") -> tuple[list[Consent], str]:
        """A page of a customer's consent decisions, newest first, and the next token."""
        response = self._unary("ListConsentHistory", profile_pb2.ListConsentHistoryRequest(
            customer_id=customer_id, page_size=page_size, page_token=page_token))
        return ([convert.consent_from_proto(c) for c in response.consents],
                response.next_page_token)

    def set_scores(self, entries: Sequence[CustomerScores]) -> list[ScoreWrite]:
        """Store a page (at most 1,000) of customers' scores; one result per entry."""
        response = self._unary("SetScores", profile_pb2.SetScoresRequest(
            customers=[convert.customer_scores_to_proto(e) for e in entries]))
        return [convert.score_write_from_proto(r) for r in response.results]

    def customer_scores(self, customer_id: str) -> tuple[str, list[Score]]:
        """The id the customer is known by now and its scores, by name."""
        response = self._unary("GetCustomerScores", profile_pb2.GetCustomerScoresRequest(
            customer_id=customer_id))
        return response.customer_id, [convert.score_from_proto(s) for s in response.scores]

    def erase_profile(self, customer_id: str, actor: str, reason: str = "") -> Erasure:
        """Erase a customer here and in the identity service; what was erased (counts)."""
        response = self._unary("EraseProfile", profile_pb2.EraseProfileRequest(
            customer_id=customer_id, actor=actor, reason=reason))
        return Erasure(response.customer_id, response.events_erased,
                       response.identifiers_erased, response.consents_erased,
                       response.records_erased,
                       protoconv.timestamp_to_datetime(response.erased_at))

    def journey(self, customer_id: str, page_size: int = 0,
                page_token: str = "") -> tuple[list[StoredEvent], str]:
        """One page of a customer's events, oldest first, and the next page's token."""
        request = profile_pb2.ListProfileEventsRequest(
            customer_id=customer_id, page_size=page_size, page_token=page_token)
        response = self._unary("ListProfileEvents", request)
        return ([convert.stored_event_from_proto(e) for e in response.events],
                response.next_page_token)

    def events(self, page_size: int = 0, page_token: str = "") -> tuple[list[StoredEvent], str]:
        """One page of every stored event, in storage order, and the next page's token."""
        request = profile_pb2.ListEventsRequest(page_size=page_size, page_token=page_token)
        response = self._unary("ListEvents", request)
        return ([convert.stored_event_from_proto(e) for e in response.events],
                response.next_page_token)

    def all_events(self, page_size: int = 1000) -> Iterator[StoredEvent]:
        """Every stored event, page after page."""
        token = ""
        while True:
            page, token = self.events(page_size, token)
            yield from page
            if not token:
                return


class AudienceClient(channels.ServiceClient):
    """The profile service's audiences (``AudienceService``, same address)."""

    PEER = "profile"
    STUB = audience_pb2_grpc.AudienceServiceStub
    #: Defining and refreshing evaluate every customer: seconds on a large store (9.9 and
    #: 12 s for two audiences on 100k profiles on PostgreSQL, benchmarks/audience_define.py).
    EVALUATE_DEADLINE = 120.0

    def __init__(self, target: str, deadline: float = channels.DEFAULT_DEADLINE,
                 evaluate_deadline: float = EVALUATE_DEADLINE) -> None:
        super().__init__(target, deadline)
        self._evaluate_deadline = evaluate_deadline

    def put(self, name: str, definition: Mapping[str, Any]) -> AudienceState:
        """Define or redefine an audience from its JSON definition (checked here first, so
        a bad one fails with every field named before any call)."""
        audience = rules.parse(name, definition)
        response = self._unary("PutAudience", audience_pb2.PutAudienceRequest(
            audience=convert.audience_to_proto(audience)), self._evaluate_deadline)
        return convert.audience_state_from_proto(response.audience, response.joined,
                                                 response.left, response.created)

    def get(self, name: str) -> AudienceState:
        response = self._unary("GetAudience", audience_pb2.GetAudienceRequest(name=name))
        return convert.audience_state_from_proto(response.audience)

    def list(self, page_size: int = 0, page_token: str = "") -> tuple[list[AudienceState], str]:
        response = self._unary("ListAudiences", audience_pb2.ListAudiencesRequest(
            page_size=page_size, page_token=page_token))
        return ([convert.audience_state_from_proto(a) for a in response.audiences],
                response.next_page_token)

    def delete(self, name: str) -> None:
        self._unary("DeleteAudience", audience_pb2.DeleteAudienceRequest(name=name))

    def members(self, name: str, page_size: int = 0, page_token: str = "",
                hashed: bool = False) -> tuple[list[Member], str]:
        response = self._unary("ListAudienceMembers", audience_pb2.ListAudienceMembersRequest(
            name=name, page_size=page_size, page_token=page_token,
            hashing=convert.hashing_to_proto(hashed)))
        return [convert.member_from_proto(m) for m in response.members], response.next_page_token

    def changes(self, name: str, page_size: int = 0,
                page_token: str = "") -> tuple[list[AudienceChange], str]:
        response = self._unary("ListAudienceChanges", audience_pb2.ListAudienceChangesRequest(
            name=name, page_size=page_size, page_token=page_token))
        return ([convert.audience_change_from_proto(c) for c in response.changes],
                response.next_page_token)

    def export(self, name: str, hashed: bool = False) -> Iterator[Member]:
        for response in self._stream("ExportAudience", audience_pb2.ExportAudienceRequest(
                name=name, hashing=convert.hashing_to_proto(hashed))):
            yield convert.member_from_proto(response.member)

    def refresh(self, names: Sequence[str] = ()) -> list[tuple[str, int, int, int]]:
        """Evaluate audiences again (all when none named): (name, joined, left, members)."""
        response = self._unary("RefreshAudiences",
                               audience_pb2.RefreshAudiencesRequest(names=list(names)),
                               self._evaluate_deadline)
        return [(a.name, a.joined, a.left, a.member_count) for a in response.audiences]
