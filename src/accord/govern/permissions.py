"""Who may do what: permissions are named constants, roles are sets of them, and one
function decides."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from enum import StrEnum

from accord.errors import NotAllowed


class Permission(StrEnum):
    CUSTOMERS_READ = "customers:read"
    RECORDS_READ = "records:read"
    RECORDS_WRITE = "records:write"
    AUDIT_READ = "audit:read"
    MATCHES_READ = "matches:read"
    MATCHES_DECIDE = "matches:decide"
    # pin a field's golden value over survivorship (and clear the pin)
    GOLDEN_OVERRIDE = "golden:override"
    USERS_MANAGE = "users:manage"
    # read, correct, replay and discard quarantined records (their raw text is customer data)
    QUARANTINE_MANAGE = "quarantine:manage"
    # take a whole load back out of the current records
    LOADS_WITHDRAW = "loads:withdraw"
    # the integration health figures (`/metrics`, `accord status`): volumes, error rates,
    # backlogs and latencies per system, no customer data
    HEALTH_READ = "health:read"
    # a person's own account: their second factor (every role a person holds)
    ACCOUNT_OWN = "account:own"


class Role(StrEnum):
    ADMIN = "admin"
    STEWARD = "steward"
    OPERATOR = "operator"
    VIEWER = "viewer"
    SYSTEM = "system"  # a connected system, authenticated by its API key
    MONITOR = "monitor"  # a monitoring system (Prometheus) by its API key: health only


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.STEWARD: frozenset(
        {
            Permission.CUSTOMERS_READ,
            Permission.RECORDS_READ,
            Permission.AUDIT_READ,
            Permission.MATCHES_READ,
            Permission.MATCHES_DECIDE,
            Permission.GOLDEN_OVERRIDE,
            Permission.QUARANTINE_MANAGE,
            Permission.ACCOUNT_OWN,
        }
    ),
    Role.OPERATOR: frozenset(
        {
            Permission.CUSTOMERS_READ,
            Permission.RECORDS_READ,
            Permission.RECORDS_WRITE,
            Permission.MATCHES_READ,
            Permission.QUARANTINE_MANAGE,
            Permission.LOADS_WITHDRAW,
            Permission.HEALTH_READ,
            Permission.ACCOUNT_OWN,
        }
    ),
    Role.VIEWER: frozenset({Permission.CUSTOMERS_READ, Permission.ACCOUNT_OWN}),
    Role.SYSTEM: frozenset({Permission.RECORDS_WRITE, Permission.RECORDS_READ}),
    Role.MONITOR: frozenset({Permission.HEALTH_READ}),
}


@dataclass(frozen=True)
class Actor:
    """Whoever acts: a person, a connected system, or the local command line."""

    kind: str  # "user", "system", "monitor" (a monitoring key) or "cli"
    name: str
    role: Role
    user_id: int | None = None

    @property
    def label(self) -> str:
        """How the actor appears in the audit log and in lineage."""
        return f"{self.kind}:{self.name}"


def allowed(actor: Actor, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[actor.role]


def require(actor: Actor, permission: Permission) -> None:
    """Raise NotAllowed unless `actor` holds `permission`."""
    if not allowed(actor, permission):
        raise NotAllowed(
            f"{actor.label} ({actor.role}) may not {permission}",
            hint="ask an administrator for a role that includes it",
        )


def cli_actor() -> Actor:
    """The operator at the local command line: they hold the database file, so all rights."""
    return Actor("cli", getpass.getuser(), Role.ADMIN)
