"""Settings of the profile service (flags and ``CDP_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omnicdp.core.settings import setting

ERASED_EVENT_POLICIES = ("reject", "accept")
STRATEGY_NAMES = ("most_recent", "oldest", "most_frequent", "trusted_source")


@dataclass(frozen=True)
class Settings:
    address: str = setting("127.0.0.1:50052", "CDP_ADDRESS", "host:port to listen on")
    data_dir: Path = setting(Path(".cdp"), "CDP_DATA_DIR", "directory for embedded data")
    database_url: str = setting(
        "", "CDP_DATABASE_URL",
        "duckdb:///FILE (default DATA_DIR/profile.duckdb) or postgresql://USER@HOST/DB",
        secret=True)
    identity_addr: str = setting("127.0.0.1:50051", "CDP_IDENTITY_ADDR",
                                 "host:port of the identity service")
    default_region: str = setting(
        "RU", "CDP_DEFAULT_REGION",
        "region for phone numbers without a country code (as the identity service's: "
        "lookups normalise identifiers as ingestion did)")
    grace_seconds: float = setting(10.0, "CDP_GRACE_SECONDS",
                                   "seconds in-flight calls get on shutdown")
    trait_strategies: str = setting(
        "", "CDP_TRAIT_STRATEGIES",
        "how the golden record chooses each trait among the values seen: trait=strategy,... "
        "with strategy one of most_recent (the default), oldest, most_frequent, "
        "trusted_source; *=strategy sets the default, e.g. "
        "'date_of_birth=trusted_source,first_name=most_frequent'")
    trusted_sources: str = setting(
        "", "CDP_TRUSTED_SOURCES",
        "sources in order of trust for trusted_source traits, most trusted first, "
        "e.g. 'crm,pos,web'")

    erased_events: str = setting(
        "reject", "CDP_ERASED_EVENTS",
        "events carrying an identifier of an erased person: reject (the partner sees "
        "status rejected) or accept (acknowledged, neither stored nor built into a profile)")

    audience_refresh_seconds: float = setting(
        3600.0, "CDP_AUDIENCE_REFRESH_SECONDS",
        "how often every audience is evaluated again, so that memberships whose 'within N "
        "days' window has closed end (0: never; RefreshAudiences and `cdp audiences "
        "refresh` do it on demand)")

    def validate(self) -> None:
        if self.audience_refresh_seconds < 0:
            raise SystemExit("invalid --audience-refresh-seconds / "
                             "CDP_AUDIENCE_REFRESH_SECONDS: 0 (never) or more seconds")
        if self.erased_events not in ERASED_EVENT_POLICIES:
            raise SystemExit(f"invalid --erased-events / CDP_ERASED_EVENTS "
                             f"{self.erased_events!r}: one of "
                             f"{', '.join(ERASED_EVENT_POLICIES)}")
        # Parsed here (not with golden.TraitPolicy: settings stay light for `cdp --help`).
        for item in filter(None, (p.strip() for p in self.trait_strategies.split(","))):
            trait, sep, strategy = item.partition("=")
            if not sep or not trait.strip() or strategy.strip() not in STRATEGY_NAMES:
                raise SystemExit(
                    f"invalid --trait-strategies / CDP_TRAIT_STRATEGIES item {item!r}: expected "
                    f"trait=strategy with strategy one of {', '.join(STRATEGY_NAMES)}")
            if strategy.strip() == "trusted_source" and not self.trusted_sources.strip():
                raise SystemExit("the trusted_source strategy needs --trusted-sources / "
                                 "CDP_TRUSTED_SOURCES: the sources, most trusted first")
