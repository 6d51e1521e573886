"""The gateway answers as its OpenAPI document says, fuzzed with schemathesis in front of the
real services: once with a key holding every scope, once with none. No input gets a 5xx;
every status, content type, body and declared header is the document's, and a method a
path does not have is 405 with ``Allow``.

Schemathesis runs here through its engine (what its CLI runs: examples, coverage and
fuzzing phases) rather than its pytest plugin, whose fixture-based loader does not work with
pytest 9.2 (it sets ``Function._nodeid``, which pytest no longer has)."""

from __future__ import annotations

import time

import pytest
import schemathesis
from schemathesis.engine import Status, events

from omnicdp.services.gateway.keys import ApiKeys
from omnicdp.services.gateway.routes import Backends, create_app
from tests.gateway_kit import WRITER, auth, write_keys

# Examples per operation in each of the generated phases (positive and negative inputs).
MAX_EXAMPLES = 50
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance",
          "unsupported_method")


def _config(headers: dict[str, str]) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": 8,
        "headers": headers,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    })


def _failures(scenario: events.ScenarioFinished) -> list[str]:
    return [f"{scenario.label} [{check.name}] {check.failure_info.failure.title}: "
            f"{check.failure_info.failure.message}\n  {check.failure_info.code_sample}"
            for checks in scenario.recorder.checks.values() for check in checks
            if check.status != Status.SUCCESS and check.failure_info is not None]


@pytest.mark.parametrize("key", ["all-scopes key", "no key"])
def test_gateway_answers_as_its_openapi_document_says(services, tmp_path, key) -> None:
    backends = Backends.connect(services.address(services.profile),
                                services.address(services.identity),
                                services.address(services.attribution), deadline=10)
    app = create_app(ApiKeys.load(write_keys(tmp_path / "keys.yaml")), backends,
                     max_body_bytes=64_000)
    headers = auth(WRITER) if key == "all-scopes key" else {}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(headers))
    started = time.monotonic()
    failures, requests, statuses = [], 0, set()
    try:
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                failures += _failures(event)
                for interaction in event.recorder.interactions.values():
                    requests += 1
                    statuses.add(interaction.response.status_code if interaction.response
                                 else None)
            elif isinstance(event, events.NonFatalError | events.FatalError):
                failures.append(f"error: {event!r}")
    finally:
        backends.close()
    print(f"\nfuzzing with {key}: {requests} requests in {time.monotonic() - started:.1f} s, "
          f"statuses {sorted(statuses, key=str)}")
    assert not failures, "\n".join(dict.fromkeys(failures))
    assert requests > 100
