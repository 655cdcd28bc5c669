"""Differential tests: every person's batch result equals ``screen()`` on the same person.

Populations come from Hypothesis (every shape of intake the contract allows, as JSON Lines) and
from ``synth`` (normalised tables and OMOP). The same comparisons run on DuckDB and on Spark in
local mode. Compared: decision, urgent, the four routes, the fired rules (in order), the missing
answers (in order, with their blocking flag), the unrecognized inputs and the knowledge-base
hash; invalid intakes must be refused by both.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from ketascreen.batch import synth
from ketascreen.batch.engines import DuckDBRunner, SparkRunner
from ketascreen.core.engine import CompiledKnowledgeBase
from ketascreen.services import Screener
from tests.batch.compare import differences, engine_row, run, write_jsonl
from tests.batch.strategies import population

SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]


def _check_jsonl(runner: DuckDBRunner | SparkRunner, tmp: Path, intakes: list[dict[str, object]],
                 ckb: CompiledKnowledgeBase, reference: Screener, ref: date) -> int:
    path = write_jsonl(tmp / "population.jsonl", intakes)
    rows, _ = run(runner, path, ckb, ref)
    expected = {n: engine_row(reference, data, ref) for n, data in enumerate(intakes, start=1)}
    problems = differences(rows, expected)
    assert not problems, "\n".join(problems[:20])
    return len(rows)


@settings(max_examples=8, deadline=None, suppress_health_check=SLOW)
@given(people=population())
def test_hypothesis_population_duckdb(people: list[dict[str, object]], tmp_path: Path,
                                      ckb: CompiledKnowledgeBase, reference: Screener,
                                      ref: date) -> None:
    runner = DuckDBRunner(threads=2)
    try:
        assert _check_jsonl(runner, tmp_path, people, ckb, reference, ref) == len(people)
    finally:
        runner.close()


@settings(max_examples=1, deadline=None, suppress_health_check=SLOW, derandomize=True)
@given(people=population(min_size=18, max_size=18))
def test_hypothesis_population_spark(people: list[dict[str, object]], tmp_path: Path,
                                     spark: SparkRunner, ckb: CompiledKnowledgeBase,
                                     reference: Screener, ref: date) -> None:
    assert _check_jsonl(spark, tmp_path, people, ckb, reference, ref) == len(people)


def _check_synth(runner: DuckDBRunner | SparkRunner, folder: Path, ckb: CompiledKnowledgeBase,
                 reference: Screener, ref: date) -> dict[object, dict[str, object]]:
    rows, intakes = run(runner, folder, ckb, ref)
    expected = {key: engine_row(reference, data, ref) for key, data in intakes.items()}
    problems = differences(rows, expected)
    assert not problems, "\n".join(problems[:20])
    return rows


def test_synth_tables_duckdb(tmp_path: Path, duck: DuckDBRunner, ckb: CompiledKnowledgeBase,
                             reference: Screener, ref: date) -> None:
    synth.write_population(str(tmp_path / "pop"), 4000, seed=11, ref=ref)
    rows = _check_synth(duck, tmp_path / "pop", ckb, reference, ref)
    # The synthetic population's own intakes (generated, not read back) agree too.
    own = {int(i["id"]): engine_row(reference, i, ref)
           for c in synth.chunks(4000, 11, ref) for i in synth.to_intakes(c, ref)}
    assert not differences(rows, own)
    decisions = {r["decision"] for r in rows.values()}
    assert {"defer", "needs_evaluation", "incomplete", "eligible_with_precautions"} <= decisions


def test_synth_omop_duckdb(tmp_path: Path, duck: DuckDBRunner, ckb: CompiledKnowledgeBase,
                           reference: Screener, ref: date) -> None:
    synth.write_population(str(tmp_path / "omop"), 1500, seed=12, ref=ref, layout="omop")
    rows = _check_synth(duck, tmp_path / "omop", ckb, reference, ref)
    assert len(rows) == 1500


def test_synth_csv_tables_duckdb(tmp_path: Path, duck: DuckDBRunner, ckb: CompiledKnowledgeBase,
                                 reference: Screener, ref: date) -> None:
    synth.write_population(str(tmp_path / "csv"), 800, seed=13, ref=ref, fmt="csv")
    assert len(_check_synth(duck, tmp_path / "csv", ckb, reference, ref)) == 800


def test_synth_tables_and_omop_spark(tmp_path: Path, spark: SparkRunner,
                                     ckb: CompiledKnowledgeBase, reference: Screener,
                                     ref: date) -> None:
    synth.write_population(str(tmp_path / "pop"), 400, seed=14, ref=ref)
    assert len(_check_synth(spark, tmp_path / "pop", ckb, reference, ref)) == 400
    synth.write_population(str(tmp_path / "omop"), 200, seed=15, ref=ref, layout="omop")
    assert len(_check_synth(spark, tmp_path / "omop", ckb, reference, ref)) == 200
