"""The registered population as contract intakes: what each person's rows mean, one by one.

Whatever the input layout (JSON Lines, normalised tables, OMOP), it is read into the same typed
tables; this turns them back into intakes, with list items in the order and with the
de-duplication the batch path uses. It is the reference the differential tests screen with the
per-patient engine, and a way to look at one person of a population in full
(``ketascreen screen`` on the intake it yields).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ketascreen.batch import layout as L
from ketascreen.batch.engines import Runner

# Item columns of each list, in the order that numbers the items (after ``seq``).
LIST_ORDER: dict[str, tuple[str, ...]] = {
    "conditions": ("code", "name", "status", "controlled", "since", "until"),
    "family_history": ("code", "name", "relation"),
    "medications": ("name", "rxnorm", "dose", "daily_mg", "schedule", "stopped_on"),
    "allergies": ("substance", "reaction"),
    "substances": ("substance", "status", "disorder", "last_use", "recovery_support"),
}


def _grouped(runner: Runner, query: str) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for row in runner.arrow(query).to_pylist():
        out.setdefault(row.pop("person_id"), []).append(row)
    return out


def to_intakes(runner: Runner, *, where: str | None = None) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(person key, intake) for every person of the registered input, in output order.

    ``where`` (SQL on ``person_id``) limits it to some people, e.g. a sample.
    """
    limit = f" WHERE {where}" if where else ""
    lists: dict[str, dict[Any, list[dict[str, Any]]]] = {}
    for name, order in LIST_ORDER.items():
        cols = ", ".join(order)
        sort = ", ".join(f"{c} NULLS FIRST" for c in ("seq", *order))
        lists[name] = _grouped(runner, f"SELECT person_id, {cols} FROM (SELECT DISTINCT "
                                       f"person_id, seq, {cols} FROM kt_{name}{limit}) AS d "
                                       f"ORDER BY person_id, {sort}")
    vitals = {r.pop("person_id"): r for r in runner.arrow(
        f"SELECT person_id, systolic, diastolic, heart_rate, taken_on FROM kt_vitals1{limit}"
    ).to_pylist()}
    answer_cols = [a for a in L.ANSWER_FIELDS if not a.multi]
    answers = {r.pop("person_id"): r for r in runner.arrow(
        "SELECT person_id, " + ", ".join(f'"ind_{v}"' for v in L.INDICATIONS) + ", "
        + ", ".join(f'"{a.column}"' for a in answer_cols) + f" FROM kt_answers{limit}"
    ).to_pylist()}
    people = runner.arrow(
        "SELECT p.person_id, p.id, p.as_of, p.age, p.sex, p.route, p.setting, p.pregnancy_asked, "
        + ", ".join(f"k.{t.name}_asked" for t in L.LIST_TABLES)
        + " FROM kt_people AS p JOIN ks_people AS k ON p.person_id = k.person_id"
        + (f" WHERE p.{where}" if where else "") + " ORDER BY p.ord NULLS LAST, p.person_id"
    ).to_pylist()
    for p in people:
        key = p["person_id"]
        intake: dict[str, Any] = {"id": p["id"], "assessed_on": p["as_of"].isoformat()}
        for field in ("age", "sex", "route", "setting"):
            if p[field] is not None:
                intake[field] = p[field]
        for name in LIST_ORDER:
            if not p[f"{name}_asked"]:
                continue
            intake[name] = [{k: v for k, v in item.items() if v is not None}
                            for item in lists[name].get(key, [])]
        reading = vitals.get(key)
        if reading is not None:
            intake["vitals"] = {k: v for k, v in reading.items() if v is not None}
        row = answers.get(key)
        if row is not None:
            intake.update(_answers(row, answer_cols))
        if p["pregnancy_asked"] and "pregnancy" not in intake:
            intake["pregnancy"] = {}
        yield key, intake


def _answers(row: dict[str, Any], fields: list[L.AnswerField]) -> dict[str, Any]:
    from ketascreen.batch.synth import answers_to_intake

    values: dict[str, Any] = {}
    picked = [v for v in L.INDICATIONS if row.get(f"ind_{v}")]
    if picked:
        values["indications"] = ";".join(picked)
    for a in fields:
        value = row.get(a.column)
        if value is not None:
            values[a.field] = value
    out = answers_to_intake(values)
    pk = out.get("prior_ketamine")
    if isinstance(pk, dict) and "received" in pk:
        pk.setdefault("misuse", False)
    return out
