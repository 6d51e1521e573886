"""How the other services call the identity service: typed calls with deadlines, failures
raised as the domain errors the identity service raised (``omnicdp.core.status``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from omnicdp.api.identity.v1 import identity_pb2, identity_pb2_grpc
from omnicdp.core import channels, protoconv
from omnicdp.core.errors import NotFound
from omnicdp.services.identity import convert
from omnicdp.services.identity.model import (
    Change,
    Erased,
    Explanation,
    IdentityRecord,
    LinkedCustomer,
    Resolution,
    ResolvedBatch,
    Unmerged,
)

__all__ = ["Change", "ChangeStream", "Erased", "Explanation", "IdentityClient",
           "IdentityRecord", "LinkedCustomer", "ResolvedBatch", "Resolution", "Unmerged"]

class IdentityClient(channels.ServiceClient):
    PEER = "identity"
    STUB = identity_pb2_grpc.IdentityServiceStub

    def resolve(self, records: Sequence[IdentityRecord]) -> list[Resolution]:
        """One resolution per record, in order (see ``ResolveIdentities``)."""
        return self.resolve_batch(records).resolutions

    def resolve_batch(self, records: Sequence[IdentityRecord]) -> ResolvedBatch:
        """The resolutions, and the change log position once they were committed."""
        request = identity_pb2.ResolveIdentitiesRequest(
            records=[convert.record_to_proto(r) for r in records])
        response = self._unary("ResolveIdentities", request)
        return ResolvedBatch([convert.resolution_from_proto(r) for r in response.resolutions],
                             response.change_seq)

    def changes(self, after_seq: int, page_size: int = 0) -> tuple[list[Change], int]:
        """A page of the change log after ``after_seq``, and the log's last number."""
        response = self._unary("ListChanges", identity_pb2.ListChangesRequest(
            after_seq=after_seq, page_size=page_size))
        return [convert.change_from_proto(c) for c in response.changes], response.last_seq

    def watch(self, after_seq: int) -> ChangeStream:
        """The changes after ``after_seq``, then each new one as it is committed. It has no
        deadline, being meant to stay open: ``cancel()`` it (from any thread) to end it."""
        return ChangeStream(self._open_stream(
            "WatchChanges", identity_pb2.WatchChangesRequest(after_seq=after_seq)))


    def lookup(self, id_type: str, value: str) -> str | None:
        """The customer holding a raw identifier (normalised as on ingestion), or None."""
        request = identity_pb2.LookupCustomerRequest(
            type=protoconv.identifier_type_value(id_type), value=value)
        try:
            response = self._unary("LookupCustomer", request)
        except NotFound:
            return None
        return response.customer.customer_id

    def unmerge(self, customer_id: str, record_ids: Sequence[str], actor: str,
                reason: str) -> Unmerged:
        response = self._unary("Unmerge", identity_pb2.UnmergeRequest(
            customer_id=customer_id, record_ids=record_ids, actor=actor, reason=reason))
        return Unmerged(response.kept_customer_id, response.new_customer_id,
                        tuple(response.moved_record_ids), response.change_seq)

    def explain(self, customer_id: str) -> Explanation:
        response = self._unary("ExplainCustomer",
                                identity_pb2.ExplainCustomerRequest(customer_id=customer_id))
        return convert.explanation_from_proto(response)

    def erase(self, customer_id: str, actor: str, reason: str) -> Erased:
        response = self._unary("EraseCustomer", identity_pb2.EraseCustomerRequest(
            customer_id=customer_id, actor=actor, reason=reason))
        return Erased(response.customer_id, response.records_erased, response.change_seq)

    def get_customer(self, customer_id: str) -> LinkedCustomer:
        request = identity_pb2.GetCustomerRequest(customer_id=customer_id)
        response = self._unary("GetCustomer", request)
        return convert.customer_from_proto(response.customer)


class ChangeStream:
    """An open ``WatchChanges`` call: iterate it for changes, cancel it to stop."""

    def __init__(self, call) -> None:  # noqa: ANN001 (a grpc call object)
        self._call = call

    def __iter__(self) -> Iterator[Change]:
        for message in channels.stream_call(self._call, IdentityClient.PEER):
            yield convert.change_from_proto(message.change)

    def cancel(self) -> None:
        self._call.cancel()
