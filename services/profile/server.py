"""gRPC servicer of the profile service: protobuf in, domain call, protobuf out."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from cdp.common.v1 import common_pb2
from cdp.profile.v1 import profile_pb2, profile_pb2_grpc
from omnicdp import protoconv
from omnicdp.runtime import config
from omnicdp.runtime.server import Registration, ServiceHost
from omnicdp.runtime.telemetry import configure_logging, setup_tracing
from services.profile.identity_client import GrpcIdentityResolver
from services.profile.ingest import IdentityResolver, Ingestor
from services.profile.model import EventIn, IngestResult, Profile, StoredEvent
from services.profile.profiles import ProfileReader
from services.profile.store import open_store
from services.profile.store.base import ProfileStore

log = logging.getLogger(__name__)

_STATUS = {
    "accepted": profile_pb2.INGEST_STATUS_ACCEPTED,
    "duplicate": profile_pb2.INGEST_STATUS_DUPLICATE,
    "rejected": profile_pb2.INGEST_STATUS_REJECTED,
}


@dataclass(frozen=True)
class ProfileSettings:
    address: str = config.setting("127.0.0.1:50052", "CDP_ADDRESS", "host:port to listen on")
    data_dir: Path = config.setting(Path(".cdp"), "CDP_DATA_DIR", "directory for embedded data")
    database_url: str = config.setting(
        "", "CDP_DATABASE_URL",
        "duckdb:///FILE (default DATA_DIR/profile.duckdb) or postgresql://USER@HOST/DB",
        secret=True)
    identity_addr: str = config.setting("127.0.0.1:50051", "CDP_IDENTITY_ADDR",
                                        "host:port of the identity service")
    grace_seconds: float = config.setting(10.0, "CDP_GRACE_SECONDS",
                                          "seconds in-flight calls get on shutdown")


def event_from_proto(message: common_pb2.Event) -> EventIn:
    return EventIn(
        message_id=message.message_id,
        type=protoconv.event_type_name(message.type),
        channel=protoconv.channel_name(message.channel),
        event=message.event,
        source=message.source,
        timestamp=protoconv.timestamp_to_datetime(message.timestamp),
        identifiers=protoconv.identifiers_to_dict(message.identifiers),
        traits=protoconv.struct_to_dict(message.traits),
        properties=protoconv.struct_to_dict(message.properties),
    )


def event_to_proto(event: StoredEvent) -> common_pb2.Event:
    return common_pb2.Event(
        message_id=event.message_id,
        type=protoconv.event_type_value(event.type),
        event=event.event,
        channel=protoconv.channel_value(event.channel),
        source=event.source,
        timestamp=protoconv.timestamp_from_datetime(event.timestamp),
        identifiers=protoconv.identifiers_from_dict(event.identifiers),
        traits=protoconv.struct_from_dict(event.traits),
        properties=protoconv.struct_from_dict(event.properties),
        customer_id=event.customer_id,
        received_at=protoconv.timestamp_from_datetime(event.received_at),
    )


def profile_to_proto(profile: Profile) -> profile_pb2.Profile:
    return profile_pb2.Profile(
        customer_id=profile.customer_id,
        identifiers=[common_pb2.Identifier(type=protoconv.identifier_type_value(t), value=v)
                     for t, v in profile.identifiers],
        traits=protoconv.struct_from_dict(profile.traits),
        consents=[profile_pb2.Consent(
            purpose=c.purpose, channel=protoconv.channel_value(c.channel), granted=c.granted,
            updated_at=protoconv.timestamp_from_datetime(c.updated_at), source=c.source)
            for c in profile.consents],
        first_seen=protoconv.timestamp_from_datetime(profile.first_seen),
        last_seen=protoconv.timestamp_from_datetime(profile.last_seen),
        scores=profile.scores,
        event_count=profile.event_count,
        merged_customer_ids=profile.merged_customer_ids,
    )


def _result_to_proto(result: IngestResult) -> profile_pb2.EventResult:
    return profile_pb2.EventResult(
        message_id=result.message_id, status=_STATUS[result.status],
        customer_id=result.customer_id,
        violations=[common_pb2.FieldViolation(field=v.field, description=v.description)
                    for v in result.violations],
        warnings=[common_pb2.FieldViolation(field=v.field, description=v.description)
                  for v in result.warnings])


class ProfileServicer(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(self, store: ProfileStore, identity: IdentityResolver) -> None:
        self._ingestor = Ingestor(store, identity)
        self._reader = ProfileReader(store, identity)

    def IngestEvents(self, request, context):  # noqa: N802 (generated name)
        results = self._ingestor.ingest([event_from_proto(e) for e in request.events])
        return profile_pb2.IngestEventsResponse(results=[_result_to_proto(r) for r in results])

    def GetProfile(self, request, context):  # noqa: N802
        return profile_pb2.GetProfileResponse(
            profile=profile_to_proto(self._reader.get(request.customer_id)))

    def LookupProfile(self, request, context):  # noqa: N802
        profile = self._reader.lookup(protoconv.identifier_type_name(request.type), request.value)
        return profile_pb2.LookupProfileResponse(profile=profile_to_proto(profile))

    def ListProfileEvents(self, request, context):  # noqa: N802
        events, token = self._reader.journey(request.customer_id, request.page_size,
                                             request.page_token)
        return profile_pb2.ListProfileEventsResponse(
            events=[event_to_proto(e) for e in events], next_page_token=token)

    def ListEvents(self, request, context):  # noqa: N802
        events, token = self._reader.all_events(request.page_size, request.page_token)
        return profile_pb2.ListEventsResponse(
            events=[event_to_proto(e) for e in events], next_page_token=token)


def build(settings: ProfileSettings) -> ServiceHost:
    store = open_store(settings.database_url, settings.data_dir)
    identity = GrpcIdentityResolver(settings.identity_addr)

    def close() -> None:
        identity.close()
        store.close()

    return ServiceHost(
        "profile",
        [Registration(profile_pb2_grpc.add_ProfileServiceServicer_to_server,
                      ProfileServicer(store, identity),
                      profile_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds, on_stop=close)


def main(args: argparse.Namespace) -> int:
    configure_logging("cdp-profile")
    setup_tracing("cdp-profile")
    settings = config.load(ProfileSettings, args)
    log.info("starting profile service: %s", config.describe(settings))
    build(settings).run_until_signal()
    return 0
