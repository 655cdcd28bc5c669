"""The compiler: protocols change the SQL exactly as they change the engine; whatever the SQL
cannot reproduce is refused with the rule and the predicate named."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from ketascreen.batch import synth
from ketascreen.batch.compiler import BatchCompileError, Compiler
from ketascreen.batch.engines import DuckDBRunner
from ketascreen.core.engine import CompiledKnowledgeBase
from ketascreen.core.kb import KnowledgeBase, Protocol
from ketascreen.services import Screener, load_protocol
from tests.batch.compare import differences, engine_row, run


def _rule(kb: KnowledgeBase, rule_id: str, when: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base = kb.rule("ready.no_ride_home").model_dump(mode="json", by_alias=True, exclude={"when"})
    return {**base, "id": rule_id, "when": when, **extra}


def _protocol(tmp: Path, kb: KnowledgeBase, body: dict[str, Any]) -> Protocol:
    path = tmp / "protocol.yaml"
    path.write_text(yaml.safe_dump({"name": "test-clinic", "version": "1", **body}),
                    encoding="utf-8")
    return load_protocol(path, kb)


def test_protocol_overrides_match_the_engine(tmp_path: Path, kb: KnowledgeBase, ref: date) -> None:
    added = _rule(kb, "local.older_on_benzodiazepine", {"all": [
        {"age": {"gte": 60}}, {"medication": {"classes": ["benzodiazepine"]}}]},
        severity="defer", title="Older and on a benzodiazepine")
    protocol = _protocol(tmp_path, kb, {
        "confirm_at_first_visit": ["vitals", "readiness.ride_home"],
        "overrides": {
            "cardio.bp_stage2": {"params": {"systolic": 150, "diastolic": 95},
                                 "reason": "anaesthetist"},
            "psych.family_psychosis_first_degree": {"severity": "exclude", "reason": "policy"},
            "subst.alcohol_cannabis_current": {"enabled": False, "reason": "not our concern"},
            "age.older_adult": {"urgent": True, "reason": "flag older people today"},
        },
        "add_rules": [added],
    })
    ckb = CompiledKnowledgeBase(kb, protocol)
    synth.write_population(str(tmp_path / "pop"), 1500, seed=21, ref=ref)
    runner = DuckDBRunner(threads=2)
    try:
        rows, intakes = run(runner, tmp_path / "pop", ckb, ref)
    finally:
        runner.close()
    screener = Screener(kb, protocol)
    assert not differences(rows, {k: engine_row(screener, v, ref) for k, v in intakes.items()})
    fired = [r for row in rows.values() for r in (row["rules"] or [])]
    assert "local.older_on_benzodiazepine" in fired
    assert "subst.alcohol_cannabis_current" not in fired
    assert all(row["protocol"] == "test-clinic" for row in rows.values())
    assert any(m["field"] == "vitals" and not m["blocking"]
               for row in rows.values() for m in (row["missing"] or []))


def test_free_text_equality_is_refused(tmp_path: Path, kb: KnowledgeBase) -> None:
    rule = _rule(kb, "local.same_reaction", {"answer": {
        "field": "prior_ketamine.adverse_reaction", "equals": "felt sick"}})
    protocol = _protocol(tmp_path, kb, {"add_rules": [rule]})
    with pytest.raises(BatchCompileError) as err:
        Compiler(CompiledKnowledgeBase(kb, protocol))
    message = str(err.value)
    assert "rule local.same_reaction" in message
    assert '"field": "prior_ketamine.adverse_reaction"' in message
    assert "compares free text exactly" in message


def test_unknown_predicate_is_refused(kb: KnowledgeBase) -> None:
    class Odd:
        kind = "astrology"

        def model_dump(self, **_: Any) -> dict[str, str]:
            return {"kind": "astrology", "sign": "leo"}

    bad = kb.rules[0].model_construct(**{**dict(kb.rules[0]), "id": "local.stars",
                                        "when": Odd()})
    with pytest.raises(BatchCompileError) as err:
        Compiler(_ckb_with_rules(kb, [bad]))
    assert "rule local.stars" in str(err.value)
    assert "astrology" in str(err.value)


def _ckb_with_rules(kb: KnowledgeBase, rules: list[Any]) -> CompiledKnowledgeBase:
    """A compiled knowledge base whose rule list is replaced (the engine's own compilation of
    these rules is not needed to test the SQL compiler's refusal)."""
    ckb = CompiledKnowledgeBase(kb)

    class Holder:
        def __init__(self, rule: Any) -> None:
            self.rule = rule

    ckb.rules = [Holder(r) for r in rules]  # type: ignore[misc]
    return ckb


def test_every_packaged_rule_compiles(ckb: CompiledKnowledgeBase) -> None:
    compiler = Compiler(ckb)
    assert {v.rule.id for v in compiler.variants} == {r.id for r in ckb.kb.rules}
    output = compiler.output_select("v", "sha", "p", "psha")
    assert all(f"'{r.id}'" in output for r in ckb.kb.rules)
    # Generated for Spark by SQLGlot: no DuckDB-only list functions survive.
    spark = compiler.ranks_select().sql("spark")
    assert "LIST_" not in spark.upper() and "ARRAY_LENGTH" not in spark.upper()
