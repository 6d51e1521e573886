"""gRPC servicer of the profile service: protobuf in, domain call, protobuf out."""

from __future__ import annotations

from datetime import UTC, datetime

from omnicdp.api.common.v1 import common_pb2
from omnicdp.api.profile.v1 import (
    audience_pb2,
    audience_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
)
from omnicdp.core import protoconv
from omnicdp.core.server import Registration, ServiceHost
from omnicdp.services.identity.client import IdentityClient
from omnicdp.services.profile import convert
from omnicdp.services.profile.audiences.book import AudienceBook, PeriodicRefresh
from omnicdp.services.profile.consents import ConsentBook
from omnicdp.services.profile.erasure import Eraser
from omnicdp.services.profile.golden import TraitPolicy
from omnicdp.services.profile.ingest import Ingestor
from omnicdp.services.profile.membership import MembershipFollower
from omnicdp.services.profile.model import StoredEvent
from omnicdp.services.profile.profiles import ProfileReader, SizeOf
from omnicdp.services.profile.scores import ScoreBook
from omnicdp.services.profile.settings import Settings
from omnicdp.services.profile.store import ProfileStore, open_store


class ProfileServicer(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(self, store: ProfileStore, identity: IdentityClient,
                 membership: MembershipFollower, erased_events: str = "reject",
                 default_region: str = "RU") -> None:
        self._ingestor = Ingestor(store, identity, membership, erased_events)
        self._eraser = Eraser(store, identity, membership)
        self._reader = ProfileReader(store, default_region)
        self._consents = ConsentBook(store)
        self._scores = ScoreBook(store)

    def IngestEvents(self, request, context):  # noqa: N802 (generated name)
        results = self._ingestor.ingest([convert.event_in_from_proto(e) for e in request.events])
        return profile_pb2.IngestEventsResponse(
            results=[convert.result_to_proto(r) for r in results])

    def GetProfile(self, request, context):  # noqa: N802
        return profile_pb2.GetProfileResponse(
            profile=convert.profile_to_proto(self._reader.get(request.customer_id)))

    def LookupProfile(self, request, context):  # noqa: N802
        profile = self._reader.lookup(protoconv.identifier_type_name(request.type), request.value)
        return profile_pb2.LookupProfileResponse(profile=convert.profile_to_proto(profile))

    def ListProfileEvents(self, request, context):  # noqa: N802
        messages, size_of = _measured()
        events, token = self._reader.journey(request.customer_id, request.page_size,
                                             request.page_token, size_of)
        return profile_pb2.ListProfileEventsResponse(
            events=[messages[e.seq] for e in events], next_page_token=token)

    def ListEvents(self, request, context):  # noqa: N802
        messages, size_of = _measured()
        events, token, snapshot = self._reader.all_events(request.page_size,
                                                          request.page_token, size_of)
        return profile_pb2.ListEventsResponse(
            events=[messages[e.seq] for e in events], next_page_token=token,
            snapshot_seq=snapshot or 0)


    def UpdateConsents(self, request, context):  # noqa: N802
        current = self._consents.update(
            request.customer_id, [convert.consent_from_proto(c) for c in request.consents],
            datetime.now(UTC))
        return profile_pb2.UpdateConsentsResponse(
            consents=[convert.consent_to_proto(c) for c in current])

    def ListConsentHistory(self, request, context):  # noqa: N802
        decisions, token = self._consents.history(request.customer_id, request.page_size,
                                                  request.page_token)
        return profile_pb2.ListConsentHistoryResponse(
            consents=[convert.consent_to_proto(c) for c in decisions], next_page_token=token)

    def SetScores(self, request, context):  # noqa: N802
        results = self._scores.set(
            [convert.customer_scores_from_proto(c) for c in request.customers],
            datetime.now(UTC))
        return profile_pb2.SetScoresResponse(
            results=[convert.score_write_to_proto(r) for r in results])

    def GetCustomerScores(self, request, context):  # noqa: N802
        customer_id, scores = self._scores.get(request.customer_id)
        return profile_pb2.GetCustomerScoresResponse(
            customer_id=customer_id, scores=[convert.score_to_proto(s) for s in scores])

    def EraseProfile(self, request, context):  # noqa: N802
        erased = self._eraser.erase(request.customer_id, request.actor, request.reason,
                                    datetime.now(UTC))
        return profile_pb2.EraseProfileResponse(
            customer_id=erased.customer_id, events_erased=erased.events,
            identifiers_erased=erased.identifiers, consents_erased=erased.consents,
            records_erased=erased.records,
            erased_at=protoconv.timestamp_from_datetime(erased.erased_at))


class AudienceServicer(audience_pb2_grpc.AudienceServiceServicer):
    def __init__(self, store: ProfileStore) -> None:
        self._book = AudienceBook(store)

    def PutAudience(self, request, context):  # noqa: N802 (generated name)
        state = self._book.put(request.audience.name,
                               convert.audience_definition_from_proto(request.audience))
        return audience_pb2.PutAudienceResponse(
            audience=convert.audience_to_proto(state.audience, state), created=state.created,
            joined=state.joined, left=state.left)

    def GetAudience(self, request, context):  # noqa: N802
        state = self._book.get(request.name)
        return audience_pb2.GetAudienceResponse(
            audience=convert.audience_to_proto(state.audience, state))

    def ListAudiences(self, request, context):  # noqa: N802
        states, token = self._book.list(request.page_size, request.page_token)
        return audience_pb2.ListAudiencesResponse(
            audiences=[convert.audience_to_proto(s.audience, s) for s in states],
            next_page_token=token)

    def DeleteAudience(self, request, context):  # noqa: N802
        self._book.delete(request.name)
        return audience_pb2.DeleteAudienceResponse(name=request.name)

    def ListAudienceMembers(self, request, context):  # noqa: N802
        members, token = self._book.members(request.name, request.page_size,
                                            request.page_token,
                                            convert.hashing_from_proto(request.hashing))
        return audience_pb2.ListAudienceMembersResponse(
            members=[convert.member_to_proto(m) for m in members], next_page_token=token)

    def ListAudienceChanges(self, request, context):  # noqa: N802
        changes, token = self._book.changes(request.name, request.page_size,
                                            request.page_token)
        return audience_pb2.ListAudienceChangesResponse(
            changes=[convert.audience_change_to_proto(c) for c in changes],
            next_page_token=token)

    def ExportAudience(self, request, context):  # noqa: N802
        for member in self._book.export(request.name,
                                        convert.hashing_from_proto(request.hashing)):
            yield audience_pb2.ExportAudienceResponse(member=convert.member_to_proto(member))

    def RefreshAudiences(self, request, context):  # noqa: N802
        states = self._book.refresh(list(request.names))
        return audience_pb2.RefreshAudiencesResponse(audiences=[
            audience_pb2.AudienceRefresh(name=s.audience.name, joined=s.joined, left=s.left,
                                         member_count=s.members) for s in states])


def _measured() -> tuple[dict[int, common_pb2.Event], SizeOf]:
    """A page's events measured as the messages they are sent as (converted once)."""
    messages: dict[int, common_pb2.Event] = {}

    def size_of(event: StoredEvent) -> int:
        message = messages[event.seq] = convert.stored_event_to_proto(event)
        return message.ByteSize()
    return messages, size_of


def build(settings: Settings) -> ServiceHost:
    store = open_store(settings.database_url, settings.data_dir,
                       TraitPolicy.parse(settings.trait_strategies, settings.trusted_sources))
    identity = IdentityClient(settings.identity_addr)
    membership = MembershipFollower(store, identity)
    membership.start()
    refresher = PeriodicRefresh(AudienceBook(store), settings.audience_refresh_seconds)
    refresher.start()

    def close() -> None:
        refresher.stop()
        membership.stop()
        identity.close()
        store.close()

    return ServiceHost(
        "profile",
        [Registration(profile_pb2_grpc.add_ProfileServiceServicer_to_server,
                      ProfileServicer(store, identity, membership, settings.erased_events,
                                       settings.default_region),
                      profile_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name),
         Registration(audience_pb2_grpc.add_AudienceServiceServicer_to_server,
                      AudienceServicer(store),
                      audience_pb2.DESCRIPTOR.services_by_name["AudienceService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds, on_stop=close)
