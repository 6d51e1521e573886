"""Domain errors shared by every service.

Domain code raises these. ``omnicdp.core.status`` maps each to a gRPC status code with
google.rpc error details and back again, so a caller on the far side of any number of hops
catches the same class with the same ``reason``; the gateway maps them to problem+json.
Nothing here imports grpc, so domain modules stay usable without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its dotted path (``identifiers.email``) and what would be right."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


@dataclass
class DomainError(Exception):
    """Base of errors a caller can act on. ``reason`` is UPPER_SNAKE, stable for machines."""

    message: str
    reason: str = "INTERNAL"
    violations: list[FieldViolation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    @classmethod
    def rebuild(cls, message: str, reason: str, violations: list[FieldViolation] | None = None,
                metadata: dict[str, str] | None = None) -> DomainError:
        """The error as another process raised it, rebuilt on this side of a hop."""
        error = cls.__new__(cls)
        DomainError.__init__(error, message, reason, list(violations or []), dict(metadata or {}))
        return error


class InvalidArgument(DomainError):
    """The request itself is wrong; retrying it unchanged fails again."""

    def __init__(self, message: str, violations: list[FieldViolation] | None = None,
                 reason: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message, reason, list(violations or []))


class NotFound(DomainError):
    def __init__(self, message: str, reason: str = "NOT_FOUND",
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, reason, [], dict(metadata or {}))


class FailedPrecondition(DomainError):
    def __init__(self, message: str, reason: str = "FAILED_PRECONDITION") -> None:
        super().__init__(message, reason)


class ResourceExhausted(DomainError):
    """A quota or limit was reached; the caller may retry later."""

    def __init__(self, message: str, reason: str = "RESOURCE_EXHAUSTED",
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, reason, [], dict(metadata or {}))


class DeadlineExceeded(DomainError):
    """The work did not finish before the caller's deadline."""

    def __init__(self, message: str, reason: str = "DEADLINE_EXCEEDED") -> None:
        super().__init__(message, reason)


class Unavailable(DomainError):
    """A dependency is down; the caller may retry."""

    def __init__(self, message: str, reason: str = "UNAVAILABLE") -> None:
        super().__init__(message, reason)


class Internal(DomainError):
    """Something failed that the caller cannot fix; the message says no more than that."""

    def __init__(self, message: str = "internal error", reason: str = "INTERNAL",
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, reason, [], dict(metadata or {}))
