"""knowledge/vocab/snomed_icd10.yaml: well-formed SNOMED CT ids, real ICD-10-CM targets."""

from __future__ import annotations

from ketascreen.adapters.fhir_r4 import snomed_map
from ketascreen.core.kb import KnowledgeBase
from ketascreen.core.vocab import Lexicon

# Verhoeff tables: every SNOMED CT identifier ends in a Verhoeff check digit, so a mistyped
# concept id is caught here rather than silently mapping to nothing (or to the wrong thing).
_D = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
      [2, 3, 4, 0, 1, 7, 8, 9, 5, 6], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
      [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
      [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
      [8, 7, 6, 5, 9, 3, 2, 1, 0, 4], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_P = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
      [5, 8, 0, 3, 7, 9, 6, 1, 4, 2], [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
      [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
      [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]


def verhoeff_ok(number: str) -> bool:
    check = 0
    for i, ch in enumerate(reversed(number)):
        check = _D[check][_P[i % 8][int(ch)]]
    return check == 0


def test_the_check_digit_test_itself_works() -> None:
    assert verhoeff_ok("38341003")  # hypertensive disorder
    assert not verhoeff_ok("38341004")


def test_every_snomed_id_is_well_formed_and_listed_once() -> None:
    m = snomed_map()
    assert len(m.icd10cm) >= 60
    for sctid, display in m.display.items():
        assert sctid.isdigit() and 6 <= len(sctid) <= 18, sctid
        assert sctid[-2] == "0", f"{sctid}: the partition digit of a concept id is 0"
        assert verhoeff_ok(sctid), f"{sctid} ({display}) fails its Verhoeff check digit"
        assert display, sctid


def test_every_target_is_a_code_of_the_icd10cm_code_set(kb: KnowledgeBase) -> None:
    lex = Lexicon(kb.vocabulary)
    bad = {s: c for s, c in snomed_map().icd10cm.items() if not lex.is_valid_code(c)}
    assert not bad


def test_the_rules_main_conditions_have_a_map(kb: KnowledgeBase) -> None:
    targets = set(snomed_map().icd10cm.values())
    for code in ("F20.9", "F25.9", "F29", "F31.9", "I10", "I61.9", "I67.1", "G40.909",
                 "H40.9", "E05.90", "E03.9", "G47.33", "J44.9", "K74.60", "Z33.1", "R45.851"):
        assert code in targets, code
