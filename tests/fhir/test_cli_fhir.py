"""The command line with FHIR: `screen` reads Bundles and writes `--format fhir`, and the
`questionnaire` and `fhir` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaire import Questionnaire
from typer.testing import CliRunner, Result

from ketascreen.adapters.sdc import questionnaire_resource
from ketascreen.cli.app import app
from tests.fhir.builders import ICD10CM, LOINC, bp, bundle, coding, condition, patient

DATE = "2026-11-16"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KETASCREEN_PROTOCOL", "KETASCREEN_CRISIS_CONTACTS", "KETASCREEN_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def invoke(*args: str | Path, input: str | None = None) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def record() -> dict[str, Any]:
    return bundle(patient(), condition("an", coding(ICD10CM, "I67.1", "Cerebral aneurysm")),
                  condition("odd", coding("urn:local", "Q"), text="Something local"),
                  bp("bp", 126, 80, "2026-11-01"))


def test_screen_reads_a_bundle_and_reports_what_it_did_not_use(tmp_path: Path) -> None:
    path = write(tmp_path / "record.json", record())
    result = invoke("screen", path, "--date", DATE)
    assert result.exit_code == 0, result.output
    assert "Not recommended" in result.stdout
    assert "entry[1].resource" in result.stdout  # evidence points into the Bundle
    assert (f"ketascreen: {path}: unrecognized: entry[2].resource.code.coding[0]: a coding in a "
            "system ketascreen does not know") in result.stderr


def test_screen_json_of_a_bundle_has_fhir_paths(tmp_path: Path) -> None:
    result = invoke("screen", write(tmp_path / "r.json", record()), "--date", DATE,
                    "--format", "json")
    assert result.exit_code == 0
    a = json.loads(result.stdout)
    assert a["id"] == "Patient/example" and a["decision"] == "not_recommended"
    assert "entry[2].resource.code.coding[0]" in {u["field"] for u in a["unrecognized"]}


def test_a_bad_bundle_exits_2_naming_the_fhir_path(tmp_path: Path) -> None:
    bad = bundle(patient(birth="yesterday"))
    good = write(tmp_path / "good.json", record())
    result = invoke("screen", write(tmp_path / "bad.json", bad), good, "--date", DATE,
                    "--format", "jsonl")
    assert result.exit_code == 2
    assert "entry[0].resource.birthDate: must be a date" in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["error"]["field"] == "entry[0].resource.birthDate"
    assert lines[1]["decision"] == "not_recommended"  # the other input is still assessed


def test_route_applies_to_a_bundle(tmp_path: Path) -> None:
    result = invoke("screen", write(tmp_path / "r.json", record()), "--date", DATE,
                    "--route", "intranasal", "--format", "json")
    assert json.loads(result.stdout)["route"] == "intranasal"


def test_format_fhir_writes_one_valid_bundle_per_input(tmp_path: Path) -> None:
    one = invoke("screen", write(tmp_path / "r.json", record()), "--date", DATE,
                 "--format", "fhir")
    assert one.exit_code == 0
    parsed = Bundle.model_validate(json.loads(one.stdout))
    assert {type(e.resource).__name__ for e in parsed.entry or []} >= {
        "RiskAssessment", "DetectedIssue", "OperationOutcome"}
    intake = {"age": 40, "conditions": [], "medications": [], "substances": []}
    many = invoke("screen", write(tmp_path / "r.json", record()),
                  write(tmp_path / "i.json", intake), write(tmp_path / "x.json", {"age": 900}),
                  "--date", DATE, "--format", "fhir")
    assert many.exit_code == 2
    items = json.loads(many.stdout)
    assert [i["resourceType"] for i in items] == ["Bundle", "Bundle", "OperationOutcome"]
    for item in items[:2]:
        Bundle.model_validate(item)
    assert "age" in items[2]["issue"][0]["diagnostics"]


def test_questionnaire_format_fhir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETASCREEN_CRISIS_CONTACTS", "Call 000 in Australia.")
    result = invoke("questionnaire", "--format", "fhir")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    Questionnaire.model_validate(data)
    assert data == questionnaire_resource(crisis_contacts="Call 000 in Australia.")
    definition = json.loads(invoke("questionnaire", "--format", "json").stdout)
    assert [p["id"] for p in definition["pages"]] == [g["linkId"] for g in data["item"]]


def test_fhir_read_record_and_validate(tmp_path: Path) -> None:
    read = invoke("fhir", "read", write(tmp_path / "r.json", record()), "--date", DATE)
    assert read.exit_code == 0
    out = json.loads(read.stdout)
    assert out["intake"]["conditions"][0]["code"] == "I67.1"
    assert {"path": "entry[2].resource.code.coding[0]", "kind": "unrecognized",
            "message": "a coding in a system ketascreen does not know",
            "value": "urn:local|Q"} in out["issues"]
    intake = {"age": 40, "sex": "male", "conditions": [{"code": "I10", "controlled": True}],
              "medications": [], "substances": [], "labs": {"child_pugh": "A"}}
    rec = invoke("fhir", "record", write(tmp_path / "i.json", intake), "--date", DATE)
    assert rec.exit_code == 0
    Bundle.model_validate(json.loads(rec.stdout))
    assert "labs.child_pugh cannot be expressed" in rec.stderr
    ok = invoke("fhir", "validate", write(tmp_path / "b.json", json.loads(rec.stdout)))
    assert ok.exit_code == 0 and "valid FHIR R4 Bundle" in ok.stdout
    bad = invoke("fhir", "validate", write(tmp_path / "o.json", {
        "resourceType": "Observation", "code": {"coding": [{"system": LOINC, "code": "x"}]}}))
    assert bad.exit_code == 2 and "status" in bad.stderr
    broken = invoke("fhir", "read", write(tmp_path / "p.json", bundle(patient(gender="?"))))
    assert broken.exit_code == 2 and "entry[0].resource.gender" in broken.stderr
