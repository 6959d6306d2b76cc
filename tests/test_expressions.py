"""CEL expressions: checked before any data, failing per record with a message, guarded
against hostile text (too long, too deep, too much work, growing strings)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord import expressions
from accord.expressions import (
    COMPUTE_VARIABLES,
    RULE_VARIABLES,
    ExpressionError,
    Needs,
    Scope,
    as_text,
    cel_source,
    compile_expression,
)


def _run(text: str, source: dict[str, Any] | None = None, record: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    expression = compile_expression(text, COMPUTE_VARIABLES)
    scope = Scope(Needs.of([expression]), source or {})
    scope.set_record(record or {})
    return expression.run(scope)


def test_computes_over_source_row_and_record() -> None:
    source = {"first": " Ann ", "last": "Lee", "revenue": "2000000", "blank": "  "}
    assert _run("source.first + ' ' + source.last", source) == "Ann Lee"
    assert _run("row.first", source) == "Ann"  # `row` is the same map
    assert _run("double(source.revenue) > 1e6", source) is True
    assert _run("has(source.blank)", source) is False  # empty means absent, as for `from`
    assert _run("record.country == 'DE'", record={"country": "DE"}) is True
    assert _run("source.first.lowerAscii().trim()", source) == "ann"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 +", "not a valid expression (line 1, column 4)"),
        ("source.first +", "not a valid expression"),
        ("", "the expression is empty"),
        ("sourc.first", "unknown name 'sourc'; the names here are record, row, source"),
        ("eval('1')", "unknown function 'eval'"),
        ("record.a.lowerAsci()", "unknown function 'lowerAsci'"),
    ],
)
def test_bad_expressions_are_refused_before_any_data(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_expression(text, COMPUTE_VARIABLES)


def test_rules_see_only_the_record() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'source'; the names here are record"):
        compile_expression("has(source.x)", RULE_VARIABLES)
    assert compile_expression("has(record.x)", RULE_VARIABLES).variables == {"record"}


def test_list_macro_variables_are_not_unknown_names() -> None:
    expression = compile_expression("['DE', 'AT'].exists(c, record.country == c)", RULE_VARIABLES)
    scope = Scope(Needs.of([expression]))
    scope.set_record({"country": "AT"})
    assert expression.run(scope) is True


@pytest.mark.parametrize(
    ("text", "source", "message"),
    [
        ("source.missing", {}, "no value for 'missing' (test it first with has(...))"),
        ("1 / int(source.n)", {"n": "0"}, "division by zero"),
        ("double(source.n) > 1.0", {"n": "lots"}, "Function 'double' error"),
        ("source.a + 1", {"a": "x"}, "Unsupported operation: string + int."),
        ("int(source.n) * 9223372036854775807", {"n": "2"}, "Arithmetic overflow"),
        ("source.a.matches('(')", {"a": "x"}, "not a valid regex"),
    ],
)
def test_evaluation_errors_are_messages_not_crashes(
    text: str, source: dict[str, str], message: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        _run(text, source)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 400


def test_only_the_named_source_columns_are_converted() -> None:
    assert compile_expression("source.a + row['b c']", COMPUTE_VARIABLES).source_keys == {
        "a",
        "b c",
    }
    assert compile_expression("has(source.a) ? 'x' : 'y'", COMPUTE_VARIABLES).source_keys == {"a"}
    # `source` used whole, or with a computed key: every column
    assert compile_expression("size(source) > 2", COMPUTE_VARIABLES).source_keys is None
    assert compile_expression("source[record.k]", COMPUTE_VARIABLES).source_keys is None
    # a mention inside a string literal errs on the safe side
    assert compile_expression("'row' + source.a", COMPUTE_VARIABLES).source_keys is None
    assert cel_source({"a": "1", "b": "2", "c": ""}, frozenset({"a", "c"})) == {"a": "1"}


def test_source_values_become_text_maps_and_lists() -> None:
    assert cel_source(
        {
            "n": 5,
            "ok": True,
            "none": None,
            "addr": {"city": " Leeds ", "zip": ""},
            "tags": [1, None],
        }
    ) == {"n": "5", "ok": "true", "addr": {"city": "Leeds"}, "tags": ["1"]}


def test_computed_values_become_text() -> None:
    assert as_text(True) == "true"
    assert as_text(3) == "3"
    assert as_text(None) is None
    for value, what in (([1], "a list"), ({"a": 1}, "a map"), (b"x", "bytes")):
        with pytest.raises(ExpressionError, match=f"gave {what}, not a single value"):
            as_text(value)


# Hostile expressions: the CEL library's parser and evaluator recurse, and a long enough
# chain crashes the whole process (a 90,000-character chain of `+` did, in a probe), so
# length is refused up front; nested list macros take exponential time; a chain of
# `replace` multiplies a string.


def test_a_very_long_expression_is_refused_before_the_parser_sees_it() -> None:
    text = "'a'" + " + 'a'" * 20_000
    with pytest.raises(ExpressionError, match="at most 2,000"):
        compile_expression(text, COMPUTE_VARIABLES)


def _refusal(text: str) -> str | None:
    """The message an expression is refused with; None when it compiles."""
    try:
        compile_expression(text, COMPUTE_VARIABLES)
    except ExpressionError as exc:
        return str(exc)
    return None


def test_deep_nesting_within_the_length_limit_is_an_error_not_a_crash() -> None:
    for text in ("(" * 900 + "1" + ")" * 900, "[" * 900 + "]" * 900, "-" * 1999 + "1"):
        refused = _refusal(text)
        if refused is None:
            expression = compile_expression(text, COMPUTE_VARIABLES)
            expression.run(Scope(Needs.of([expression]), {}))
        else:
            assert "not a valid expression" in refused


def test_the_longest_allowed_chains_run() -> None:
    limit = expressions.MAX_EXPRESSION_CHARS
    chain = "source.a" + " + source.a" * ((limit - 8) // 11)
    assert len(chain) <= limit
    assert _run(chain, {"a": "x"}) == "x" * ((limit - 8) // 11 + 1)
    member = "record" + ".a" * ((limit - 6) // 2)
    with pytest.raises(ExpressionError, match="no value"):
        _run(member, record={})


def test_nested_list_macros_are_refused() -> None:
    numbers = "[" + ",".join(str(i) for i in range(100)) + "]"
    text = f"{numbers}.map(a, {numbers}.map(b, {numbers}.map(c, 1)))"
    with pytest.raises(ExpressionError, match="at most 1 list macro"):
        compile_expression(text, COMPUTE_VARIABLES)
    # inside a string literal it is only text
    assert _run("'x.map(a, 1).all(b, 2)' + source.a", {"a": "y"}) == "x.map(a, 1).all(b, 2)y"


def test_a_single_macro_over_the_largest_literal_is_quick() -> None:
    numbers = "[" + ",".join(["1"] * 900) + "]"
    started = time.perf_counter()
    assert _run(f"{numbers}.all(n, n == 1)") is True
    assert time.perf_counter() - started < 1


def test_string_growth_is_capped() -> None:
    text = "source.a" + ".replace('a', 'aaaaaaaaaa')" * 10
    with pytest.raises(ExpressionError, match="a text over 65,536 characters"):
        _run(text, {"a": "a"})
    with pytest.raises(ExpressionError, match="over 65,536 characters"):
        as_text("x" * 70_000)


# A rule's outcome equals a Python reference, for a family of generated conditions over
# a record's fields.

_FIELDS = ("country", "tax_id", "email")
_VALUES = ("DE", "GB", "DE123", "")


@st.composite
def _conditions(draw: st.DrawFn, depth: int = 3) -> tuple[str, Any]:
    field = draw(st.sampled_from(_FIELDS))
    value = draw(st.sampled_from(_VALUES[:3]))
    leaves = [
        (f"has(record.{field})", lambda r, f=field: f in r),
        (
            f"has(record.{field}) && record.{field} == '{value}'",
            lambda r, f=field, v=value: r.get(f) == v,
        ),
        (
            f"has(record.{field}) && record.{field}.startsWith('{value[:1]}')",
            lambda r, f=field, v=value: f in r and r[f].startswith(v[:1]),
        ),
        (
            f"has(record.{field}) && size(record.{field}) > 2",
            lambda r, f=field: f in r and len(r[f]) > 2,
        ),
    ]
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(leaves))
    left_text, left = draw(_conditions(depth - 1))
    right_text, right = draw(_conditions(depth - 1))
    operator = draw(st.sampled_from(("&&", "||", "!")))
    if operator == "!":
        return f"!({left_text})", lambda r: not left(r)
    if operator == "&&":
        return f"({left_text}) && ({right_text})", lambda r: left(r) and right(r)
    return f"({left_text}) || ({right_text})", lambda r: left(r) or right(r)


@settings(max_examples=300, deadline=None)
@given(
    condition=_conditions(),
    record=st.dictionaries(st.sampled_from(_FIELDS), st.sampled_from(_VALUES[:3]), max_size=3),
)
def test_rule_conditions_agree_with_python(
    condition: tuple[str, Any], record: dict[str, str]
) -> None:
    text, reference = condition
    expression = compile_expression(text, RULE_VARIABLES)
    scope = Scope(Needs.of([expression]))
    scope.set_record(record)
    assert expression.run(scope) is bool(reference(record)), text


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_compiles_or_is_refused_with_a_message(text: str) -> None:
    assert _refusal(text) != ""


def test_a_scope_converts_only_what_its_expressions_read() -> None:
    compute = compile_expression("source.a + record.country", COMPUTE_VARIABLES)
    rule = compile_expression("has(record.tax_id)", RULE_VARIABLES)
    needs = Needs.of([compute, rule])
    assert needs == Needs(frozenset({"source"}), frozenset({"a"}), {"country", "tax_id"}, False)
    scope = Scope(needs, {"a": "x", "b": "unread"})
    scope.set_record({"country": "DE", "city": "unread"})
    assert scope.context.variables == {"source": {"a": "x"}, "record": {"country": "DE"}}
    assert compute.run(scope) == "xDE"
    whole = compile_expression("size(record) > 1 && row.a.lowerAscii() == 'x'", COMPUTE_VARIABLES)
    assert Needs.of([whole, rule]) == Needs(frozenset({"row"}), frozenset({"a"}), None, True)


def test_cel_is_imported_without_its_interactive_shell() -> None:
    """The `cel` package imports its shell (prompt_toolkit) on import; `expressions`
    keeps it out, and CEL, with the helper functions, works the same without it."""
    program = (
        "import sys\n"
        "from tests.test_expressions import _run\n"
        'assert _run("source.first.lowerAscii().trim() + string(size(source.first))",'
        " {'first': 'Ann'}) == 'ann3'\n"
        "assert 'prompt_toolkit' not in sys.modules, 'the shell was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[1],  # where `tests` is importable from
    )
    assert done.returncode == 0, done.stderr
