"""`accord review list|show|decide` and `accord unmerge`, end to end through the command
line on a real SQLite store in the project folder: what a steward sees, what they can
change, and how bad input is answered (a message and an exit code, never a traceback)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from accord.demo.generator import generate
from accord.demo.run import inputs, write_project
from accord.govern.permissions import cli_actor
from tests.cli.helpers import invoke as _invoke
from tests.cli.helpers import run as _run
from tests.factories import anna_chain_and_bob, write_csv


def _show(project: Path, review_id: int) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(_run("review", "show", project, str(review_id), "--json"))
    return shown


def _total(output: str) -> int:
    found = re.search(r"Review \((\w+)\): ([\d,]+)", output)
    assert found, output
    return int(found.group(2).replace(",", ""))


def _decisions(project: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(project / ".accord" / "accord.sqlite3") as conn:
        return conn.execute(
            "SELECT left_source_id, right_source_id, decision, decided_by FROM match_decision"
            " ORDER BY left_source_id, right_source_id"
        ).fetchall()


# ---- the demo company with the learned engine: a real review queue


@pytest.fixture(scope="module")
def _learned_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project as shipped (engine: learned), 300 generated customers loaded and
    resolved once; tests work on copies of the folder."""
    root = tmp_path_factory.mktemp("learned")
    data, project = root / "data", root / "project"
    generate(data, seed=3, customers=300)
    write_project(project)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ACCORD_DATABASE_URL", raising=False)
        for system, path in inputs(data):
            result = _invoke("load", project, "--system", system, path)
            assert result.exit_code == 0, result.output
        result = _invoke("resolve", project)
        assert result.exit_code == 0, result.output
    return project


@pytest.fixture
def learned(_learned_source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(_learned_source, target)
    return target


def test_review_list_pages_the_queue(learned: Path) -> None:
    first = _run("review", "list", learned, "--limit", "5")
    total = _total(first)
    assert total > 5
    assert "more: --offset 5" in first
    assert re.search(r"│ 1 +│", first)  # the most likely pair comes first
    last = _run("review", "list", learned, "--offset", str(total - 2), "--limit", "5")
    assert _total(last) == total
    assert "more:" not in last
    assert "Review (decided): 0" in _run("review", "list", learned, "--status", "decided")
    assert "Review (withdrawn): 0" in _run("review", "list", learned, "--status", "withdrawn")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--status", "nope"], 1, "status must be open, decided or withdrawn, not 'nope'"),
        (["--limit", "0"], 2, "--limit"),
        (["--limit", "201"], 2, "--limit"),
        (["--offset", "-1"], 2, "--offset"),
        (["--limit", "many"], 2, "--limit"),
    ],
)
def test_review_list_refuses_bad_options(
    learned: Path, args: list[str], code: int, message: str
) -> None:
    output = _run("review", "list", learned, *args, code=code)
    assert message in output


def test_review_show_explains_the_pair(learned: Path) -> None:
    item = _show(learned, 1)
    assert item["id"] == 1
    assert item["status"] == "open"
    assert item["decision"] is None
    assert 0.0 < item["probability"] <= 1.0
    assert item["reason"].startswith(("uncertain", "contradicting"))
    left, right = item["records"]
    assert left["system"] == item["left"]["system"]
    assert right["source_id"] == item["right"]["source_id"]
    assert left["data"] and right["data"]
    assert left["golden"]["golden_id"].startswith("C")
    assert left["golden"]["golden_id"] != right["golden"]["golden_id"]  # not linked
    explanation = item["explanation"]
    assert explanation["comparisons"]
    assert {"comparison", "left", "right", "level", "weight"} <= set(explanation["comparisons"][0])
    assert abs(explanation["match_weight"] - item["match_weight"]) < 1e-3

    text = _run("review", "show", learned, "1")
    assert f"review 1: probability {item['probability']:.3f}" in text
    assert "Records" in text and "Match weights" in text
    assert left["golden"]["golden_id"] in text
    assert "prior" in text and "total" in text
    assert f"{explanation['match_weight']:+.2f}" in text


def test_a_resolve_queues_pairs_unexplained_and_each_is_explained_when_shown(
    learned: Path,
) -> None:
    """The full resolve stores no explanation with its review pairs (a million records
    queue some 200,000, most never opened); showing one works it out from the match
    index and the saved model, and it adds up to the weight the resolve scored."""
    with sqlite3.connect(learned / ".accord" / "accord.sqlite3") as conn:
        stored = conn.execute(
            "SELECT id, explanation, match_weight FROM match_review WHERE status = 'open'"
            " AND reason = 'uncertain' ORDER BY id LIMIT 3"
        ).fetchall()
    assert len(stored) == 3
    for review_id, explanation, weight in stored:
        assert json.loads(explanation) == {}
        shown = _show(learned, review_id)["explanation"]
        assert abs(shown["match_weight"] - weight) < 1e-3
        assert shown["comparisons"]


@pytest.mark.parametrize(
    ("review_id", "code", "message"),
    [("999999", 1, "no review 999999"), ("abc", 2, "review_id"), ("0", 1, "no review 0")],
)
def test_review_show_unknown_ids(learned: Path, review_id: str, code: int, message: str) -> None:
    output = _run("review", "show", learned, review_id, code=code)
    assert message in output
    if code == 1:
        assert "hint: list the queue for the ids" in output


@pytest.mark.parametrize("command", ["show", "decide"])
def test_a_review_id_beyond_64_bits_is_answered_not_crashed(learned: Path, command: str) -> None:
    extra = ["same"] if command == "decide" else []
    output = _run("review", command, learned, str(2**63), *extra, code=1)
    assert f"no review {2**63}" in output


def test_review_decide_records_the_decision(learned: Path) -> None:
    before = _total(_run("review", "list", learned))
    item = _show(learned, 2)
    left = f"{item['left']['system']}:{item['left']['source_id']}"
    right = f"{item['right']['system']}:{item['right']['source_id']}"

    output = _run("review", "decide", learned, "2", "different", "--note", "two people")

    assert f"decided different: {left} and {right}" in output
    assert "it takes effect at the next accord resolve" in output
    decided = _show(learned, 2)
    assert decided["status"] == "decided"
    assert decided["decision"]["decision"] == "different"
    assert decided["decision"]["note"] == "two people"
    assert decided["decision"]["decided_by"] == cli_actor().label
    assert _total(_run("review", "list", learned)) == before - 1
    assert _total(_run("review", "list", learned, "--status", "decided")) == 1
    assert len(_decisions(learned)) == 1


def test_review_decide_same_with_resolve_joins_the_pair(learned: Path) -> None:
    item = _show(learned, 3)
    left_golden = item["records"][0]["golden"]["golden_id"]
    assert left_golden != item["records"][1]["golden"]["golden_id"]

    output = _run("review", "decide", learned, "3", "same", "--resolve")

    assert "decided same" in output
    assert "Resolved" in output and "by steward" in output
    after = _show(learned, 3)
    goldens = {record["golden"]["golden_id"] for record in after["records"]}
    assert len(goldens) == 1
    assert {record["golden"]["rule"] for record in after["records"]} == {"steward"}
    assert after["status"] == "decided"
    # a second resolve keeps it so, and the decided pair is not queued again
    resolved = _run("resolve", learned)
    assert re.search(r"created\s+│\s+0 ", resolved), resolved
    assert _show(learned, 3)["status"] == "decided"
    assert {r["golden"]["golden_id"] for r in _show(learned, 3)["records"]} == goldens


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["1", "maybe"], 1, "decision must be 'same' or 'different', not 'maybe'"),
        (["1", "SAME"], 1, "decision must be 'same' or 'different', not 'SAME'"),
        (["999999", "same"], 1, "no review 999999"),
        (["abc", "same"], 2, "review_id"),
        (["1"], 2, "Missing argument"),
    ],
)
def test_review_decide_refuses_bad_input(
    learned: Path, args: list[str], code: int, message: str
) -> None:
    output = _run("review", "decide", learned, *args, code=code)
    assert message in output
    assert _decisions(learned) == []
    assert _show(learned, 1)["status"] == "open"


@pytest.mark.parametrize(
    "args",
    [
        ["review", "list", "{dir}"],
        ["review", "show", "{dir}", "1"],
        ["review", "decide", "{dir}", "1", "same"],
        ["review", "decide-pair", "{dir}", "crm:C1", "crm:C2", "same"],
        ["unmerge", "{dir}", "C0000001", "--record", "crm:C1"],
    ],
    ids=["list", "show", "decide", "decide-pair", "unmerge"],
)
def test_a_folder_without_a_project_is_refused_and_left_alone(
    tmp_path: Path, args: list[str]
) -> None:
    folder = tmp_path / "typo"
    output = _run(*(a.replace("{dir}", str(folder)) for a in args), code=1)
    assert "no accord.yaml here" in output
    assert not folder.exists()


def test_a_held_model_link_is_queued_with_its_explanation(learned: Path) -> None:
    with sqlite3.connect(learned / ".accord" / "accord.sqlite3") as conn:
        rows = conn.execute(
            "SELECT golden_id, system, source_id FROM crosswalk ORDER BY golden_id, system,"
            " source_id"
        ).fetchall()
    customers: dict[str, list[tuple[str, str]]] = {}
    for golden_id, system, source_id in rows:
        customers.setdefault(golden_id, []).append((system, source_id))
    large = [members for members in customers.values() if len(members) >= 4][:5]
    assert large
    for members in large:  # the first and last member apart: some link must give way
        first, last = (f"{system}:{source_id}" for system, source_id in (members[0], members[-1]))
        _run("review", "decide-pair", learned, first, last, "different")
    _run("resolve", learned)
    listed = _run("review", "list", learned, "--limit", "200")
    held = [int(found.group(1)) for found in re.finditer(r"│ (\d+) +│[^\n]*a steward", listed)]
    assert held, listed

    item = _show(learned, held[0])

    assert item["match_weight"] is not None  # the model scored the link...
    assert item["explanation"].get("comparisons")  # ...so it can say why


# ---- the rules engine on a handful of records: unmerge, held links, withdrawn pairs


def _chain() -> list[dict[str, str]]:
    """Anna three times: C1 - C2 share an email, C2 - C3 a phone; C1 and C3 nothing."""
    return anna_chain_and_bob()[:3]


@pytest.fixture
def rules(demo_project_dir: Path, tmp_path: Path) -> Path:
    crm = write_csv(tmp_path / "crm.csv", _chain())
    _run("load", demo_project_dir, "--system", "crm", crm)
    _run("resolve", demo_project_dir)
    shown = json.loads(_run("show", demo_project_dir, "C0000001", "--json"))
    assert [m["source_id"] for m in shown["members"]] == ["C1", "C2", "C3"]
    return demo_project_dir


def _held(project: Path) -> Path:
    """Decide C1 and C3 apart and resolve: the C2 - C3 link is held, as review 1."""
    output = _run("review", "decide-pair", project, "crm:C3", "crm:C1", "different", "--resolve")
    assert "decided different: crm:C1 and crm:C3" in output
    assert "Resolved" in output
    return project


def _members(project: Path, golden_id: str) -> list[str]:
    shown = json.loads(_run("show", project, golden_id, "--json"))
    return [m["source_id"] for m in shown["members"]]


def test_unmerge_splits_and_resolves(rules: Path) -> None:
    output = _run("unmerge", rules, "C0000001", "--record", "crm:C3", "--note", "moved")

    assert "1 record(s) split out of C0000001 (2 decisions)" in output
    assert "Resolved" in output
    assert _members(rules, "C0000001") == ["C1", "C2"]
    assert _members(rules, "C0000002") == ["C3"]
    assert [d[:3] for d in _decisions(rules)] == [
        ("C1", "C3", "different"),
        ("C2", "C3", "different"),
    ]
    assert "the chain is intact" in _run("audit", "verify", rules)


def test_unmerge_without_resolve_waits_for_the_next_one(rules: Path) -> None:
    output = _run(
        "unmerge", rules, "C0000001", "--record", "crm:C1", "--record", "crm:C2", "--no-resolve"
    )
    assert "2 record(s) split out of C0000001 (3 decisions)" in output
    assert f"it takes effect at the next accord resolve {rules.resolve()}" in output.replace(
        "\n", ""
    )
    assert _members(rules, "C0000001") == ["C1", "C2", "C3"]  # not yet

    _run("resolve", rules)
    assert _members(rules, "C0000001") == ["C1", "C2"]  # the larger part keeps the id
    assert _members(rules, "C0000002") == ["C3"]


@pytest.mark.parametrize("value", ["crm", "crm:", ":C1", "", "C1"])
def test_unmerge_refuses_a_malformed_record(rules: Path, value: str) -> None:
    output = _run("unmerge", rules, "C0000001", "--record", value, code=2)
    assert "write SYSTEM:SOURCE_ID" in output
    assert _decisions(rules) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["C0000001", "--record", "crm:C9"], 1, "crm:C9 not in C0000001"),
        (["C0000001", "--record", "erp:C1"], 1, "erp:C1 not in C0000001"),
        (["C0000404", "--record", "crm:C1"], 1, "no active customer 'C0000404'"),
        (
            ["C0000001", "--record", "crm:C1", "--record", "crm:C2", "--record", "crm:C3"],
            1,
            "leave at least one",
        ),
        (["C0000001"], 2, "Missing option '--record'"),
    ],
    ids=["unknown-member", "other-system", "unknown-customer", "everything", "no-record"],
)
def test_unmerge_refuses_bad_input(rules: Path, args: list[str], code: int, message: str) -> None:
    output = _run("unmerge", rules, *args, code=code)
    assert message in output
    assert _decisions(rules) == []
    assert _members(rules, "C0000001") == ["C1", "C2", "C3"]


def test_unmerge_names_where_to_find_the_members(rules: Path) -> None:
    output = _run("unmerge", rules, "C0000001", "--record", "crm:C9", code=1)
    assert "hint:" in output and "accord show" in output


def test_a_held_link_is_listed_with_its_reason_and_decided(rules: Path) -> None:
    _held(rules)
    listed = _run("review", "list", rules)
    assert _total(listed) == 1
    assert "crm:C2" in listed and "crm:C3" in listed
    assert "a steward decided" in listed
    item = _show(rules, 1)
    assert item["reason"] == "a steward decided these are different customers"
    assert item["explanation"] == {}

    output = _run("review", "decide", rules, "1", "same", "--resolve")

    assert "decided same: crm:C2 and crm:C3" in output
    after = _show(rules, 1)
    assert after["status"] == "decided"
    c2, c3 = after["records"]
    assert c2["golden"]["golden_id"] == c3["golden"]["golden_id"]
    assert c2["golden"]["rule"] == c3["golden"]["rule"] == "steward"
    assert _members(rules, c2["golden"]["golden_id"]) == ["C2", "C3"]
    # now the C1 - C2 email link is the one that would join C1 and C3
    reopened = _run("review", "list", rules)
    assert _total(reopened) == 1
    assert "crm:C1" in reopened and "crm:C2" in reopened


def test_deciding_a_withdrawn_review_is_refused(rules: Path, tmp_path: Path) -> None:
    _held(rules)
    rows = _chain()
    rows[2]["Phone"] = "+49 30 3333333"  # C3 no longer shares C2's phone
    _run("load", rules, "--system", "crm", write_csv(tmp_path / "changed.csv", rows))
    _run("resolve", rules)
    assert _total(_run("review", "list", rules, "--status", "withdrawn")) == 1

    output = _run("review", "decide", rules, "1", "same", code=1)

    assert "review 1 was withdrawn" in output
    assert "hint:" in output
    assert [d[:3] for d in _decisions(rules)] == [("C1", "C3", "different")]


def test_the_withdrawn_hint_leads_to_a_command_that_decides_it(rules: Path, tmp_path: Path) -> None:
    _held(rules)
    rows = _chain()
    rows[2]["Phone"] = "+49 30 3333333"
    _run("load", rules, "--system", "crm", write_csv(tmp_path / "changed.csv", rows))
    _run("resolve", rules)
    output = _run("review", "decide", rules, "1", "same", code=1)
    hinted = re.search(r"`accord (review [\w-]+)", output)
    assert hinted, output
    assert _invoke(*hinted.group(1).split(), "--help").exit_code == 0

    _run(*hinted.group(1).split(), rules, "crm:C2", "crm:C3", "same", "--resolve")

    assert _members(rules, "C0000001") == ["C1"]  # C1 and C3 still apart
    assert sorted(m for g in ("C0000002", "C0000003") for m in _safe_members(rules, g)) == [
        "C2",
        "C3",
    ]


def _safe_members(project: Path, golden_id: str) -> list[str]:
    result = _invoke("show", project, golden_id, "--json")
    if result.exit_code:
        return []
    shown = json.loads(result.output)
    return [m["source_id"] for m in shown["members"]] if shown["status"] == "active" else []


def test_decide_pair_decides_any_pair_and_resolves(rules: Path) -> None:
    output = _run(
        "review", "decide-pair", rules, "crm:C2", "crm:C1", "different", "--note", "not her"
    )
    assert "decided different: crm:C1 and crm:C2" in output
    assert "it takes effect at the next accord resolve" in output
    assert _decisions(rules) == [("C1", "C2", "different", cli_actor().label)]
    assert _total(_run("review", "list", rules, "--status", "decided")) == 0  # none queued

    _run("resolve", rules)

    assert _members(rules, "C0000001") == ["C2", "C3"]  # the larger part keeps the id
    assert _members(rules, "C0000002") == ["C1"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["crm:C1", "crm:C1", "same"], 1, "a record is always the same customer as itself"),
        (["crm:C1", "crm:C404", "same"], 1, "no record 'C404' in 'crm'"),
        (["crm:C1", "erp:C2", "same"], 1, "no record 'C2' in 'erp'"),
        (["crm:C1", "crm:C2", "maybe"], 1, "decision must be 'same' or 'different'"),
        (["crm:C1", "crm:C2", "same", "--note", "x" * 2001], 1, "at most 2000 characters"),
        (["crm", "crm:C2", "same"], 2, "write SYSTEM:SOURCE_ID"),
        (["crm:C1", ":C2", "same"], 2, "write SYSTEM:SOURCE_ID"),
        (["crm:C1", "crm:C2"], 2, "Missing argument"),
    ],
    ids=[
        "itself",
        "unknown-record",
        "unknown-system",
        "bad-decision",
        "long-note",
        "no-colon",
        "no-system",
        "no-decision",
    ],
)
def test_decide_pair_refuses_bad_input(
    rules: Path, args: list[str], code: int, message: str
) -> None:
    output = _run("review", "decide-pair", rules, *args, code=code)
    assert message in " ".join(output.split())  # Rich may wrap long messages
    assert _decisions(rules) == []


@pytest.mark.parametrize("street", ["Elbweg 2 [hinten]", "Elbweg [/b] 2"])
def test_review_show_prints_values_as_they_are(
    demo_project_dir: Path, tmp_path: Path, street: str
) -> None:
    rows = _chain()
    rows[1]["Street"] = street
    _run("load", demo_project_dir, "--system", "crm", write_csv(tmp_path / "crm.csv", rows))
    _held(demo_project_dir)
    assert _show(demo_project_dir, 1)["records"][0]["data"]["street"] == street

    result = _invoke("review", "show", demo_project_dir, "1")

    assert result.exit_code == 0, result.exception
    assert street in result.output


# ---- accord match model: what the learned engine learned at the last resolve


def _models(project: Path) -> int:
    with sqlite3.connect(project / ".accord" / "accord.sqlite3") as db:
        count: int = db.execute("SELECT count(*) FROM match_model").fetchone()[0]
    return count


def test_match_model_shows_the_weights_and_the_blocking(learned: Path) -> None:
    output = _run("match", "model", learned)
    assert "prior" in output and "matching pairs" in output
    for name in ("given_name", "family_name", "birth_date", "address", "else"):
        assert name in output
    assert "Blocking" in output and "kind+email" in output


def test_match_model_as_json(learned: Path) -> None:
    model = json.loads(_run("match", "model", learned, "--json"))
    params = model["params"]
    assert 0 < params["prior"] < 0.5
    names = [c["name"] for c in params["comparisons"]]
    assert names[:2] == ["given_name", "family_name"]
    for comparison in params["comparisons"]:
        assert len(comparison["levels"]) == len(comparison["m"]) == len(comparison["u"])
        assert comparison["levels"][0] == "null" and comparison["levels"][-1] == "else"
    assert model["blocking"]["pairs"] > 0


def test_a_resolve_that_learns_the_same_keeps_one_model(learned: Path) -> None:
    before = _models(learned)
    assert before == 1
    _run("resolve", learned)
    assert _models(learned) == before  # the same data, the same seed: the same model


def test_match_model_without_a_learned_engine(demo_project_dir: Path) -> None:
    output = _run("match", "model", demo_project_dir, code=1)
    assert "no learned model yet" in output and "engine: learned" in output
