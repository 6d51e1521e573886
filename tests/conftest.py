"""Shared fixtures: real gRPC servers on port 0 in-process, each test with its own data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from fastapi.testclient import TestClient

from omnicdp.api.attribution.v1 import attribution_pb2_grpc
from omnicdp.api.identity.v1 import identity_pb2_grpc
from omnicdp.api.profile.v1 import profile_pb2_grpc
from omnicdp.core import settings as config
from omnicdp.core.digests import sha256_hex
from omnicdp.core.server import ServiceHost
from omnicdp.services.attribution.server import build as build_attribution
from omnicdp.services.attribution.settings import Settings as AttributionSettings
from omnicdp.services.gateway.keys import ApiKeys
from omnicdp.services.gateway.routes import Backends, create_app
from omnicdp.services.identity.server import build as build_identity
from omnicdp.services.identity.settings import Settings as IdentitySettings
from omnicdp.services.profile.server import build as build_profile
from omnicdp.services.profile.settings import Settings as ProfileSettings
from tests.gateway_kit import READER, SLOW, WRITER
from tests.pg import temporary_database


@dataclass
class Services:
    identity: ServiceHost
    profile: ServiceHost
    attribution: ServiceHost
    channels: list[grpc.Channel]
    data_dir: Path  # the DuckDB files, when database_url is empty
    database_url: str = ""

    def address(self, host: ServiceHost) -> str:
        return f"127.0.0.1:{host.port}"

    def stub(self, host: ServiceHost, stub_class):
        channel = grpc.insecure_channel(self.address(host))
        self.channels.append(channel)
        return stub_class(channel)

    @property
    def profile_stub(self) -> profile_pb2_grpc.ProfileServiceStub:
        return self.stub(self.profile, profile_pb2_grpc.ProfileServiceStub)

    @property
    def identity_stub(self) -> identity_pb2_grpc.IdentityServiceStub:
        return self.stub(self.identity, identity_pb2_grpc.IdentityServiceStub)

    @property
    def attribution_stub(self) -> attribution_pb2_grpc.AttributionServiceStub:
        return self.stub(self.attribution, attribution_pb2_grpc.AttributionServiceStub)


@pytest.fixture
def services(request, tmp_path: Path) -> Iterator[Services]:
    """Identity, profile and attribution as real gRPC servers, wired to each other. The
    identity and profile stores are DuckDB, or PostgreSQL (a database of the test's own,
    one schema each) when a test parametrizes this fixture indirectly with "postgres"."""
    with ExitStack() as cleanup:
        database_url = ""
        if getattr(request, "param", "duckdb") == "postgres":
            database_url = cleanup.enter_context(temporary_database())
        yield from running_services(tmp_path, database_url)


def running_services(tmp_path: Path, database_url: str,
                     **profile_settings: object) -> Iterator[Services]:
    """The three services on ``tmp_path`` (DuckDB) or ``database_url`` (PostgreSQL); run
    again on the same arguments, a restart that finds the same data. ``profile_settings``
    override the profile service's settings."""
    identity = build_identity(config.load(
        IdentitySettings, environ={}, address="127.0.0.1:0", data_dir=tmp_path,
        database_url=database_url))
    identity.start()
    profile = build_profile(config.load(
        ProfileSettings, environ={}, address="127.0.0.1:0", data_dir=tmp_path,
        database_url=database_url, identity_addr=f"127.0.0.1:{identity.port}",
        **profile_settings))
    profile.start()
    attribution = build_attribution(config.load(
        AttributionSettings, environ={}, address="127.0.0.1:0",
        profile_addr=f"127.0.0.1:{profile.port}",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
    attribution.start()
    running = Services(identity, profile, attribution, [], tmp_path, database_url)
    yield running
    for channel in running.channels:
        channel.close()
    for host in (attribution, profile, identity):
        host.stop(grace=1)


@pytest.fixture
def client(services, tmp_path: Path) -> Iterator[TestClient]:
    """The gateway's app in front of the real services, with three keys (tests.gateway_kit):
    a writer, a reader, and a reader allowed two requests a minute."""
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump({"keys": [
        {"name": "pos-vendor", "sha256": sha256_hex(WRITER),
         "scopes": ["events:write", "profiles:read", "reports:read"]},
        {"name": "analyst", "key": READER, "scopes": ["profiles:read"]},
        {"name": "slow", "key": SLOW, "scopes": ["profiles:read"], "rate_limit_per_minute": 2},
    ]}))
    backends = Backends.connect(services.address(services.profile),
                                services.address(services.identity),
                                services.address(services.attribution), deadline=10)
    with TestClient(create_app(ApiKeys.load(keys_file), backends, max_body_bytes=64_000)) as c:
        yield c
    backends.close()
