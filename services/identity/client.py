"""How the other services call the identity service: typed calls with deadlines, failures
raised as the domain errors the identity service raised (``omnicdp.core.status``)."""

from __future__ import annotations

from collections.abc import Sequence

from omnicdp.api.identity.v1 import identity_pb2, identity_pb2_grpc
from omnicdp.core import channels, protoconv
from omnicdp.core.errors import NotFound
from omnicdp.services.identity import convert
from omnicdp.services.identity.model import IdentityRecord, LinkedCustomer, Resolution

__all__ = ["IdentityClient", "IdentityRecord", "LinkedCustomer", "Resolution"]

class IdentityClient(channels.ServiceClient):
    PEER = "identity"
    STUB = identity_pb2_grpc.IdentityServiceStub

    def resolve(self, records: Sequence[IdentityRecord]) -> list[Resolution]:
        """One resolution per record, in order (see ``ResolveIdentities``)."""
        request = identity_pb2.ResolveIdentitiesRequest(
            records=[convert.record_to_proto(r) for r in records])
        response = self._unary("ResolveIdentities", request)
        return [convert.resolution_from_proto(r) for r in response.resolutions]

    def lookup(self, id_type: str, value: str) -> str | None:
        """The customer holding a raw identifier (normalised as on ingestion), or None."""
        request = identity_pb2.LookupCustomerRequest(
            type=protoconv.identifier_type_value(id_type), value=value)
        try:
            response = self._unary("LookupCustomer", request)
        except NotFound:
            return None
        return response.customer.customer_id

    def get_customer(self, customer_id: str) -> LinkedCustomer:
        request = identity_pb2.GetCustomerRequest(customer_id=customer_id)
        response = self._unary("GetCustomer", request)
        return convert.customer_from_proto(response.customer)
