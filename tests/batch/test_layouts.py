"""The input layouts, one by one: normalised tables (Parquet, CSV; long and wide answers), JSON
Lines and OMOP CDM, including missing tables, duplicate rows, unknown codes and bad files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from ketascreen.batch.engines import DuckDBRunner
from ketascreen.batch.inputs import detect_layout
from ketascreen.batch.run import prepare, screen_tables
from ketascreen.core.engine import CompiledKnowledgeBase
from ketascreen.errors import InputError
from ketascreen.services import Screener
from tests.batch.compare import differences, engine_row, run

READY = {"readiness.own_choice": "true", "readiness.pressured": "false",
         "readiness.can_consent": "true", "readiness.expects_quick_fix": "false",
         "readiness.support_person": "true", "readiness.integration_support": "true",
         "readiness.open_to_therapy": "true", "readiness.can_attend_series": "true",
         "readiness.ride_home": "true", "symptoms.psychosis_now": "false",
         "symptoms.mania_now": "false", "symptoms.hallucinations_past": "false",
         "symptoms.dissociation": "none", "symptoms.suicidal": "none",
         "symptoms.suicide_attempt": "none"}


def _csv(folder: Path, name: str, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = [",".join(columns)]
    for r in rows:
        lines.append(",".join("" if r.get(c) is None else str(r[c]) for c in columns))
    (folder / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _complete(folder: Path, people: list[dict[str, Any]], *, answers: bool = True) -> None:
    """A tables folder where every must-have answer is given for every person."""
    _csv(folder, "people", people)
    ids = [p["person_id"] for p in people]
    if answers:
        _csv(folder, "answers", [{"person_id": i, "field": f, "value": v}
                                 for i in ids for f, v in READY.items()])
    _csv(folder, "vitals", [{"person_id": i, "systolic": 120, "diastolic": 75, "heart_rate": 70,
                             "taken_on": "2026-11-01"} for i in ids])


def _screen(runner: DuckDBRunner, folder: Path, ckb: CompiledKnowledgeBase, ref: date,
            reference: Screener) -> dict[Any, dict[str, Any]]:
    rows, intakes = run(runner, folder, ckb, ref)
    expected = {k: engine_row(reference, v, ref) for k, v in intakes.items()}
    assert not differences(rows, expected)
    return {str(r["id"]): r for r in rows.values()}


def _write_empty(folder: Path, name: str, header: str) -> None:
    (folder / f"{name}.csv").write_text(header + "\n", encoding="utf-8")


def test_tables_csv_semantics(tmp_path: Path, duck: DuckDBRunner, ckb: CompiledKnowledgeBase,
                              ref: date, reference: Screener) -> None:
    folder = tmp_path / "t"
    _complete(folder, [{"person_id": "a", "age": 45, "sex": "male"},
                       {"person_id": "b", "age": 45, "sex": "male"},
                       {"person_id": "c", "age": 30, "sex": "male", "route": "iv"}])
    for name, header in (("family_history", "person_id,code,relation"),
                         ("allergies", "person_id,substance"),
                         ("substances", "person_id,substance,status"),
                         ("medications", "person_id,name")):
        _write_empty(folder, name, header)
    _csv(folder, "conditions", [
        {"person_id": "a", "code": "F33.1"},
        # Identical rows count once: one item, one missing `controlled`.
        {"person_id": "b", "code": "I10"}, {"person_id": "b", "code": "I10"},
        # An unknown code is unrecognized, and a clinician must look at it.
        {"person_id": "c", "code": "X99.99"}])
    out = _screen(duck, folder, ckb, ref, reference)
    assert out["a"]["decision"] == "eligible"
    assert out["b"]["missing"][0] == {"field": "conditions[0].controlled", "blocking": True}
    assert [m["field"] for m in out["b"]["missing"]].count("conditions[1].controlled") == 0
    assert out["b"]["decision"] == "incomplete"
    assert out["c"]["unrecognized"] == [{"field": "conditions[0].code", "value": "X99.99"}]
    assert "vocab.unresolved_condition" in out["c"]["rules"]


def test_missing_tables_mean_not_asked(tmp_path: Path, duck: DuckDBRunner,
                                       ckb: CompiledKnowledgeBase, ref: date,
                                       reference: Screener) -> None:
    folder = tmp_path / "t"
    _complete(folder, [{"person_id": 1, "age": 40, "sex": "male"}])
    _csv(folder, "conditions", [{"person_id": 1, "code": "F33.1"}])
    out = _screen(duck, folder, ckb, ref, reference)
    fields = {m["field"]: m["blocking"] for m in out["1"]["missing"]}
    # No allergies, family history, substances or medications tables: never asked.
    for name in ("allergies", "family_history", "substances", "medications"):
        assert fields[name] is True
    assert out["1"]["decision"] == "incomplete"


def test_asked_flag_and_empty_table(tmp_path: Path, duck: DuckDBRunner,
                                    ckb: CompiledKnowledgeBase, ref: date,
                                    reference: Screener) -> None:
    folder = tmp_path / "t"
    _complete(folder, [{"person_id": 1, "age": 40, "sex": "male", "allergies_asked": "true"},
                       {"person_id": 2, "age": 40, "sex": "male", "allergies_asked": "false"}])
    _write_empty(folder, "allergies", "person_id,substance")
    out = _screen(duck, folder, ckb, ref, reference)
    assert "allergies" not in {m["field"] for m in out["1"]["missing"]}
    assert {"field": "allergies", "blocking": True} in out["2"]["missing"]


def test_duplicate_people_and_answers(tmp_path: Path, duck: DuckDBRunner,
                                      ckb: CompiledKnowledgeBase, ref: date) -> None:
    folder = tmp_path / "t"
    _complete(folder, [{"person_id": 1, "age": 40, "sex": "male"},
                       {"person_id": 1, "age": 40, "sex": "male"},
                       {"person_id": 2, "age": 40, "sex": "male"},
                       {"person_id": 2, "age": 41, "sex": "male"}])
    _norm, compiler = prepare(duck, str(folder), ckb=ckb, today=ref)
    screen_tables(duck, compiler)
    rows = {r[0]: r for r in duck.rows("SELECT id, decision, error FROM kx_output")}
    assert len(rows) == 2
    assert rows["1"][2] is None
    assert "appears on several rows that differ" in rows["2"][2]


def test_bad_values_name_table_column_and_value(tmp_path: Path, duck: DuckDBRunner,
                                                ckb: CompiledKnowledgeBase, ref: date) -> None:
    folder = tmp_path / "t"
    _complete(folder, [{"person_id": 1, "age": 40, "sex": "male"},
                       {"person_id": 2, "age": 300, "sex": "male"},
                       {"person_id": 3, "age": 40, "sex": "male"}])
    _csv(folder, "conditions", [{"person_id": 1, "code": "F33.1", "status": "active"},
                                {"person_id": 3, "code": "F33.1", "status": "actve",
                                 "since": "2027-01"}])
    _norm, compiler = prepare(duck, str(folder), ckb=ckb, today=ref)
    screen_tables(duck, compiler)
    rows = {r[0]: r for r in duck.rows("SELECT id, decision, error FROM kx_output")}
    assert rows["1"][2] is None and rows["1"][1] is not None
    assert rows["2"][1] is None
    assert "people.age: must be at most 120 (got '300')" in rows["2"][2]
    assert "conditions.status: must be one of active, remission, history (got 'actve')" in rows["3"][2]
    assert "conditions.since: 2027-01 is after the screening date 2026-11-16" in rows["3"][2]


def test_bad_files_are_refused_naming_file_and_column(tmp_path: Path, duck: DuckDBRunner,
                                                      ckb: CompiledKnowledgeBase,
                                                      ref: date) -> None:
    folder = tmp_path / "typo"
    _complete(folder, [{"person_id": 1, "age": 40}])
    _csv(folder, "conditions", [{"person_id": 1, "code": "F33.1", "statuss": "active"}])
    with pytest.raises(InputError) as err:
        prepare(duck, str(folder), ckb=ckb, today=ref)
    assert "conditions.csv" in str(err.value)
    assert "statuss: unknown column in conditions (did you mean 'status'?)" in str(err.value)

    folder = tmp_path / "nocol"
    _complete(folder, [{"person_id": 1, "age": 40}])
    _csv(folder, "vitals", [{"person_id": 1, "systolic": 120}])
    with pytest.raises(InputError) as err:
        prepare(DuckDBRunner(), str(folder), ckb=ckb, today=ref)
    assert "vitals.csv" in str(err.value)
    assert "diastolic: is required but the file has no such column" in str(err.value)

    folder = tmp_path / "type"
    folder.mkdir()
    pq.write_table(pa.table({"person_id": [1], "age": [[40]]}), folder / "people.parquet")
    with pytest.raises(InputError) as err:
        prepare(DuckDBRunner(), str(folder), ckb=ckb, today=ref)
    assert "people.parquet" in str(err.value)
    assert "age: has an unsupported type, expected a whole number" in str(err.value)

    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "people.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(InputError) as err:
        prepare(DuckDBRunner(), str(folder), ckb=ckb, today=ref)
    assert "people.parquet" in str(err.value)
    assert "cannot read the file" in str(err.value)


def test_long_and_wide_answers_agree(tmp_path: Path, ckb: CompiledKnowledgeBase, ref: date,
                                     reference: Screener) -> None:
    people = [{"person_id": i, "age": 30 + i, "sex": "female"} for i in range(1, 5)]
    answers: dict[str, list[Any]] = {
        "person_id": [1, 2, 3, 4],
        "indications": ["depression;ptsd", None, "anxiety", "ocd"],
        "symptoms.suicidal": ["none", "passive", "plan_or_intent", None],
        "pregnancy.pregnant": ["no", "yes", None, "unknown"],
        "readiness.pressured": [False, True, None, False],
        "instruments.phq9[8]": [0, 2, None, None],
        **{f"instruments.phq9[{i}]": [1, 2, None, None] for i in range(8)},
    }
    wide = tmp_path / "wide"
    _complete(wide, people, answers=False)
    pq.write_table(pa.table(answers), wide / "answers.parquet")
    long = tmp_path / "long"
    _complete(long, people, answers=False)
    rows = [{"person_id": pid, "field": f, "value": str(v).lower() if isinstance(v, bool) else v}
            for f, values in answers.items() if f != "person_id"
            for pid, value in zip(answers["person_id"], values, strict=True) if value is not None
            for v in (value.split(";") if f == "indications" else [value])]
    _csv(long, "answers", rows)
    a = _screen(DuckDBRunner(), wide, ckb, ref, reference)
    b = _screen(DuckDBRunner(), long, ckb, ref, reference)
    assert {k: (v["decision"], v["rules"], v["missing"]) for k, v in a.items()} == {
        k: (v["decision"], v["rules"], v["missing"]) for k, v in b.items()}
    assert "psych.suicide_high_risk" in a["3"]["rules"]


def test_latest_vitals_reading_counts(tmp_path: Path, duck: DuckDBRunner,
                                      ckb: CompiledKnowledgeBase, ref: date,
                                      reference: Screener) -> None:
    folder = tmp_path / "t"
    _complete(folder, [{"person_id": 1, "age": 40, "sex": "male", "route": "iv"}])
    _csv(folder, "vitals", [
        {"person_id": 1, "systolic": 190, "diastolic": 115, "taken_on": "2026-01-05"},
        {"person_id": 1, "systolic": 150, "diastolic": 92, "taken_on": "2026-11-10"},
        {"person_id": 1, "systolic": 200, "diastolic": 120}])
    out = _screen(duck, folder, ckb, ref, reference)
    assert out["1"]["rules"] == ["cardio.bp_stage1"]


def test_screening_date_per_person(tmp_path: Path, duck: DuckDBRunner,
                                   ckb: CompiledKnowledgeBase, ref: date,
                                   reference: Screener) -> None:
    folder = tmp_path / "t"
    _complete(folder, [{"person_id": 1, "age": 40, "sex": "male", "assessed_on": "2026-03-01"},
                       {"person_id": 2, "age": 40, "sex": "male"}])
    _csv(folder, "conditions", [{"person_id": 1, "code": "I21.9", "since": "2026-02"},
                                {"person_id": 2, "code": "I21.9", "since": "2026-02"}])
    _csv(folder, "vitals", [{"person_id": p, "systolic": 120, "diastolic": 75,
                             "taken_on": "2026-02-20"} for p in (1, 2)])
    out = _screen(duck, folder, ckb, ref, reference)
    assert "cardio.recent_major_event" in out["1"]["rules"]
    assert "cardio.recent_major_event" not in out["2"]["rules"]


def test_rows_for_unknown_people_are_reported(tmp_path: Path, duck: DuckDBRunner,
                                              ckb: CompiledKnowledgeBase, ref: date) -> None:
    folder = tmp_path / "t"
    _complete(folder, [{"person_id": 1, "age": 40}])
    _csv(folder, "conditions", [{"person_id": 1, "code": "F33.1"}, {"person_id": 9, "code": "F20.9"}])
    norm, _compiler = prepare(duck, str(folder), ckb=ckb, today=ref)
    assert any("not in people were left out (for example '9')" in n for n in norm.notes)


def test_jsonl_invalid_lines_keep_their_place(tmp_path: Path, duck: DuckDBRunner,
                                              ckb: CompiledKnowledgeBase, ref: date,
                                              reference: Screener) -> None:
    good = {"age": 40, "sex": "male", "conditions": [], "medications": [], "substances": []}
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([
        json.dumps({**good, "id": "first"}),
        "{not json",
        json.dumps({**good, "id": "bad", "vitals": {"systolic": 120, "diastolic": 130}}),
        "",
        json.dumps(good),
    ]) + "\n", encoding="utf-8")
    rows, _ = run(duck, path, ckb, ref)
    ordered = [rows[k] for k in sorted(rows)]
    assert [r["id"] for r in ordered] == ["first", None, "bad", None]
    assert ordered[0]["error"] is None
    assert "in.jsonl:2: not valid JSON" in ordered[1]["error"]
    assert "in.jsonl:3" in ordered[2]["error"] and "vitals" in ordered[2]["error"]
    assert ordered[3]["decision"] == engine_row(reference, good, ref)["decision"]


def _omop(folder: Path, concept: bool = True) -> None:
    _csv(folder, "person", [
        {"person_id": 1, "gender_concept_id": 8532, "year_of_birth": 1980, "month_of_birth": 5,
         "day_of_birth": 2},
        {"person_id": 2, "gender_concept_id": 8507, "year_of_birth": 2009},
        {"person_id": 3, "gender_concept_id": 8507, "year_of_birth": 1970}])
    _csv(folder, "condition_occurrence", [
        {"person_id": 1, "condition_concept_id": 4152280, "condition_start_date": "2019-03-01",
         "condition_source_value": "F33.1"},
        {"person_id": 1, "condition_concept_id": 4152280, "condition_start_date": "2024-03-01",
         "condition_source_value": "F33.1"},
        {"person_id": 2, "condition_concept_id": 435783, "condition_start_date": "2020-01-01",
         "condition_source_value": "F20.9"},
        # After the screening date: it had not happened yet.
        {"person_id": 3, "condition_concept_id": 435783, "condition_start_date": "2027-01-01",
         "condition_source_value": "F20.9"},
        {"person_id": 3, "condition_concept_id": 999, "condition_start_date": "2020-01-01",
         "condition_source_value": "local-123", "condition_source_concept_id": 45591463},
        {"person_id": 3, "condition_concept_id": 777, "condition_start_date": "2020-01-01",
         "condition_source_value": "zzz"}])
    _csv(folder, "drug_exposure", [
        {"person_id": 1, "drug_concept_id": 19078461, "drug_exposure_start_date": "2026-10-01",
         "drug_exposure_end_date": "2026-12-01", "drug_source_value": "x"},
        {"person_id": 3, "drug_concept_id": 0, "drug_exposure_start_date": "2020-01-01",
         "drug_exposure_end_date": "2020-02-01", "drug_source_value": "lorazepam"}])
    _csv(folder, "measurement", [
        {"person_id": 1, "measurement_concept_id": 3004249, "measurement_date": "2026-10-01",
         "value_as_number": 185},
        {"person_id": 1, "measurement_concept_id": 3012888, "measurement_date": "2026-10-01",
         "value_as_number": 100},
        {"person_id": 1, "measurement_concept_id": 0, "measurement_date": "2026-11-10",
         "value_as_number": 128, "measurement_source_value": "8480-6"},
        {"person_id": 1, "measurement_concept_id": 0, "measurement_date": "2026-11-10",
         "value_as_number": 82, "measurement_source_value": "8462-4"},
        {"person_id": 1, "measurement_concept_id": 3006923, "measurement_date": "2026-11-10",
         "value_as_number": 250}])
    _csv(folder, "observation", [
        {"person_id": 1, "observation_concept_id": 0, "observation_date": "2026-11-10",
         "observation_source_value": "ketascreen:symptoms.suicidal", "value_as_string": "passive"},
        {"person_id": 1, "observation_concept_id": 0, "observation_date": "2026-11-10",
         "observation_source_value": "Z33.1"}])
    if concept:
        _csv(folder, "concept", [
            {"concept_id": 19078461, "concept_name": "sertraline 50 MG Oral Tablet",
             "vocabulary_id": "RxNorm", "concept_code": "312940"},
            {"concept_id": 45591463, "concept_name": "Bipolar II disorder",
             "vocabulary_id": "ICD10CM", "concept_code": "F31.81"},
            {"concept_id": 777, "concept_name": "Essential hypertension",
             "vocabulary_id": "SNOMED", "concept_code": "59621000"}])


def test_omop_mapping(tmp_path: Path, duck: DuckDBRunner, ckb: CompiledKnowledgeBase, ref: date,
                      reference: Screener) -> None:
    folder = tmp_path / "omop"
    _omop(folder)
    assert detect_layout(str(folder)) == "omop"
    rows, intakes = run(duck, folder, ckb, ref)
    expected = {k: engine_row(reference, v, ref) for k, v in intakes.items()}
    assert not differences(rows, expected)
    one, two, three = intakes["1"], intakes["2"], intakes["3"]
    assert one["sex"] == "female" and one["age"] == 46
    assert one["conditions"][0] == {"code": "F33.1", "status": "active", "since": "2024-03-01"}
    assert {"code": "Z33.1", "status": "active", "since": "2026-11-10"} in one["conditions"]
    assert one["vitals"] == {"systolic": 128, "diastolic": 82, "taken_on": "2026-11-10"}
    assert one["medications"] == [{"name": "sertraline 50 MG Oral Tablet", "rxnorm": "312940",
                                   "schedule": "daily"}]
    assert one["symptoms"] == {"suicidal": "passive"} and one["labs"] == {"alt": 250.0}
    assert "substances" not in one and "allergies" not in one and "family_history" not in one
    assert two["age"] == 16  # born in 2009, birthday unknown: the younger reading
    assert {c.get("code") for c in three["conditions"]} == {"F31.81", None}
    assert {"name": "Essential hypertension", "status": "active", "since": "2020-01-01"} in (
        three["conditions"])
    assert three["medications"][0]["schedule"] == "stopped"
    by_id = {r["id"]: r for r in rows.values()}
    assert "psych.primary_psychotic_disorder" in by_id["2"]["rules"]
    assert "psych.primary_psychotic_disorder" not in by_id["3"]["rules"]
    assert "preg.pregnant" in by_id["1"]["rules"]
    assert {"field": "substances", "blocking": True} in by_id["1"]["missing"]


def test_omop_without_concepts_and_without_person(tmp_path: Path, duck: DuckDBRunner,
                                                  ckb: CompiledKnowledgeBase, ref: date,
                                                  reference: Screener) -> None:
    folder = tmp_path / "omop"
    _omop(folder, concept=False)
    rows, intakes = run(duck, folder, ckb, ref)
    assert not differences(rows, {k: engine_row(reference, v, ref) for k, v in intakes.items()})
    assert intakes["1"]["medications"] == [{"name": "x", "schedule": "daily"}]
    by_id = {r["id"]: r for r in rows.values()}
    assert {"field": "conditions[1].name", "value": "zzz"} in by_id["3"]["unrecognized"]
    (folder / "person.csv").unlink()
    with pytest.raises(InputError, match="cannot tell the layout"):
        detect_layout(str(folder))
    with pytest.raises(InputError, match="the OMOP person table is missing"):
        prepare(DuckDBRunner(), str(folder), ckb=ckb, today=ref, layout="omop")


def test_unknown_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        detect_layout(str(tmp_path / "nothing"))
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(InputError, match="JSON Lines"):
        detect_layout(str(tmp_path / "notes.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="cannot tell the layout"):
        detect_layout(str(tmp_path / "empty"))
