"""Every rule carries its own examples; one test runs them all, and the lint must be clean."""

from __future__ import annotations

import pytest

from ketascreen.core.kb import KnowledgeBase
from ketascreen.core.lint import check_examples, lint_knowledge_base
from ketascreen.services import load_knowledge_base
from ketascreen.testing import BASELINE_DATE, merge_intake

KB = load_knowledge_base()


def test_structural_lint_is_clean(kb: KnowledgeBase) -> None:
    assert lint_knowledge_base(kb) == []


@pytest.mark.parametrize("rule_id", sorted(r.id for r in KB.rules))
def test_rule_examples(rule_id: str) -> None:
    problems = check_examples(KB, merge_intake, BASELINE_DATE, only={rule_id})
    assert [str(p) for p in problems] == []


def test_every_rule_has_a_firing_and_a_quiet_example(kb: KnowledgeBase) -> None:
    for rule in kb.rules:
        expects = {e.expect for e in rule.examples}
        assert {"fires", "not_fired"} <= expects, rule.id


def test_every_seed_claim_is_traced(kb: KnowledgeBase) -> None:
    expected = {f"A-{i:02d}" for i in range(1, 28)} | {f"B-{i:02d}" for i in range(1, 16)}
    assert set(kb.claims) == expected
    in_rules = {c for r in kb.rules for c in r.claims}
    for cid, claim in kb.claims.items():
        assert cid in in_rules or claim.features, cid
        if claim.treatment == "adopted_with_change":
            assert claim.why, cid


def test_every_rule_cites_a_known_source(kb: KnowledgeBase) -> None:
    for rule in kb.rules:
        assert rule.sources
        assert all(s in kb.sources for s in rule.sources), rule.id


def test_urgent_rules_give_crisis_contacts(kb: KnowledgeBase) -> None:
    for rule in kb.rules:
        if rule.urgent:
            assert "{crisis_contacts}" in rule.patient, rule.id


def test_label_contraindications_carry_a_safety_floor(kb: KnowledgeBase) -> None:
    floors = {r.id: r.safety_floor for r in kb.rules}
    excl = [r for r in kb.rules if r.severity == "exclude" and r.category in (
        "cardiovascular", "allergy")]
    assert excl, "aneurysm, ICH and hypersensitivity rules exist"
    for rule in excl:
        assert floors[rule.id] == "exclude", rule.id
