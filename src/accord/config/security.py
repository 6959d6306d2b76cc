"""How people sign in: the optional `security` block of accord.yaml (docs/projects.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from accord.config.matching import StrictModel
from accord.govern.permissions import Role

PersonRole = Literal["admin", "steward", "operator", "viewer"]


def _admins() -> list[PersonRole]:
    # without a `security` block, administrators, who can change who may do what
    return ["admin"]


class SecurityConfig(StrictModel):
    mfa_required: list[PersonRole] = Field(
        default_factory=_admins,
        description="the roles whose people must sign in with a second factor (TOTP): "
        "someone of such a role who has none is asked to set one up right after the "
        "password, before anything else; [] requires it of no one",
    )

    @field_validator("mfa_required")
    @classmethod
    def _once_each(cls, roles: list[PersonRole]) -> list[PersonRole]:
        return list(dict.fromkeys(roles))

    @property
    def mfa_roles(self) -> frozenset[Role]:
        return frozenset(Role(role) for role in self.mfa_required)
