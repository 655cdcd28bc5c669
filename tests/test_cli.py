"""The ``ketascreen`` command line: formats, options, exit statuses and error messages.

Most tests go through ``typer.testing.CliRunner``; a few run the installed program in a real
subprocess, the way a user or a script does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ketascreen.cli.app import app
from ketascreen.core.kb import KnowledgeBase
from ketascreen.testing import merge_intake

EXAMPLES = Path(__file__).parent / "cases" / "examples"
HEALTHY = EXAMPLES / "healthy-ptsd.json"
BAD_HEART_RATE = EXAMPLES / "invalid-heart-rate.json"
DATE = "2026-11-16"
ICD_CODE = re.compile(r"\b[A-TV-Z]\d{2}\.[0-9A-Z]{1,4}\b")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No protocol, contacts or debug switch leaks in from the environment running the tests."""
    for name in ("KETASCREEN_PROTOCOL", "KETASCREEN_CRISIS_CONTACTS", "KETASCREEN_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str | Path, input: str | None = None) -> Result:
    """Run the CLI; any exception other than a deliberate exit is a failure of the test."""
    result = runner.invoke(app, [str(a) for a in args], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_jsonl(path: Path, items: list[Any]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def rule_ids(kb: KnowledgeBase) -> set[str]:
    return {r.id for r in kb.rules}


def suicidal_plan() -> dict[str, Any]:
    return merge_intake({"id": "plan", "indications": ["ptsd"],
                         "conditions": [{"code": "F43.12"}],
                         "symptoms": {"suicidal": "plan_or_intent"}})


def theophylline(route: str | None = None) -> dict[str, Any]:
    return merge_intake({"id": "theo", "route": route,
                         "medications": [{"name": "theophylline", "daily_mg": 400}]})


# ------------------------------------------------------------------------------------------
# screen: formats


@pytest.mark.parametrize("fmt", ["text", "markdown", "json", "jsonl", "html"])
def test_every_format(runner: CliRunner, fmt: str) -> None:
    result = invoke(runner, "screen", HEALTHY, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    if fmt == "text":
        assert "Decision:   Eligible with precautions (route: iv)" in out
        assert "healthy-ptsd, as of 2026-11-16" in out
        assert "psych.ptsd_trauma" in out
    elif fmt == "markdown":
        assert out.startswith("# ketascreen screening report")
        assert "**Decision: Eligible with precautions**" in out
        assert "## Findings" in out
        assert "`psych.ptsd_trauma`" in out
    elif fmt == "json":
        data = json.loads(out)
        assert data["id"] == "healthy-ptsd"
        assert data["decision"] == "eligible_with_precautions"
        assert data["as_of"] == DATE
        assert data["urgent"] is False
        assert set(data["routes"]) == {"iv", "im", "intranasal", "oral"}
        assert "psych.ptsd_trauma" in {f["rule"] for f in data["findings"]}
    elif fmt == "jsonl":
        lines = out.splitlines()
        assert len(lines) == 1
        assert json.loads(lines[0])["decision"] == "eligible_with_precautions"
    else:
        assert "<html" in out
        assert out.rstrip().endswith("</html>")
        assert "Decision: Eligible with precautions" in out
        assert "psych.ptsd_trauma" in out


def test_jsonl_writes_one_line_per_input_in_order(runner: CliRunner, tmp_path: Path) -> None:
    names = ["healthy-ptsd", "pregnant", "thoracic-aneurysm", "passive-si"]
    result = invoke(runner, "screen", *(EXAMPLES / f"{n}.json" for n in names), "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == names


def test_json_of_several_inputs_is_a_list(runner: CliRunner) -> None:
    result = invoke(runner, "screen", HEALTHY, EXAMPLES / "pregnant.json", "-f", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [a["id"] for a in data] == ["healthy-ptsd", "pregnant"]


def test_html_of_several_inputs_is_one_page(runner: CliRunner) -> None:
    result = invoke(runner, "screen", HEALTHY, EXAMPLES / "pregnant.json", "-f", "html")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("<html") == 1
    assert result.stdout.count('<section class="screening"') == 2


def test_output_option_writes_the_file(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    result = invoke(runner, "screen", HEALTHY, "-f", "json", "-o", target)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert json.loads(target.read_text(encoding="utf-8"))["id"] == "healthy-ptsd"


# ------------------------------------------------------------------------------------------
# screen: audience, route, date, explain


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_patient_audience_hides_rule_ids_and_codes(
    runner: CliRunner, kb: KnowledgeBase, fmt: str
) -> None:
    clinician = invoke(runner, "screen", HEALTHY, "-f", fmt).stdout
    assert "psych.ptsd_trauma" in clinician
    assert "F43.12" in clinician

    result = invoke(runner, "screen", HEALTHY, "-f", fmt, "--audience", "patient")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "psych." not in out
    assert "cardio." not in out
    for rid in rule_ids(kb):
        assert rid not in out, rid
    assert not ICD_CODE.search(out), ICD_CODE.findall(out)


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_patient_report_with_a_suicidal_plan_gives_crisis_contacts(
    runner: CliRunner, kb: KnowledgeBase, tmp_path: Path, fmt: str
) -> None:
    path = write(tmp_path / "plan.json", suicidal_plan())
    result = invoke(runner, "screen", path, "-f", fmt, "--audience", "patient")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "988" in out
    assert "911" in out
    for rid in rule_ids(kb):
        assert rid not in out, rid
    assert not ICD_CODE.search(out), ICD_CODE.findall(out)
    # the crisis text comes first, before the result
    first = out.index("988")
    assert first < out.index("Not right now")


def test_crisis_contacts_are_configurable(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KETASCREEN_CRISIS_CONTACTS", "Call the Samaritans on 116 123.")
    path = write(tmp_path / "plan.json", suicidal_plan())
    result = invoke(runner, "screen", path, "--audience", "patient")
    assert result.exit_code == 0, result.stderr
    assert "116 123" in result.stdout


def test_route_option_changes_the_decision(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path / "theo.json", theophylline(None))

    def run(*extra: str) -> dict[str, Any]:
        result = invoke(runner, "screen", path, "-f", "json", *extra)
        assert result.exit_code == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    every = run()
    assert every["route"] is None
    assert every["routes"]["iv"] == "defer"
    assert every["routes"]["intranasal"] == "needs_evaluation"
    assert every["decision"] == "needs_evaluation"  # the most favourable route

    iv = run("--route", "iv")
    assert iv["route"] == "iv"
    assert iv["decision"] == "defer"

    nasal = run("--route", "intranasal")
    assert nasal["route"] == "intranasal"
    assert nasal["decision"] == "needs_evaluation"


def test_route_option_overrides_the_intakes_route(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path / "theo.json", theophylline("intranasal"))
    result = invoke(runner, "screen", path, "-f", "json", "--route", "iv")
    assert json.loads(result.stdout)["decision"] == "defer"


def test_invalid_route_is_a_usage_error(runner: CliRunner) -> None:
    result = invoke(runner, "screen", HEALTHY, "--route", "rectal")
    assert result.exit_code == 2


def test_date_sets_assessed_on_when_missing(runner: CliRunner, tmp_path: Path) -> None:
    data = merge_intake({"id": "undated"})
    del data["assessed_on"]
    path = write(tmp_path / "undated.json", data)
    result = invoke(runner, "screen", path, "-f", "json", "--date", "2026-12-01")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["as_of"] == "2026-12-01"


def test_date_does_not_override_assessed_on(runner: CliRunner) -> None:
    result = invoke(runner, "screen", HEALTHY, "-f", "json", "--date", "2027-03-01")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["as_of"] == DATE


def test_date_before_a_date_in_the_intake_is_an_input_error(
    runner: CliRunner, tmp_path: Path
) -> None:
    data = merge_intake({"id": "undated"})  # vitals taken on 2026-11-10
    del data["assessed_on"]
    path = write(tmp_path / "undated.json", data)
    result = invoke(runner, "screen", path, "--date", "2026-10-01")
    assert result.exit_code == 2
    assert "vitals.taken_on" in result.stderr


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday", "2026-11"])
def test_malformed_date_option_is_exit_2(runner: CliRunner, value: str) -> None:
    result = invoke(runner, "screen", HEALTHY, "--date", value)
    assert result.exit_code == 2
    assert "--date" in result.stderr
    assert "YYYY-MM-DD" in result.stderr
    assert "Traceback" not in result.output


def test_explain_lists_every_rule_as_fired_not_fired_or_unknown(
    runner: CliRunner, kb: KnowledgeBase
) -> None:
    path = EXAMPLES / "mania-not-asked.json"
    result = invoke(runner, "screen", path, "--explain")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "TRACE" in out
    results = set(re.findall(r"^\s+(fired|not_fired|unknown|disabled)\s+\S+", out, re.MULTILINE))
    assert {"fired", "not_fired", "unknown"} <= results
    for rid in rule_ids(kb):
        assert re.search(rf"^\s+(fired|not_fired|unknown|disabled)\s+{re.escape(rid)} ", out,
                         re.MULTILINE), rid

    data = json.loads(invoke(runner, "screen", path, "--explain", "-f", "json").stdout)
    assert {t["rule"] for t in data["trace"]} == rule_ids(kb)
    assert {t["result"] for t in data["trace"]} >= {"fired", "not_fired", "unknown"}
    unknown = {t["rule"] for t in data["trace"] if t["result"] == "unknown"}
    needed = {rid for m in data["missing"] if m["field"] == "symptoms.mania_now"
              for rid in m["needed_by"]}
    assert needed & unknown


def test_without_explain_there_is_no_trace(runner: CliRunner) -> None:
    result = invoke(runner, "screen", HEALTHY, "-f", "json")
    assert not json.loads(result.stdout).get("trace")
    assert "TRACE" not in invoke(runner, "screen", HEALTHY).stdout


# ------------------------------------------------------------------------------------------
# screen: standard input, JSONL, several files, errors


def test_stdin_single_json(runner: CliRunner) -> None:
    result = invoke(runner, "screen", "-", "-f", "json", input=HEALTHY.read_text())
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "healthy-ptsd"


def test_stdin_jsonl(runner: CliRunner) -> None:
    items = [merge_intake({"id": f"p{i}"}) for i in range(3)]
    text = "".join(json.dumps(i) + "\n" for i in items)
    result = invoke(runner, "screen", "-", "-f", "jsonl", input=text)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["p0", "p1", "p2"]


def test_stdin_jsonl_with_an_invalid_line(runner: CliRunner) -> None:
    items = [merge_intake({"id": "a"}), merge_intake({"id": "b", "age": 300}),
             merge_intake({"id": "c"})]
    text = "".join(json.dumps(i) + "\n" for i in items)
    result = invoke(runner, "screen", "-", "-f", "jsonl", input=text)
    assert result.exit_code == 2
    assert "<stdin>:2" in result.stderr
    assert "age" in result.stderr
    assert len(result.stdout.splitlines()) == 3


def test_jsonl_file_with_an_invalid_middle_intake(runner: CliRunner, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "batch.jsonl", [
        merge_intake({"id": "first"}),
        merge_intake({"id": "second", "vitals": {"heart_rate": 400}}),
        merge_intake({"id": "third"}),
    ])
    result = invoke(runner, "screen", path, "-f", "jsonl")
    assert result.exit_code == 2
    assert f"{path}:2" in result.stderr
    assert "vitals.heart_rate" in result.stderr
    assert "250" in result.stderr
    assert "Traceback" not in result.output

    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    assert lines[0]["id"] == "first"
    assert lines[0]["decision"] == "eligible"
    assert lines[2]["id"] == "third"
    assert lines[2]["decision"] == "eligible"
    bad = lines[1]
    assert set(bad) == {"id", "error"}
    assert bad["id"] == "second"
    assert bad["error"]["field"] == "vitals.heart_rate"
    assert "250" in bad["error"]["message"]


def test_jsonl_file_with_a_line_that_is_not_json(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text(json.dumps(merge_intake({"id": "a"})) + "\n{not json\n"
                    + json.dumps(merge_intake({"id": "c"})) + "\n", encoding="utf-8")
    result = invoke(runner, "screen", path, "-f", "jsonl")
    assert result.exit_code == 2
    assert f"{path}:2" in result.stderr
    assert "not valid JSON" in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line.get("id") for line in lines] == ["a", None, "c"]
    assert set(lines[1]) == {"id", "error"}
    assert lines[1]["error"]["message"]


def test_several_files_with_one_bad_in_the_middle(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"age": 45,', encoding="utf-8")
    pregnant = EXAMPLES / "pregnant.json"
    result = invoke(runner, "screen", HEALTHY, bad, pregnant, "-f", "jsonl")
    assert result.exit_code == 2
    assert str(bad) in result.stderr
    assert str(HEALTHY) not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    assert lines[0]["id"] == "healthy-ptsd"
    assert "error" in lines[1]
    assert lines[2]["id"] == "pregnant"
    assert lines[2]["decision"] == "defer"


def test_several_files_with_an_invalid_intake_in_the_middle_text(runner: CliRunner) -> None:
    pregnant = EXAMPLES / "pregnant.json"
    result = invoke(runner, "screen", HEALTHY, BAD_HEART_RATE, pregnant)
    assert result.exit_code == 2
    assert "vitals.heart_rate" in result.stderr
    assert result.stdout.count("KETASCREEN SCREENING REPORT") == 2
    assert "healthy-ptsd" in result.stdout
    assert "pregnant" in result.stdout
    assert "bad-heart-rate" not in result.stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"age": 45,', ("not valid JSON", "line 1")),
        ("", ("not valid JSON",)),
        ("{'age': 45}", ("not valid JSON",)),
    ],
)
def test_invalid_json_is_exit_2_with_a_clear_message(
    runner: CliRunner, tmp_path: Path, content: str, words: tuple[str, ...]
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    result = invoke(runner, "screen", path)
    assert result.exit_code == 2
    assert str(path) in result.stderr
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_json_that_is_not_an_object_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path / "number.json", 42)
    result = invoke(runner, "screen", path)
    assert result.exit_code == 2
    assert "object" in result.stderr


def test_unreadable_files_are_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = invoke(runner, "screen", binary, tmp_path)
    assert result.exit_code == 2
    assert str(binary) in result.stderr
    assert str(tmp_path) in result.stderr
    assert "Traceback" not in result.output


def test_missing_file_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nobody.json"
    result = invoke(runner, "screen", missing)
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert "not found" in result.stderr


def test_missing_file_does_not_stop_the_others(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "screen", tmp_path / "nobody.json", HEALTHY, "-f", "json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data[1]["id"] == "healthy-ptsd"


def test_shared_invalid_heart_rate_example_is_exit_2(runner: CliRunner) -> None:
    result = invoke(runner, "screen", BAD_HEART_RATE)
    assert result.exit_code == 2
    assert "vitals.heart_rate" in result.stderr
    assert "invalid-heart-rate.json" in result.stderr
    assert "400" in result.stderr
    assert "Traceback" not in result.output


def test_intake_error_names_every_problem(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", merge_intake({"age": 300, "pregant": True}))
    result = invoke(runner, "screen", path)
    assert result.exit_code == 2
    assert "age" in result.stderr
    assert "pregant" in result.stderr
    assert "pregnancy" in result.stderr


# ------------------------------------------------------------------------------------------
# screen: protocols


def test_a_valid_protocol_is_used(runner: CliRunner, tmp_path: Path) -> None:
    protocol = tmp_path / "clinic.yaml"
    protocol.write_text('name: test-clinic\nversion: "7"\n', encoding="utf-8")
    result = invoke(runner, "screen", HEALTHY, "-f", "json", "--protocol", protocol)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["protocol"]["name"] == "test-clinic"
    assert data["protocol"]["version"] == "7"


def test_nonexistent_protocol_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-protocol.yaml"
    result = invoke(runner, "screen", HEALTHY, "--protocol", missing)
    assert result.exit_code == 2
    assert "protocol" in result.stderr
    assert str(missing) in result.stderr
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("name: x\noverrides:\n  nope.rule: {severity: info, reason: testing}\n",
         ("overrides.nope.rule", "no rule")),
        ("name: [\n", ("not valid YAML",)),
        ("- just\n- a list\n", ("mapping",)),
        ("version: 2\n", ("name",)),
        ("name: x\noverrides:\n  psych.primary_psychotic_disorder: {severity: info}\n",
         ("psych.primary_psychotic_disorder", "reason")),
    ],
)
def test_invalid_protocol_is_exit_2_naming_the_problem(
    runner: CliRunner, tmp_path: Path, content: str, words: tuple[str, ...]
) -> None:
    protocol = tmp_path / "clinic.yaml"
    protocol.write_text(content, encoding="utf-8")
    result = invoke(runner, "screen", HEALTHY, "--protocol", protocol)
    assert result.exit_code == 2
    assert str(protocol) in result.stderr
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.output


def test_protocol_from_the_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "env-protocol.yaml"
    monkeypatch.setenv("KETASCREEN_PROTOCOL", str(missing))
    result = invoke(runner, "screen", HEALTHY)
    assert result.exit_code == 2
    assert str(missing) in result.stderr


# ------------------------------------------------------------------------------------------
# schema, version, rules, lookup


@pytest.mark.parametrize(("name", "field"), [("intake", "age"), ("assessment", "decision")])
def test_schema_prints_json_schema(runner: CliRunner, name: str, field: str) -> None:
    result = invoke(runner, "schema", name)
    assert result.exit_code == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert field in schema["properties"]


def test_intake_schema_forbids_unknown_keys(runner: CliRunner) -> None:
    schema = json.loads(invoke(runner, "schema", "intake").stdout)
    assert schema["additionalProperties"] is False
    for key in ("conditions", "medications", "substances", "pregnancy", "extensions"):
        assert key in schema["properties"]


def test_schema_of_something_else_is_a_usage_error(runner: CliRunner) -> None:
    assert invoke(runner, "schema", "protocol").exit_code == 2


def test_version(runner: CliRunner, kb: KnowledgeBase) -> None:
    from ketascreen import __version__

    result = invoke(runner, "version")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"ketascreen {__version__}" in out
    assert "screening contract v1" in out
    assert kb.version in out
    assert kb.sha256 in out


def test_rules_list_shows_every_rule_id_in_full(runner: CliRunner, kb: KnowledgeBase) -> None:
    result = invoke(runner, "rules", "list")
    assert result.exit_code == 0, result.stderr
    assert "psych.primary_psychotic_disorder" in result.stdout
    missing = sorted(rid for rid in rule_ids(kb) if rid not in result.stdout)
    assert not missing, missing


def test_rules_list_by_category(runner: CliRunner) -> None:
    result = invoke(runner, "rules", "list", "--category", "age")
    assert result.exit_code == 0, result.stderr
    assert "age.under_18" in result.stdout
    assert "cardio." not in result.stdout


def test_rules_show(runner: CliRunner) -> None:
    result = invoke(runner, "rules", "show", "psych.primary_psychotic_disorder")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "id: psych.primary_psychotic_disorder" in out
    assert "severity: exclude" in out
    assert "category: psychosis" in out
    assert "F20" in out
    assert "sources:" in out


def test_rules_show_unknown_id_is_exit_2(runner: CliRunner) -> None:
    result = invoke(runner, "rules", "show", "nope")
    assert result.exit_code == 2
    assert "no rule 'nope'" in result.stderr
    assert "Traceback" not in result.output


def test_rules_show_suggests_similar_ids(runner: CliRunner) -> None:
    result = invoke(runner, "rules", "show", "psychosis.primary_psychotic_disorder")
    assert result.exit_code == 2
    assert "psych.primary_psychotic_disorder" in result.stderr


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("high blood pressure", ("condition", "I10")),
        ("lorazepam", ("medication", "benzodiazepine")),
        ("Ativan", ("lorazepam", "benzodiazepine")),
        ("F20.9", ("F20.9", "schizophrenia", "psych.primary_psychotic_disorder")),
        ("f209", ("F20.9",)),
        ("theophylline", ("methylxanthine",)),
    ],
)
def test_lookup(runner: CliRunner, text: str, words: tuple[str, ...]) -> None:
    result = invoke(runner, "lookup", text)
    assert result.exit_code == 0, result.output
    for word in words:
        assert word in result.stdout


def test_lookup_of_something_unknown_is_exit_1(runner: CliRunner) -> None:
    result = invoke(runner, "lookup", "xyzzy")
    assert result.exit_code == 1
    assert "not recognised" in result.output
    assert "xyzzy" in result.output


def test_no_arguments_prints_help(runner: CliRunner) -> None:
    result = invoke(runner)
    assert "screen" in result.output
    assert "lookup" in result.output


# ------------------------------------------------------------------------------------------
# Faults of ketascreen itself


def test_internal_fault_is_exit_1_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ketascreen.cli.app import main
    from ketascreen.services import Screener

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the engine fell over")

    monkeypatch.setattr(Screener, "screen", broken)
    monkeypatch.setattr(sys, "argv", ["ketascreen", "screen", str(HEALTHY)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert "internal error" in captured.err
    assert "RuntimeError" in captured.err
    assert "the engine fell over" in captured.err
    assert "Traceback" not in captured.err
    assert "Traceback" not in captured.out


def test_main_exits_0_on_success(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ketascreen.cli.app import main

    monkeypatch.setattr(sys, "argv", ["ketascreen", "screen", str(HEALTHY), "-f", "json"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["id"] == "healthy-ptsd"


# ------------------------------------------------------------------------------------------
# Every shared example


def _examples() -> Iterator[Path]:
    for path in sorted(EXAMPLES.glob("*.json")):
        if path.name not in ("expected.json", "invalid-heart-rate.json"):
            yield path


EXPECTED: dict[str, dict[str, Any]] = json.loads((EXAMPLES / "expected.json").read_text())


@pytest.mark.parametrize("path", list(_examples()), ids=lambda p: p.stem)
def test_every_example_exits_0(runner: CliRunner, path: Path) -> None:
    result = invoke(runner, "screen", path, "-f", "json", "--date", DATE)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    if path.stem in EXPECTED:
        assert data["decision"] == EXPECTED[path.stem]["decision"]


def test_all_examples_at_once(runner: CliRunner) -> None:
    paths = list(_examples())
    result = invoke(runner, "screen", *paths, "-f", "jsonl", "--date", DATE)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(paths)


# ------------------------------------------------------------------------------------------
# A real process


def _command() -> list[str]:
    if importlib.util.find_spec("ketascreen.cli.__main__") is not None:
        return [sys.executable, "-m", "ketascreen.cli"]
    script = shutil.which("ketascreen") or str(Path(sys.executable).parent / "ketascreen")
    assert Path(script).exists(), script
    return [script]


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KETASCREEN_PROTOCOL", "KETASCREEN_CRISIS_CONTACTS", "KETASCREEN_DEBUG")}
    return subprocess.run([*_command(), *(str(a) for a in args)], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_process_screens_an_example() -> None:
    proc = run("screen", HEALTHY, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["decision"] == "eligible_with_precautions"
    assert data["as_of"] == DATE


def test_process_invalid_json_is_exit_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"age": ', encoding="utf-8")
    proc = run("screen", path)
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ketascreen: ")


def test_process_reads_jsonl_from_stdin_and_reports_the_bad_line() -> None:
    items = [merge_intake({"id": "a"}), merge_intake({"id": "b", "sex": "woman"}),
             merge_intake({"id": "c"})]
    proc = run("screen", "-", "-f", "jsonl",
               stdin="".join(json.dumps(i) + "\n" for i in items))
    assert proc.returncode == 2
    assert "<stdin>:2" in proc.stderr
    assert "sex" in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "c"]
    assert lines[1]["error"]["field"] == "sex"


def test_process_lookup_unknown_is_exit_1() -> None:
    proc = run("lookup", "xyzzy")
    assert proc.returncode == 1
    assert "not recognised" in proc.stdout + proc.stderr
