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
    LinkExplanation,
    Resolution,
    ResolvedBatch,
    Reviewed,
    ReviewItem,
    Unmerged,
)

__all__ = ["Change", "ChangeStream", "Erased", "Explanation", "IdentityClient",
           "IdentityRecord", "LinkExplanation", "LinkedCustomer", "ResolvedBatch", "Resolution",
           "ReviewItem", "Reviewed", "Unmerged"]

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

    def reload_model(self) -> tuple[str, str]:
        """Serve the champion model again; (the version now serving, the one before)."""
        response = self._unary("ReloadModel", identity_pb2.ReloadModelRequest())
        return response.model_version, response.previous_version

    def explain_link(self, record_a: str, record_b: str) -> LinkExplanation:
        response = self._unary("ExplainLink", identity_pb2.ExplainLinkRequest(
            record_a=record_a, record_b=record_b))
        return LinkExplanation(
            response.model_version, response.prior_weight,
            tuple((w.comparison, w.level, w.match_weight) for w in response.weights),
            response.match_weight, response.match_probability, response.threshold,
            response.same_customer, tuple(convert.explanation_from_proto(
                identity_pb2.ExplainCustomerResponse(links=response.links)).links))

    def review_items(self, min_probability: float = 0.0, max_probability: float = 0.0,
                     page_size: int = 0, page_token: str = "") -> tuple[list[ReviewItem], str]:
        """A page of links and near misses to review, and the next page's token."""
        response = self._unary("ListReviewItems", identity_pb2.ListReviewItemsRequest(
            min_probability=min_probability, max_probability=max_probability,
            page_size=page_size, page_token=page_token))
        return ([convert.review_item_from_proto(i) for i in response.items],
                response.next_page_token)

    def review(self, record_a: str, record_b: str, accept: bool, actor: str,
               reason: str) -> Reviewed:
        response = self._unary("ReviewLink", identity_pb2.ReviewLinkRequest(
            record_a=record_a, record_b=record_b, actor=actor, reason=reason,
            decision=identity_pb2.REVIEW_DECISION_ACCEPT if accept
            else identity_pb2.REVIEW_DECISION_REJECT))
        return Reviewed(response.customer_a, response.customer_b, response.change_seq)

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
