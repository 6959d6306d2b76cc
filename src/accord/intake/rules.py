"""Business rules: CEL conditions every canonical record must meet.

A rule is written once, in accord.yaml (every system's records) or in one mapping (that
system's only), and judges the canonical record after mapping and standardization, so
one rule holds whatever the source called its columns. A failing rule quarantines the
record with reason `rule.<name>` and the rule's message, or, with `action: flag`, lets
it load with that issue. A rule that cannot be evaluated on a record (a type error, a
missing field read without `has`) counts as failed: a rule that cannot say yes does not
let a record through, and its message says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from accord import expressions
from accord.config.models import Rule
from accord.expressions import Expression, ExpressionError, Scope
from accord.intake.reasons import Reason


@dataclass(frozen=True)
class CompiledRule:
    name: str
    when: Expression | None
    check: Expression
    message: str
    action: Literal["quarantine", "flag"]

    @classmethod
    def of(cls, rule: Rule) -> CompiledRule:
        """Compile a rule; the loader has checked its expressions, so errors here mean
        the rule was built by hand, and raise."""
        allowed = expressions.RULE_VARIABLES
        when = expressions.compile_expression(rule.when, allowed) if rule.when else None
        check = expressions.compile_expression(rule.check, allowed)
        return cls(rule.name, when, check, rule.message, rule.action)


def compile_rules(rules: Iterable[Rule]) -> tuple[CompiledRule, ...]:
    return tuple(CompiledRule.of(rule) for rule in rules)


@dataclass(frozen=True)
class Verdict:
    reason: Reason
    action: Literal["quarantine", "flag"]


def judge(rules: Iterable[CompiledRule], scope: Scope) -> list[Verdict]:
    """The rules this record fails, in order; `scope` holds the record."""
    failed: list[Verdict] = []
    for rule in rules:
        try:
            if rule.when is not None and not _truth(rule.when, scope, "when"):
                continue
            if _truth(rule.check, scope, "check"):
                continue
            message = rule.message
        except ExpressionError as exc:
            message = f"{rule.message} (the rule could not be evaluated: {exc})"
        failed.append(Verdict(Reason(f"rule.{rule.name}", message), rule.action))
    return failed


def _truth(expression: Expression, scope: Scope, part: str) -> bool:
    value = expression.run(scope)
    if not isinstance(value, bool):
        raise ExpressionError(f"`{part}` gave {value!r}, not true or false")
    return value
