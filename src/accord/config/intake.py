"""How a system's records come in, besides files loaded by hand and the push API: one
optional block per channel under `systems.<name>.intake` in accord.yaml.

Secrets (database URLs with passwords, webhook keys) are never written here: a block
names the environment variable that holds them.
"""

from __future__ import annotations

from accord.config.matching import StrictModel


class IntakeConfig(StrictModel):
    """The channels a system sends records through. Each block is optional; a system
    with none is loaded by `accord load` and the push API only."""
