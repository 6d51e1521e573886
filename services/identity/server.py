"""gRPC servicer of the identity service: protobuf in, resolver call, protobuf out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from omnicdp.api.identity.v1 import identity_pb2, identity_pb2_grpc
from omnicdp.core import protoconv
from omnicdp.core.errors import FieldViolation, InvalidArgument, NotFound
from omnicdp.core.server import Registration, ServiceHost
from omnicdp.core.vocabulary import IDENTIFIER_TYPES
from omnicdp.services.identity import convert
from omnicdp.services.identity.model import LinkedCustomer
from omnicdp.services.identity.normalize import NO_BLOCKED_VALUES, BlockedValues
from omnicdp.services.identity.resolver import DeterministicResolver
from omnicdp.services.identity.settings import Settings
from omnicdp.services.identity.store import IdentityStore, open_store

MAX_CHANGES_PAGE = 10_000
DEFAULT_CHANGES_PAGE = 1000
# How often a watch looks for changes committed by other replicas of this service.
WATCH_POLL_SECONDS = 1.0


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, store: IdentityStore, resolver: DeterministicResolver) -> None:
        self._store = store
        self._resolver = resolver
        self._committed = threading.Condition()

    def ResolveIdentities(self, request, context):  # noqa: N802 (generated name)
        batch = self._resolver.resolve_batch([convert.record_from_proto(r)
                                              for r in request.records])
        self._notify()
        # Every id ever merged into the customer, not only this record's merges (see proto).
        merged = self._store.merged_customer_ids_of(
            sorted({r.customer_id for r in batch.resolutions if r.customer_id}))
        return identity_pb2.ResolveIdentitiesResponse(resolutions=[
            convert.resolution_to_proto(replace(r, merged_customer_ids=tuple(
                merged.get(r.customer_id, ()) if r.customer_id else ())))
            for r in batch.resolutions], change_seq=batch.change_seq)

    def _customer(self, customer_id: str) -> identity_pb2.Customer:
        return convert.customer_to_proto(LinkedCustomer(
            customer_id, self._store.customer_identifiers(customer_id),
            tuple(self._store.merged_customer_ids(customer_id))))

    def LookupCustomer(self, request, context):  # noqa: N802
        id_type = protoconv.identifier_type_name(request.type)
        if id_type not in IDENTIFIER_TYPES:
            raise InvalidArgument("identifier type is required",
                                  [FieldViolation("type", f"one of {', '.join(IDENTIFIER_TYPES)}")])
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

    def ListChanges(self, request, context):  # noqa: N802
        if request.after_seq < 0:
            raise InvalidArgument("after_seq must not be negative",
                                  [FieldViolation("after_seq", "0 or a sequence number")])
        if request.page_size < 0:
            raise InvalidArgument("page_size must not be negative",
                                  [FieldViolation("page_size", f"0 to {MAX_CHANGES_PAGE}")])
        size = min(request.page_size or DEFAULT_CHANGES_PAGE, MAX_CHANGES_PAGE)
        last_seq = self._store.last_change_seq()
        changes = self._store.changes(request.after_seq, size)
        return identity_pb2.ListChangesResponse(
            changes=[convert.change_to_proto(c) for c in changes], last_seq=last_seq)

    def Unmerge(self, request, context):  # noqa: N802
        if not request.record_ids:
            raise InvalidArgument("record_ids is required", [
                FieldViolation("record_ids", "the records of one part of the customer")])
        if not request.actor or not request.reason:
            raise InvalidArgument("actor and reason are required: they stay on the revoked "
                                  "links", [FieldViolation(f, "required")
                                            for f in ("actor", "reason")
                                            if not getattr(request, f)])
        result = self._store.unmerge(request.customer_id, list(request.record_ids),
                                     request.actor, request.reason)
        self._notify()
        return identity_pb2.UnmergeResponse(
            kept_customer_id=result.kept_customer_id, new_customer_id=result.new_customer_id,
            moved_record_ids=result.moved_record_ids, change_seq=result.change_seq)

    def ExplainCustomer(self, request, context):  # noqa: N802
        customer_id = self._store.resolve_redirects(request.customer_id)
        if customer_id is None:
            raise NotFound(f"no customer {request.customer_id}", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer_id": request.customer_id})
        records = self._store.records_of(customer_id)
        links = self._store.links_of([r.record_id for r in records])
        return convert.explanation_to_proto(customer_id, records, links,
                                            self._store.merged_customer_ids(customer_id))

    def EraseCustomer(self, request, context):  # noqa: N802
        if not request.actor or not request.reason:
            raise InvalidArgument("actor and reason are required for the audit log", [
                FieldViolation(f, "required") for f in ("actor", "reason")
                if not getattr(request, f)])
        result = self._store.erase(request.customer_id, request.actor, request.reason)
        self._notify()
        return identity_pb2.EraseCustomerResponse(
            customer_id=result.customer_id, records_erased=result.records_erased,
            change_seq=result.change_seq)

    def _notify(self) -> None:
        with self._committed:
            self._committed.notify_all()

    def WatchChanges(self, request, context) -> Iterator:  # noqa: N802
        cursor = request.after_seq
        while context.is_active():
            changes = self._store.changes(cursor, DEFAULT_CHANGES_PAGE)
            for change in changes:
                yield identity_pb2.WatchChangesResponse(change=convert.change_to_proto(change))
                cursor = change.seq
            if not changes:
                with self._committed:
                    self._committed.wait(WATCH_POLL_SECONDS)


def build(settings: Settings) -> ServiceHost:
    blocked = NO_BLOCKED_VALUES
    if settings.blocked_values:
        try:
            blocked = BlockedValues.parse(Path(settings.blocked_values).read_text("utf-8"),
                                          settings.blocked_values)
        except (OSError, UnicodeError, ValueError) as error:
            raise SystemExit(f"identity: --blocked-values / CDP_BLOCKED_VALUES: {error}") from None
    store = open_store(settings.database_url, settings.data_dir, settings.cache_customers)
    resolver = DeterministicResolver(store, default_region=settings.default_region,
                                     placeholder_threshold=settings.placeholder_threshold,
                                     blocked=blocked)
    return ServiceHost(
        "identity",
        [Registration(identity_pb2_grpc.add_IdentityServiceServicer_to_server,
                      IdentityServicer(store, resolver),
                      identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds, on_stop=store.close)
