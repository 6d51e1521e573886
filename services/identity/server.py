"""gRPC servicer of the identity service: protobuf in, resolver call, protobuf out."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cdp.common.v1 import common_pb2
from cdp.identity.v1 import identity_pb2, identity_pb2_grpc
from omnicdp import protoconv
from omnicdp.errors import FieldViolation, InvalidArgument, NotFound
from omnicdp.runtime import config
from omnicdp.runtime.server import Registration, ServiceHost
from omnicdp.runtime.telemetry import configure_logging, setup_tracing
from omnicdp.vocabulary import IDENTIFIER_TYPES
from services.identity.resolver import DeterministicResolver, IdentityRecord, Resolution
from services.identity.store import IdentityStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentitySettings:
    address: str = config.setting("127.0.0.1:50051", "CDP_ADDRESS", "host:port to listen on")
    data_dir: Path = config.setting(Path(".cdp"), "CDP_DATA_DIR", "directory for embedded data")
    database_url: str = config.setting(
        "", "CDP_DATABASE_URL", "duckdb:///FILE (default DATA_DIR/identity.duckdb)", secret=True)
    default_region: str = config.setting("RU", "CDP_DEFAULT_REGION",
                                         "region for phone numbers without a country code")
    grace_seconds: float = config.setting(10.0, "CDP_GRACE_SECONDS",
                                          "seconds in-flight calls get on shutdown")

    def database_path(self) -> str:
        url = self.database_url or f"duckdb:///{self.data_dir / 'identity.duckdb'}"
        if not url.startswith("duckdb://"):
            raise SystemExit(f"identity: unsupported database URL {url.split(':', 1)[0]!r}; "
                             "use duckdb:///PATH")
        return url.removeprefix("duckdb://")


def _resolution_to_proto(resolution: Resolution,
                         merged_customer_ids: list[str]) -> identity_pb2.Resolution:
    return identity_pb2.Resolution(
        record_id=resolution.record_id,
        customer_id=resolution.customer_id or "",
        created=resolution.created,
        merged_customer_ids=merged_customer_ids,
        matched_on=[protoconv.identifier_type_value(t) for t in resolution.matched_on if t],
        identifiers=protoconv.identifiers_from_dict(resolution.identifiers),
        violations=[common_pb2.FieldViolation(field=v.field, description=v.description)
                    for v in resolution.violations],
        warnings=[common_pb2.FieldViolation(field=v.field, description=v.description)
                  for v in resolution.warnings],
    )


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, store: IdentityStore, resolver: DeterministicResolver) -> None:
        self._store = store
        self._resolver = resolver

    def ResolveIdentities(self, request, context):  # noqa: N802 (generated name)
        records = [IdentityRecord(
            record_id=r.record_id,
            identifiers=protoconv.identifiers_to_dict(r.identifiers),
            observed_at=protoconv.timestamp_to_datetime(r.observed_at) or datetime.now(UTC))
            for r in request.records]
        resolutions = self._resolver.resolve(records)
        return identity_pb2.ResolveIdentitiesResponse(resolutions=[
            _resolution_to_proto(r, self._store.merged_customer_ids(r.customer_id)
                                 if r.customer_id else [])
            for r in resolutions])

    def _customer(self, customer_id: str) -> identity_pb2.Customer:
        identifiers = self._store.customer_identifiers(customer_id)
        return identity_pb2.Customer(
            customer_id=customer_id,
            identifiers=[common_pb2.Identifier(type=protoconv.identifier_type_value(t), value=v)
                         for t in IDENTIFIER_TYPES for v in identifiers.get(t, [])],
            merged_customer_ids=self._store.merged_customer_ids(customer_id))

    def LookupCustomer(self, request, context):  # noqa: N802
        id_type = protoconv.identifier_type_name(request.type)
        if id_type not in IDENTIFIER_TYPES:
            choices = ", ".join(IDENTIFIER_TYPES)
            raise InvalidArgument("identifier type is required",
                                  [FieldViolation("type", f"one of {choices}")])
        customer_id = self._resolver.lookup(id_type, request.value)
        if customer_id is None:
            raise NotFound(f"no customer has this {id_type}", reason="CUSTOMER_NOT_FOUND")
        return identity_pb2.LookupCustomerResponse(customer=self._customer(customer_id))

    def GetCustomer(self, request, context):  # noqa: N802
        customer_id = self._store.resolve_redirects(request.customer_id)
        if customer_id is None:
            raise NotFound(f"no customer {request.customer_id}", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer_id": request.customer_id})
        return identity_pb2.GetCustomerResponse(customer=self._customer(customer_id))


def build(settings: IdentitySettings) -> ServiceHost:
    store = IdentityStore(settings.database_path())
    resolver = DeterministicResolver(store, default_region=settings.default_region)
    return ServiceHost(
        "identity",
        [Registration(identity_pb2_grpc.add_IdentityServiceServicer_to_server,
                      IdentityServicer(store, resolver),
                      identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds, on_stop=store.close)


def main(args: argparse.Namespace) -> int:
    configure_logging("cdp-identity")
    setup_tracing("cdp-identity")
    settings = config.load(IdentitySettings, args)
    log.info("starting identity service: %s", config.describe(settings))
    build(settings).run_until_signal()
    return 0
