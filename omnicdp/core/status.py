"""Domain errors and gRPC statuses: one table, both ways.

Going out, a servicer's :class:`~omnicdp.core.errors.DomainError` becomes a
``google.rpc.Status`` with the table's code, one ``ErrorInfo`` (its ``reason`` and metadata)
and, for a bad request, a ``BadRequest`` naming the fields. Coming back, a client turns the
status into the same class with the same message, reason, violations and metadata, so
INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION and DEADLINE_EXCEEDED mean the same thing
after every hop. Only UNAVAILABLE is retried (by the channel's retry policy), and a service
that answers UNAVAILABLE because its own dependency is down adds retry pushback, so retries
do not multiply along the chain.

A status without our ``ErrorInfo`` comes from the transport or a foreign server: its
details (internal addresses, ports, library messages) are logged, never passed on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from omnicdp.core import errors

log = logging.getLogger(__name__)

ERROR_DOMAIN = "omnicdp.io"

#: The one table. A code missing here arrives as :class:`errors.Internal`.
CODES: tuple[tuple[type[errors.DomainError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Internal, grpc.StatusCode.INTERNAL),
)
_CLASS_OF = {code: kind for kind, code in CODES}

#: What a caller is told when a status carries no domain error of ours.
_TRANSPORT_MESSAGES = {
    grpc.StatusCode.UNAVAILABLE: "the {peer} service is unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the {peer} service did not answer before the deadline",
    grpc.StatusCode.CANCELLED: "the call to the {peer} service was cancelled",
}


def code_for(error: errors.DomainError) -> grpc.StatusCode:
    return next((code for kind, code in CODES if isinstance(error, kind)),
                grpc.StatusCode.INTERNAL)


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status_proto(error: errors.DomainError) -> status_pb2.Status:
    """A google.rpc.Status with one ErrorInfo and, for bad requests, the field violations."""
    details = [_pack(error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata))]
    if error.violations:
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations])))
    return status_pb2.Status(code=getattr(code_pb2, code_for(error).name),
                             message=error.message, details=details)


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


def to_rpc_status(error: errors.DomainError) -> grpc.Status:
    """The status a servicer aborts with for a domain error."""
    status = rpc_status.to_status(to_status_proto(error))
    metadata = tuple(status.trailing_metadata)
    if isinstance(error, errors.Unavailable):
        # Our own dependency is down and our channel already retried it: pushback tells the
        # caller's retry policy not to multiply the attempts (gRPC retry design, A6).
        metadata += (("grpc-retry-pushback-ms", "-1"),)
    return _Status(status.code, status.details, metadata)


def from_rpc_error(error: grpc.RpcError, peer: str) -> errors.DomainError:
    """The domain error a failed call to the ``peer`` service stands for."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    info, violations = _details(error)
    if info is None or info.domain != ERROR_DOMAIN:
        # Not one of ours: say which service failed and how, keep the rest for the log.
        log.warning("call to %s failed: %s %s", peer, code.name,
                    error.details() if callable(getattr(error, "details", None)) else "")
        template = _TRANSPORT_MESSAGES.get(code, "the {peer} service failed ({code})")
        message = template.format(peer=peer, code=code.name)
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            # The transport's message size limit, not a quota a caller could wait out.
            return errors.Internal(f"the {peer} service's answer exceeded the message limit",
                                   reason="MESSAGE_TOO_LARGE")
        return _CLASS_OF.get(code, errors.Internal).rebuild(message, code.name)
    return _CLASS_OF.get(code, errors.Internal).rebuild(
        error.details() or info.reason, info.reason, violations, dict(info.metadata))


def _details(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo | None,
                                            list[errors.FieldViolation]]:
    try:
        rich = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    except ValueError:  # a status whose details disagree with its code
        rich = None
    info = None
    violations: list[errors.FieldViolation] = []
    for detail in rich.details if rich else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [errors.FieldViolation(v.field, v.description)
                           for v in bad.field_violations]
    return info, violations
