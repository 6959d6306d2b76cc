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
