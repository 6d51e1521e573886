"""The identity service seen from the profile service: a gRPC adapter of IdentityResolver."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import grpc

from cdp.identity.v1 import identity_pb2, identity_pb2_grpc
from omnicdp import protoconv
from omnicdp.errors import FieldViolation, InvalidArgument, Unavailable
from omnicdp.runtime.channels import DEFAULT_DEADLINE, open_channel
from services.profile.model import Resolution


class GrpcIdentityResolver:
    def __init__(self, target: str, deadline: float = DEFAULT_DEADLINE) -> None:
        self._channel = open_channel(target)
        self._stub = identity_pb2_grpc.IdentityServiceStub(self._channel)
        self._deadline = deadline

    def resolve(self, records: Sequence[tuple[str, dict[str, str], datetime]]) -> list[Resolution]:
        request = identity_pb2.ResolveIdentitiesRequest(records=[
            identity_pb2.IdentityRecord(
                record_id=record_id, identifiers=protoconv.identifiers_from_dict(identifiers),
                observed_at=protoconv.timestamp_from_datetime(observed_at))
            for record_id, identifiers, observed_at in records
        ])
        try:
            response = self._stub.ResolveIdentities(request, timeout=self._deadline)
        except grpc.RpcError as error:
            raise Unavailable(f"identity service: {error.code().name}") from error
        return [
            Resolution(
                record_id=r.record_id, customer_id=r.customer_id or None,
                merged_customer_ids=tuple(r.merged_customer_ids),
                identifiers=protoconv.identifiers_to_dict(r.identifiers),
                violations=tuple(FieldViolation(v.field, v.description) for v in r.violations),
                warnings=tuple(FieldViolation(v.field, v.description) for v in r.warnings))
            for r in response.resolutions
        ]

    def lookup(self, id_type: str, value: str) -> str | None:
        type_value = protoconv.identifier_type_value(id_type)
        request = identity_pb2.LookupCustomerRequest(type=type_value, value=value)
        try:
            response = self._stub.LookupCustomer(request, timeout=self._deadline)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(error.details() or "invalid identifier",
                                      [FieldViolation("value", error.details() or "")]) from error
            raise Unavailable(f"identity service: {error.code().name}") from error
        return response.customer.customer_id

    def close(self) -> None:
        self._channel.close()
