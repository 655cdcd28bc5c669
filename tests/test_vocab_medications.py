"""The medication and allergen vocabularies: coverage, classes, and what names resolve to."""

from __future__ import annotations

import pytest

from ketascreen.core.kb import KnowledgeBase
from ketascreen.core.vocab import Lexicon, normalize_name

RULE_CLASSES = [
    "opioid", "opioid_maintenance", "addiction_treatment", "naltrexone", "benzodiazepine",
    "z_drug", "barbiturate", "gabapentinoid", "sedating_antipsychotic", "sedating_antihistamine",
    "muscle_relaxant", "psychostimulant", "maoi", "ssri", "snri", "tca", "antidepressant_other",
    "antipsychotic", "lithium", "mood_stabilizer_anticonvulsant", "lamotrigine", "anticonvulsant",
    "methylxanthine", "thyroid_hormone", "antithyroid", "sympathomimetic", "nmda_antagonist",
    "cyp_strong_inhibitor", "cyp_inducer", "antihypertensive", "anticoagulant",
    "cholinesterase_inhibitor", "ketamine",
]


@pytest.fixture(scope="module")
def lex(kb: KnowledgeBase) -> Lexicon:
    return Lexicon(kb.vocabulary)


def test_at_least_300_drug_names(kb: KnowledgeBase) -> None:
    names = {normalize_name(n) for d in kb.vocabulary.drugs
             for n in (d.name, *d.brands, *d.synonyms)}
    assert len(kb.vocabulary.drugs) >= 300
    assert len(names) >= 300


@pytest.mark.parametrize("cls", RULE_CLASSES)
def test_every_class_the_rules_use_has_drugs(kb: KnowledgeBase, cls: str) -> None:
    assert cls in kb.vocabulary.medication_classes
    assert any(cls in d.classes for d in kb.vocabulary.drugs), cls


@pytest.mark.parametrize(("name", "expected"), [
    ("Ativan", "benzodiazepine"), ("XANAX 0.5 mg", "benzodiazepine"), ("Klonopin", "benzodiazepine"),
    ("Ambien", "z_drug"), ("Lyrica", "gabapentinoid"), ("Seroquel", "sedating_antipsychotic"),
    ("Abilify", "antipsychotic"), ("Suboxone", "opioid_maintenance"), ("Percocet", "opioid"),
    ("Vivitrol", "naltrexone"), ("Antabuse", "addiction_treatment"), ("Adderall", "psychostimulant"),
    ("Nardil", "maoi"), ("Zoloft", "ssri"), ("Cymbalta", "snri"), ("amitriptyline", "tca"),
    ("Wellbutrin", "antidepressant_other"), ("Lithobid", "lithium"),
    ("Depakote", "mood_stabilizer_anticonvulsant"), ("Lamictal", "lamotrigine"),
    ("Keppra", "anticonvulsant"), ("theophylline", "methylxanthine"),
    ("Synthroid", "thyroid_hormone"), ("methimazole", "antithyroid"),
    ("Sudafed", "sympathomimetic"), ("Namenda", "nmda_antagonist"),
    ("clarithromycin", "cyp_strong_inhibitor"), ("rifampin", "cyp_inducer"),
    ("lisinopril", "antihypertensive"), ("Eliquis", "anticoagulant"), ("Plavix", "antiplatelet"),
    ("Aricept", "cholinesterase_inhibitor"), ("Spravato", "ketamine"), ("Ketalar", "ketamine"),
    ("hydroxyzine", "sedating_antihistamine"), ("Flexeril", "muscle_relaxant"),
])
def test_names_and_brands_resolve_to_classes(lex: Lexicon, name: str, expected: str) -> None:
    drug = lex.drug(name)
    assert drug is not None, name
    assert expected in drug.classes


@pytest.mark.parametrize("name", ["atorvastatin", "metformin", "Tylenol", "omeprazole",
                                  "albuterol"])
def test_common_drugs_are_recognised_without_a_class(lex: Lexicon, name: str) -> None:
    drug = lex.drug(name)
    assert drug is not None
    assert not drug.classes & set(RULE_CLASSES)


def test_unknown_names_resolve_to_nothing(lex: Lexicon) -> None:
    assert lex.drug("blorptazine") is None
    assert lex.allergy("zorbium") is None


def test_diazepam_equivalents_follow_ashton(lex: Lexicon) -> None:
    for name, factor in (("diazepam", 1.0), ("lorazepam", 10.0), ("alprazolam", 20.0),
                         ("clonazepam", 20.0)):
        drug = lex.drug(name)
        assert drug is not None
        assert drug.diazepam_equivalent == factor, name


@pytest.mark.parametrize(("substance", "cls"), [
    ("ketamine", "ketamine"), ("Spravato", "ketamine"), ("general anaesthesia", "anesthetic"),
    ("propofol", "anesthetic"), ("latex", "non_drug"), ("peanuts", "non_drug"),
    ("sulfa", "drug_class"), ("penicillin", "drug"),
])
def test_allergies_resolve(lex: Lexicon, substance: str, cls: str) -> None:
    classes = lex.allergy(substance)
    assert classes is not None, substance
    assert cls in classes
