"""gRPC servicer of the identity service: protobuf in, resolver call, protobuf out."""

from __future__ import annotations

from dataclasses import replace

from omnicdp.api.identity.v1 import identity_pb2, identity_pb2_grpc
from omnicdp.core import protoconv
from omnicdp.core.errors import FieldViolation, InvalidArgument, NotFound
from omnicdp.core.server import Registration, ServiceHost
from omnicdp.core.vocabulary import IDENTIFIER_TYPES
from omnicdp.services.identity import convert
from omnicdp.services.identity.model import LinkedCustomer
from omnicdp.services.identity.resolver import DeterministicResolver
from omnicdp.services.identity.settings import Settings
from omnicdp.services.identity.store import IdentityStore, open_store


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, store: IdentityStore, resolver: DeterministicResolver) -> None:
        self._store = store
        self._resolver = resolver

    def ResolveIdentities(self, request, context):  # noqa: N802 (generated name)
        resolutions = self._resolver.resolve([convert.record_from_proto(r)
                                              for r in request.records])
        # Every id ever merged into the customer, not only this record's merges (see proto).
        return identity_pb2.ResolveIdentitiesResponse(resolutions=[
            convert.resolution_to_proto(replace(r, merged_customer_ids=tuple(
                self._store.merged_customer_ids(r.customer_id) if r.customer_id else ())))
            for r in resolutions])

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


def build(settings: Settings) -> ServiceHost:
    store = open_store(settings.database_url, settings.data_dir)
    resolver = DeterministicResolver(store, default_region=settings.default_region)
    return ServiceHost(
        "identity",
        [Registration(identity_pb2_grpc.add_IdentityServiceServicer_to_server,
                      IdentityServicer(store, resolver),
                      identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds, on_stop=store.close)
