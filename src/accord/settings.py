"""Settings from the environment, typed, in one place (ACCORD_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", extra="ignore")

    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; unset means a SQLite file in the project's .accord/",
    )
    secure_cookies: bool = Field(
        False, description="mark session cookies Secure (set it when served over HTTPS)"
    )
    max_backlog: int = Field(
        200_000,
        ge=0,
        description="records waiting to be matched past which the push API answers 503 "
        "with Retry-After (0: no bound)",
    )
    rate_limit: str = Field(
        "100/second",
        description='requests per API key to the push API, e.g. "100/second;2000/minute"; '
        '"off" for none',
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="where rate limit counts are kept: memory:// (per process) or "
        "redis://127.0.0.1:6379 (shared by every process)",
    )
    rate_limit_namespace: str = Field(
        "accord",
        description="separates the rate limit counts of deployments sharing one Redis",
    )
    sign_in_limit: str = Field(
        "5/minute;20/hour",
        description="failed sign-in attempts (passwords and codes) per username before "
        'further attempts are refused for a while, e.g. "5/minute;20/hour"; "off" for none',
    )
    sign_in_client_limit: str = Field(
        "20/minute;100/hour",
        description="failed sign-in attempts per client address, whatever the username",
    )
    bus_url: str | None = Field(
        None,
        description="NATS server(s) with JetStream for the scale-out mode, e.g. "
        "nats://127.0.0.1:4222 (commas between several): golden changes travel from "
        "resolution to delivery through it (docs/scale-out.md); unset: through the store",
    )
    bus_partitions: int = Field(
        16,
        ge=1,
        le=1024,
        description="subjects the bus spreads customers' changes over, by golden id",
    )
    workers: int = Field(
        1, ge=0, le=16, description="matching workers `accord serve` runs in its own process"
    )
    web_processes: int = Field(
        1,
        ge=1,
        le=32,
        description="processes `accord serve` answers HTTP requests with; more than one "
        "uses more cores for the push API (each keeps its own in-memory rate limits: "
        "use Redis to share them)",
    )
    resolve_workers: int | None = Field(
        None,
        ge=0,
        le=1,
        description="processes beside a full resolve that read its records while it "
        "fetches them, work out the match index's keys while it matches and build golden "
        "records while it writes them (0: the resolving process does all three); unset: "
        "one from 200,000 records (reading), 100,000 records (keys) and 20,000 customers "
        "(golden records) on",
    )
    load_workers: int | None = Field(
        None,
        ge=0,
        le=8,
        description="processes that map a file's records while another stores them "
        "(0: the storing process maps); unset: one per CPU core but one (at least one) for "
        "files of 16 MB or more",
    )
