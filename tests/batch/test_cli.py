"""``ketascreen batch`` and ``ketascreen synth``: outputs, the summary page, exit statuses,
and synthetic populations that repeat with their seed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.csv as pacsv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from typer.testing import CliRunner

from ketascreen.batch.layout import ANSWER_FIELDS, TABLES
from ketascreen.batch.run import OUTPUT_COLUMNS
from ketascreen.cli.app import app

DATE = "2026-11-16"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "population.md"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KETASCREEN_PROTOCOL", "KETASCREEN_CRISIS_CONTACTS", "KETASCREEN_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "pop"
    result = CliRunner().invoke(app, ["synth", "--people", "600", "--out", str(out), "--seed",
                                      "7", "--date", DATE])
    assert result.exit_code == 0, result.output
    return out


def test_synth_repeats_with_its_seed(tmp_path: Path, population: Path) -> None:
    again = tmp_path / "again"
    other = tmp_path / "other"
    runner = CliRunner()
    assert runner.invoke(app, ["synth", "-n", "600", "-o", str(again), "--seed", "7", "--date",
                               DATE]).exit_code == 0
    assert runner.invoke(app, ["synth", "-n", "600", "-o", str(other), "--seed", "8", "--date",
                               DATE]).exit_code == 0
    for table in ("people", "conditions", "medications", "answers"):
        first = pq.read_table(population / f"{table}.parquet")
        assert first.equals(pq.read_table(again / f"{table}.parquet")), table
        assert not first.equals(pq.read_table(other / f"{table}.parquet")), table


def test_synth_layouts(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["synth", "-n", "50", "-o", str(tmp_path / "j"), "--layout",
                                 "jsonl", "--date", DATE])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "j" / "intakes.jsonl").read_text().splitlines()
    assert len(lines) == 50 and json.loads(lines[0])["id"] == "1"
    result = runner.invoke(app, ["synth", "-n", "50", "-o", str(tmp_path / "o"), "--layout",
                                 "omop", "--format", "csv", "--date", DATE])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "o").iterdir()} >= {
        "person.csv", "condition_occurrence.csv", "drug_exposure.csv", "measurement.csv",
        "observation.csv"}


def test_batch_parquet_with_summary(tmp_path: Path, population: Path) -> None:
    out = tmp_path / "results.parquet"
    page = tmp_path / "summary.html"
    result = CliRunner().invoke(app, ["batch", str(population), "--out", str(out), "--date",
                                      DATE, "--summary-html", str(page)])
    assert result.exit_code == 0, result.output
    assert "Population screening: 600 people" in result.output
    table = pq.read_table(out)
    assert table.column_names == list(OUTPUT_COLUMNS)
    assert table.num_rows == 600
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 601)]
    assert all(r["error"] is None and r["decision"] for r in rows)
    html = page.read_text(encoding="utf-8")
    assert html.count('role="img"') >= 3 and "<title" in html
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    found = re.search(r"<strong>([\d,]+)</strong>people", html)
    assert found is not None
    assert int(found.group(1).replace(",", "")) == 600
    for decision in {r["decision"] for r in rows}:
        count = sum(1 for r in rows if r["decision"] == decision)
        assert f">{count:,}<" in html


def test_batch_csv_writes_lists_as_json(tmp_path: Path, population: Path) -> None:
    out = tmp_path / "results.csv"
    result = CliRunner().invoke(app, ["batch", str(population), "-o", str(out), "--date", DATE,
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    rows = pacsv.read_csv(out).to_pylist()
    assert len(rows) == 600
    for row in rows[:50]:
        assert isinstance(json.loads(row["rules"]), list)
        assert all(set(m) == {"field", "blocking"} for m in json.loads(row["missing"]))


def test_batch_exit_statuses(tmp_path: Path, population: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"age": 300, "conditions": [], "medications": [], "substances": []}\n'
                   '{"age": 40, "conditions": [], "medications": [], "substances": []}\n')
    result = runner.invoke(app, ["batch", str(bad), "-o", str(tmp_path / "r.parquet"),
                                 "--date", DATE, "--quiet"])
    assert result.exit_code == 2
    assert "in.jsonl:1: age: must be at most 120" in result.output
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 2
    result = runner.invoke(app, ["batch", str(population), "-o", str(tmp_path / "r.txt"),
                                 "--date", DATE])
    assert result.exit_code == 2 and "must end in .parquet or .csv" in result.output
    result = runner.invoke(app, ["batch", str(tmp_path / "missing"), "-o",
                                 str(tmp_path / "r.parquet")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
    result = runner.invoke(app, ["batch", str(population), "-o", str(tmp_path / "r.parquet"),
                                 "--date", "16/11/2026"])
    assert result.exit_code == 2 and "--date" in result.output


def test_docs_describe_every_table_column_and_answer() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for table in TABLES:
        assert f"`{table.name}`" in text, table.name
        for column in table.columns:
            assert f"`{column.name}`" in text, f"{table.name}.{column.name}"
    for answer in ANSWER_FIELDS:
        head = answer.field.split("[", 1)[0]
        assert head in text, answer.field
