"""Settings of the attribution service (flags and ``CDP_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass

from omnicdp.core.settings import setting


@dataclass(frozen=True)
class Settings:
    address: str = setting("127.0.0.1:50053", "CDP_ADDRESS", "host:port to listen on")
    profile_addr: str = setting("127.0.0.1:50052", "CDP_PROFILE_ADDR",
                                "host:port of the profile service")
    grace_seconds: float = setting(10.0, "CDP_GRACE_SECONDS",
                                   "seconds in-flight calls get on shutdown")
    tracking_uri: str = setting(
        "", "CDP_MLFLOW_TRACKING_URI",
        "MLflow tracking URI where reports asked to be logged go (experiment "
        "cdp-attribution); empty: logging is refused", secret=True)
