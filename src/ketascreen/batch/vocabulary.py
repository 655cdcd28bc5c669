"""Vocabularies as joined tables: what each distinct code or name in the input resolves to.

Free text is resolved by the very ``Lexicon`` the per-patient engine uses, once per distinct
value (a million people name a few thousand drugs), into small tables the SQL joins:

- ``kv_conditions(raw_code, raw_name, code, name_norm)`` for conditions and family history:
  ``code`` is the ICD-10-CM code without its dot, NULL when unresolved;
- ``kv_medications(raw_name, raw_rxnorm, drug, classes, dzp)``: ``drug`` NULL when unresolved,
  ``classes`` the drug's medication classes, ``dzp`` its diazepam equivalence;
- ``kv_allergies(raw_substance, classes)``: ``classes`` NULL when unresolved.

Code patterns (``F20``, ``I20-I25``, ``F1?.?5``) and classes are matched in SQL, on these tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ketascreen.batch.engines import Runner
from ketascreen.core.vocab import Lexicon, normalize_name

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]


def _table(columns: dict[str, list[object]], types: dict[str, pa.DataType]) -> pa.Table:
    import pyarrow as pa

    return pa.table({k: pa.array(v, type=types[k]) for k, v in columns.items()})


def register_vocabularies(runner: Runner, lexicon: Lexicon) -> None:
    import pyarrow as pa

    pairs = runner.rows("SELECT DISTINCT code, name FROM (SELECT code, name FROM kt_conditions "
                        "UNION ALL SELECT code, name FROM kt_family_history) AS u")
    cond: dict[str, list[object]] = {"raw_code": [], "raw_name": [], "code": [], "name_norm": []}
    for code, name in pairs:
        resolved = lexicon.condition(code, name)
        cond["raw_code"].append(code)
        cond["raw_name"].append(name)
        cond["code"].append(resolved.code if resolved else None)
        cond["name_norm"].append(normalize_name(name) if name else "")
    runner.register_arrow("kv_conditions", _table(cond, {
        "raw_code": pa.string(), "raw_name": pa.string(), "code": pa.string(),
        "name_norm": pa.string()}))

    meds: dict[str, list[object]] = {"raw_name": [], "raw_rxnorm": [], "drug": [], "classes": [],
                                     "dzp": []}
    for name, rxnorm in runner.rows("SELECT DISTINCT name, rxnorm FROM kt_medications "
                                    "WHERE name IS NOT NULL"):
        info = lexicon.drug(name, rxnorm)
        meds["raw_name"].append(name)
        meds["raw_rxnorm"].append(rxnorm)
        meds["drug"].append(info.name if info else None)
        meds["classes"].append(sorted(info.classes) if info else [])
        meds["dzp"].append(info.diazepam_equivalent if info else None)
    runner.register_arrow("kv_medications", _table(meds, {
        "raw_name": pa.string(), "raw_rxnorm": pa.string(), "drug": pa.string(),
        "classes": pa.list_(pa.string()), "dzp": pa.float64()}))

    allergies: dict[str, list[object]] = {"raw_substance": [], "classes": []}
    for (substance,) in runner.rows("SELECT DISTINCT substance FROM kt_allergies "
                                    "WHERE substance IS NOT NULL"):
        classes = lexicon.allergy(substance)
        allergies["raw_substance"].append(substance)
        allergies["classes"].append(sorted(classes) if classes is not None else None)
    runner.register_arrow("kv_allergies", _table(allergies, {
        "raw_substance": pa.string(), "classes": pa.list_(pa.string())}))
