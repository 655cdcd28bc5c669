"""A realistic synthetic population, seeded so that runs repeat, for tests, demos and benchmarks.

People look like adults referred to a ketamine clinic from psychiatric care: mostly depression
(often treatment-resistant), anxiety and PTSD, some bipolar disorder and substance use, the
usual physical comorbidities (hypertension, thyroid disease, sleep apnoea…) and the medicines
that go with them. Prevalences are rough figures for an adult psychiatric outpatient population
(see ``docs/population.md``); a few unknown codes and drug names are included on purpose, and
some answers are left unasked, as in real intakes. Nobody here is a real person.

The generator is pure Python (``random.Random``), chunked so memory stays flat; chunk ``k`` is
drawn from its own seed derived from ``(seed, k)``, so the same seed always gives the same files.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ketascreen.batch import layout as L

CHUNK = 50_000

# (code, share of people, statuses with weights, can be controlled)
CONDITIONS: list[tuple[str, float, tuple[tuple[str, float], ...], bool]] = [
    ("F33.1", 0.30, (("active", 0.9), ("remission", 0.1)), False),
    ("F33.2", 0.12, (("active", 1.0),), False),
    ("F32.A", 0.10, (("active", 1.0),), False),
    ("F32.1", 0.08, (("active", 0.8), ("history", 0.2)), False),
    ("F41.1", 0.30, (("active", 1.0),), False),
    ("F43.10", 0.10, (("active", 1.0),), False),
    ("F43.12", 0.05, (("active", 1.0),), False),
    ("F41.0", 0.06, (("active", 0.8), ("history", 0.2)), False),
    ("F42.2", 0.03, (("active", 1.0),), False),
    ("F31.81", 0.03, (("active", 0.7), ("remission", 0.3)), False),
    ("F31.32", 0.02, (("active", 0.6), ("remission", 0.4)), False),
    ("F31.9", 0.015, (("active", 1.0),), False),
    ("F34.1", 0.04, (("active", 1.0),), False),
    ("F60.3", 0.04, (("active", 1.0),), False),
    ("F60.5", 0.01, (("active", 1.0),), False),
    ("F90.0", 0.08, (("active", 1.0),), False),
    ("F20.9", 0.004, (("active", 0.5), ("history", 0.5)), False),
    ("F25.0", 0.004, (("active", 0.5), ("history", 0.5)), False),
    ("F23", 0.004, (("history", 1.0),), False),
    ("F44.81", 0.004, (("active", 1.0),), False),
    ("F10.20", 0.05, (("active", 1.0),), False),
    ("F10.21", 0.04, (("active", 1.0),), False),
    ("F11.20", 0.012, (("active", 1.0),), False),
    ("F11.21", 0.01, (("active", 1.0),), False),
    ("F12.10", 0.03, (("active", 1.0),), False),
    ("F14.21", 0.006, (("active", 1.0),), False),
    ("F17.210", 0.12, (("active", 1.0),), False),
    ("I10", 0.18, (("active", 1.0),), True),
    ("E03.9", 0.07, (("active", 1.0),), True),
    ("E05.00", 0.004, (("active", 0.6), ("history", 0.4)), True),
    ("G47.33", 0.06, (("active", 1.0),), True),
    ("J45.909", 0.08, (("active", 1.0),), False),
    ("J44.9", 0.02, (("active", 1.0),), False),
    ("E11.9", 0.07, (("active", 1.0),), False),
    ("E78.5", 0.12, (("active", 1.0),), False),
    ("G43.909", 0.08, (("active", 1.0),), False),
    ("M79.7", 0.03, (("active", 1.0),), False),
    ("G40.909", 0.008, (("active", 1.0),), False),
    ("S06.0X0A", 0.01, (("history", 1.0),), False),
    ("H40.11X0", 0.008, (("active", 1.0),), False),
    ("N18.30", 0.015, (("active", 1.0),), False),
    ("K76.0", 0.03, (("active", 1.0),), False),
    ("K74.60", 0.002, (("active", 1.0),), False),
    ("I25.10", 0.025, (("active", 1.0),), False),
    ("I48.91", 0.012, (("active", 1.0),), False),
    ("I21.9", 0.002, (("active", 0.5), ("history", 0.5)), False),
    ("I63.9", 0.004, (("history", 1.0),), False),
    ("I71.20", 0.001, (("active", 1.0),), False),
    ("G30.9", 0.002, (("active", 1.0),), False),
    ("R45.851", 0.02, (("active", 1.0),), False),
    ("Z91.51", 0.03, (("history", 1.0),), False),
]
FREE_TEXT = ["high blood pressure", "depression", "anxiety", "migraines", "sleep apnea",
             "underactive thyroid", "ptsd", "acid reflux"]
UNKNOWN_CODES = ["X99.99", "F99.9Z", "U07.1Q"]

# (name, share, daily mg choices or None)
MEDICATIONS: list[tuple[str, float, tuple[float, ...] | None]] = [
    ("sertraline", 0.16, None), ("escitalopram", 0.12, None), ("Lexapro", 0.03, None),
    ("fluoxetine", 0.08, None), ("venlafaxine", 0.08, None), ("duloxetine", 0.08, None),
    ("bupropion", 0.18, None), ("trazodone", 0.14, None), ("mirtazapine", 0.07, None),
    ("lorazepam", 0.07, (0.5, 1.0, 2.0, 4.0)), ("clonazepam", 0.08, (0.5, 1.0, 2.0)),
    ("alprazolam", 0.05, (0.5, 1.0, 2.0)), ("zolpidem", 0.04, None),
    ("gabapentin", 0.07, None), ("quetiapine", 0.09, None), ("aripiprazole", 0.07, None),
    ("lithium", 0.03, None), ("lamotrigine", 0.06, None), ("valproate", 0.02, None),
    ("Adderall", 0.05, None), ("methylphenidate", 0.03, None), ("oxycodone", 0.025, None),
    ("buprenorphine", 0.012, None), ("methadone", 0.006, None), ("naltrexone", 0.015, None),
    ("levothyroxine", 0.07, None), ("lisinopril", 0.09, None), ("amlodipine", 0.07, None),
    ("metformin", 0.06, None), ("atorvastatin", 0.11, None), ("omeprazole", 0.08, None),
    ("theophylline", 0.002, None), ("phenelzine", 0.004, None), ("memantine", 0.003, None),
    ("prazosin", 0.03, None), ("hydroxyzine", 0.06, None),
]
UNKNOWN_DRUGS = ["herbal sleep blend", "grandma's tonic", "vitamin mix 3000"]
ALLERGIES = [("penicillin", 0.08), ("sulfa drugs", 0.03), ("codeine", 0.015), ("peanuts", 0.02),
             ("latex", 0.01), ("general anaesthetic", 0.003), ("ketamine", 0.001),
             ("mystery rash cream", 0.002)]
# substance: (share current, share past, share of users with a use disorder)
SUBSTANCE_USE = {
    "alcohol": (0.50, 0.15, 0.08), "cannabis": (0.15, 0.18, 0.10), "nicotine": (0.15, 0.10, 0.0),
    "cocaine": (0.01, 0.05, 0.25), "opioids": (0.01, 0.03, 0.45), "stimulants": (0.01, 0.03, 0.2),
    "hallucinogens": (0.01, 0.07, 0.05), "ketamine": (0.003, 0.01, 0.1),
    "sedatives": (0.01, 0.02, 0.2),
}
INDICATIONS = [("treatment_resistant_depression", 0.42), ("depression", 0.35), ("ptsd", 0.12),
               ("anxiety", 0.15), ("bipolar_depression", 0.04), ("ocd", 0.02),
               ("chronic_pain", 0.04), ("suicidal_ideation", 0.05)]
FAMILY = [("F32.9", 0.25), ("F31.9", 0.05), ("F20.9", 0.02), ("F10.20", 0.10), ("F41.9", 0.15)]
RELATIONS = ["mother", "father", "sibling", "child", "grandparent", "aunt_uncle", "cousin"]


def _pick(rnd: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    x = rnd.random() * sum(w for _v, w in weighted)
    for value, w in weighted:
        x -= w
        if x < 0:
            return value
    return weighted[-1][0]


def _date(rnd: random.Random, ref: date, lo_days: int, hi_days: int, partial: float = 0.2) -> str:
    day = ref - timedelta(days=rnd.randint(lo_days, hi_days))
    r = rnd.random()
    if r < partial / 2:
        return f"{day.year:04d}"
    if r < partial:
        # A month that has fully passed by the reference date.
        first = day.replace(day=1)
        if first.month == ref.month and first.year == ref.year:
            first = (first - timedelta(days=1)).replace(day=1)
        return f"{first.year:04d}-{first.month:02d}"
    return day.isoformat()


@dataclass
class Chunk:
    """One chunk of the population, as the normalised tables (column lists)."""

    tables: dict[str, dict[str, list[Any]]]


def _empty() -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = {}
    for t in L.TABLES:
        if t is L.ANSWERS_LONG:
            continue
        out[t.name] = {c.name: [] for c in t.columns}
    out["answers"] = {"person_id": []}
    return out


ANSWER_COLUMNS = ["indications"] + [a.field for a in L.ANSWER_FIELDS
                                    if a.group in ("symptoms", "readiness", "pregnancy",
                                                   "prior_ketamine", "labs")
                                    or a.field.startswith(("instruments.phq9[",
                                                           "instruments.cssrs_screen."))]


def generate_chunk(seed: int, chunk: int, first_id: int, count: int, ref: date) -> Chunk:
    rnd = random.Random(f"ketascreen-synth/{seed}/{chunk}")
    t = _empty()
    answers = t["answers"]
    for name in ANSWER_COLUMNS:
        answers[name] = []

    def row(table: str, **values: Any) -> None:
        cols = t[table]
        for name, lst in cols.items():
            lst.append(values.get(name))

    for pid in range(first_id, first_id + count):
        sex = _pick(rnd, (("female", 0.60), ("male", 0.375), ("intersex", 0.005), ("unknown", 0.02)))
        age = (rnd.randint(16, 17) if rnd.random() < 0.005
               else max(18, min(90, int(rnd.gauss(43, 13)))))
        route = _pick(rnd, (("", 0.40), ("iv", 0.25), ("intranasal", 0.15), ("oral", 0.15),
                            ("im", 0.05))) or None
        setting = _pick(rnd, (("", 0.85), ("home", 0.08), ("clinic", 0.07))) or None
        asked = {n: rnd.random() < p for n, p in (("conditions", 0.99), ("medications", 0.98),
                                                  ("substances", 0.95), ("allergies", 0.90),
                                                  ("family_history", 0.85))}
        row("people", person_id=pid, age=age if rnd.random() > 0.003 else None, sex=sex,
            route=route, setting=setting,
            **{f"{n}_asked": v for n, v in asked.items()})
        seq = 0
        if asked["conditions"]:
            for code, share, statuses, controllable in CONDITIONS:
                if rnd.random() < share:
                    controlled = None
                    if controllable:
                        controlled = None if rnd.random() < 0.15 else rnd.random() < 0.75
                    since = _date(rnd, ref, 30, 8000) if rnd.random() < 0.5 else None
                    if code in ("I21.9", "I63.9") and rnd.random() < 0.3:
                        since = _date(rnd, ref, 1, 120, 0.0)
                    row("conditions", person_id=pid, seq=seq, code=code, status=_pick(rnd, statuses),
                        controlled=controlled, since=since)
                    seq += 1
            if rnd.random() < 0.03:
                row("conditions", person_id=pid, seq=seq, name=rnd.choice(FREE_TEXT))
                seq += 1
            if rnd.random() < 0.004:
                row("conditions", person_id=pid, seq=seq, code=rnd.choice(UNKNOWN_CODES))
                seq += 1
        seq = 0
        if asked["medications"]:
            for name, share, doses in MEDICATIONS:
                if rnd.random() < share:
                    schedule = _pick(rnd, (("daily", 0.85), ("as_needed", 0.10), ("stopped", 0.05)))
                    daily = rnd.choice(doses) if doses and rnd.random() < 0.6 else None
                    row("medications", person_id=pid, seq=seq, name=name, schedule=schedule,
                        daily_mg=daily,
                        stopped_on=_date(rnd, ref, 10, 900) if schedule == "stopped" else None)
                    seq += 1
            if rnd.random() < 0.008:
                row("medications", person_id=pid, seq=seq, name=rnd.choice(UNKNOWN_DRUGS))
                seq += 1
        seq = 0
        if asked["allergies"]:
            for name, share in ALLERGIES:
                if rnd.random() < share:
                    row("allergies", person_id=pid, seq=seq, substance=name)
                    seq += 1
        seq = 0
        if asked["family_history"]:
            for code, share in FAMILY:
                if rnd.random() < share:
                    row("family_history", person_id=pid, seq=seq, code=code,
                        relation=rnd.choice(RELATIONS))
                    seq += 1
        seq = 0
        if asked["substances"]:
            for substance, (current, past, disorder_share) in SUBSTANCE_USE.items():
                r = rnd.random()
                if r < current:
                    status = "current"
                elif r < current + past:
                    status = "past"
                else:
                    continue
                disorder: bool | None = rnd.random() < disorder_share
                if substance == "nicotine":
                    disorder = False if rnd.random() < 0.9 else None
                elif rnd.random() < 0.04:
                    disorder = None
                last_use = None
                support = None
                if status == "past" or disorder:
                    last_use = _date(rnd, ref, 40, 4000) if rnd.random() < 0.85 else None
                if disorder:
                    support = None if rnd.random() < 0.1 else rnd.random() < 0.55
                row("substances", person_id=pid, seq=seq, substance=substance, status=status,
                    disorder=disorder, last_use=last_use, recovery_support=support)
                seq += 1
        if rnd.random() < 0.9:
            systolic = int(max(92, min(215, rnd.gauss(126, 16))))
            diastolic = int(max(55, min(systolic - 20, rnd.gauss(systolic * 0.63, 8))))
            r = rnd.random()
            taken = (_date(rnd, ref, 0, 80, 0.0) if r < 0.78 else
                     _date(rnd, ref, 91, 500, 0.0) if r < 0.9 else None)
            row("vitals", person_id=pid, systolic=systolic, diastolic=diastolic,
                heart_rate=int(max(45, min(140, rnd.gauss(76, 12)))) if rnd.random() < 0.85
                else None, taken_on=taken)
        values = _answers(rnd, sex, age)
        answers["person_id"].append(pid)
        for name in ANSWER_COLUMNS:
            answers[name].append(values.get(name))
    return Chunk(t)


def _answers(rnd: random.Random, sex: str, age: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    picked = [v for v, share in INDICATIONS if rnd.random() < share]
    if picked:
        out["indications"] = ";".join(picked)

    def maybe(name: str, value: Any, asked: float = 0.985) -> None:
        if rnd.random() < asked:
            out[name] = value

    maybe("symptoms.psychosis_now", rnd.random() < 0.01)
    maybe("symptoms.mania_now", rnd.random() < 0.02)
    maybe("symptoms.hallucinations_past", rnd.random() < 0.05)
    maybe("symptoms.dissociation", _pick(rnd, (("none", 0.80), ("occasional", 0.15),
                                               ("frequent", 0.05))))
    maybe("symptoms.suicidal", _pick(rnd, (("none", 0.60), ("passive", 0.30), ("active", 0.08),
                                           ("plan_or_intent", 0.02))), 0.99)
    maybe("symptoms.suicide_attempt", _pick(rnd, (("none", 0.82), ("lifetime", 0.16),
                                                  ("past_3_months", 0.02))), 0.99)
    maybe("symptoms.bp_red_flags", rnd.random() < 0.005, 0.5)
    for key, no_share in (("own_choice", 0.02), ("can_consent", 0.01), ("support_person", 0.08),
                          ("session_monitor", 0.10), ("safe_storage", 0.05),
                          ("integration_support", 0.25), ("open_to_therapy", 0.05),
                          ("can_attend_series", 0.08), ("ride_home", 0.07)):
        maybe(f"readiness.{key}", rnd.random() >= no_share, 0.98)
    maybe("readiness.pressured", rnd.random() < 0.03, 0.98)
    maybe("readiness.expects_quick_fix", rnd.random() < 0.10, 0.98)
    if sex != "male" and 10 <= age <= 60 and rnd.random() < 0.95:
        out["pregnancy.pregnant"] = _pick(rnd, (("no", 0.97), ("yes", 0.01), ("unknown", 0.02)))
        out["pregnancy.breastfeeding"] = rnd.random() < 0.02
        out["pregnancy.planning"] = rnd.random() < 0.04
    if rnd.random() < 0.2:
        out["prior_ketamine.received"] = True
        out["prior_ketamine.misuse"] = rnd.random() < 0.03
        if rnd.random() < 0.05:
            out["prior_ketamine.adverse_reaction"] = "felt very anxious and sick"
    if rnd.random() < 0.05:
        out["labs.alt"] = float(rnd.randint(10, 200))
        out["labs.ast"] = float(rnd.randint(10, 200))
    item9 = 0
    if rnd.random() < 0.4:
        severity = rnd.random()
        for i in range(9):
            out[f"instruments.phq9[{i}]"] = min(3, max(0, int(rnd.gauss(1.8 * severity + 0.8, 0.9))))
        item9 = out["instruments.phq9[8]"]
    # A positive PHQ-9 item 9 calls for the C-SSRS screener, and clinics mostly ask it.
    if rnd.random() < (0.85 if item9 >= 1 else 0.2):
        risk = rnd.random()
        out["instruments.cssrs_screen.wish_dead"] = risk < 0.45
        out["instruments.cssrs_screen.active_thoughts"] = risk < 0.2
        out["instruments.cssrs_screen.method"] = risk < 0.08
        out["instruments.cssrs_screen.intent"] = risk < 0.03
        out["instruments.cssrs_screen.plan"] = risk < 0.02
        out["instruments.cssrs_screen.behavior_3mo"] = risk < 0.02
    return out


def _chunk_job(args: tuple[int, int, int, int, date]) -> Chunk:
    return generate_chunk(*args)


def chunks(people: int, seed: int, ref: date, workers: int = 1) -> Iterator[Chunk]:
    """The population's chunks, in order; with ``workers`` > 1 drawn in parallel processes
    (each chunk has its own seed, so the result does not depend on the number of workers)."""
    jobs = [(seed, k, start + 1, min(CHUNK, people - start), ref)
            for k, start in enumerate(range(0, people, CHUNK))]
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _chunk_job(job)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_chunk_job, jobs)


# ============================================================================== writers


def _arrow_tables(chunk: Chunk) -> dict[str, Any]:
    import pyarrow as pa  # type: ignore[import-untyped]

    kinds = {"key": pa.int64(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
             "date": pa.date32()}
    out = {}
    for t in L.TABLES:
        if t is L.ANSWERS_LONG:
            continue
        cols = chunk.tables[t.name]
        out[t.name] = pa.table({c.name: pa.array(cols[c.name], type=kinds.get(c.kind, pa.string()))
                                for c in t.columns if c.name != "assessed_on"})
    ans = chunk.tables["answers"]
    arrays = {"person_id": pa.array(ans["person_id"], type=pa.int64())}
    for name in ANSWER_COLUMNS:
        spec = L.ANSWER_BY_FIELD[name]
        kind = "text" if spec.multi else spec.kind
        arrays[name] = pa.array(ans[name], type=kinds.get(kind, pa.string()))
    out["answers"] = pa.table(arrays)
    return out


def to_intakes(chunk: Chunk, ref: date) -> Iterator[dict[str, Any]]:
    """The chunk's people as contract intakes (the JSON Lines layout)."""
    t = chunk.tables
    by: dict[str, dict[int, list[int]]] = {}
    for name in ("conditions", "family_history", "medications", "allergies", "substances", "vitals"):
        index: dict[int, list[int]] = {}
        for i, pid in enumerate(t[name]["person_id"]):
            index.setdefault(pid, []).append(i)
        by[name] = index
    fields = {name: [c.name for c in L.TABLE_BY_NAME[name].columns
                     if c.name not in ("person_id", "seq")] for name in by}
    people = t["people"]
    ans = t["answers"]
    for i, pid in enumerate(people["person_id"]):
        intake: dict[str, Any] = {"id": str(pid), "assessed_on": ref.isoformat()}
        for key in ("age", "sex", "route", "setting"):
            if people[key][i] is not None:
                intake[key] = people[key][i]
        for name in ("conditions", "family_history", "medications", "allergies", "substances"):
            if not people[f"{name}_asked"][i]:
                continue
            items = []
            for j in by[name].get(pid, []):
                item = {f: t[name][f][j] for f in fields[name] if t[name][f][j] is not None}
                items.append(item)
            intake[name] = items
        for j in by["vitals"].get(pid, []):
            intake["vitals"] = {f: t["vitals"][f][j] for f in fields["vitals"]
                                if t["vitals"][f][j] is not None}
        values = {name: ans[name][i] for name in ANSWER_COLUMNS if ans[name][i] is not None}
        intake.update(answers_to_intake(values))
        yield intake


def answers_to_intake(values: dict[str, Any]) -> dict[str, Any]:
    """Answer fields (by contract path) back into the intake's objects."""
    out: dict[str, Any] = {}
    lists: dict[tuple[str, ...], dict[int, Any]] = {}
    for path, value in values.items():
        if path == "indications":
            out["indications"] = [v for v in str(value).split(";") if v]
            continue
        head, _, rest = path.partition("[")
        if rest:
            index = int(rest.split("]", 1)[0])
            lists.setdefault(tuple(head.split(".")), {})[index] = value
            continue
        parts = path.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    for key, items in lists.items():
        node = out
        for p in key[:-1]:
            node = node.setdefault(p, {})
        node[key[-1]] = [items[k] for k in sorted(items)]
    return out


def write_population(out_dir: str, people: int, *, seed: int = 1, layout: str = "tables",
                     ref: date | None = None, fmt: str = "parquet",
                     progress: Callable[[int], None] | None = None, workers: int = 1) -> Path:
    """Write a synthetic population of ``people`` in ``layout`` under ``out_dir``."""
    day = ref or date.today()
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    done = 0
    if layout == "jsonl":
        path = target / "intakes.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for chunk in chunks(people, seed, day):
                for intake in to_intakes(chunk, day):
                    fh.write(json.dumps(intake, separators=(",", ":")) + "\n")
                done += len(chunk.tables["people"]["person_id"])
                if progress:
                    progress(done)
        return path
    if layout == "omop":
        from ketascreen.batch.omop import OmopWriter

        omop = OmopWriter(target, day, fmt)
        for chunk in chunks(people, seed, day):
            omop.add(chunk)
            done += len(chunk.tables["people"]["person_id"])
            if progress:
                progress(done)
        omop.close()
        return target
    if layout != "tables":
        raise ValueError(f"unknown layout {layout!r}")
    writers: dict[str, Any] = {}
    try:
        for chunk in chunks(people, seed, day, workers):
            for name, table in _arrow_tables(chunk).items():
                _append(writers, target, name, table, fmt)
            done += len(chunk.tables["people"]["person_id"])
            if progress:
                progress(done)
    finally:
        for w in writers.values():
            w.close()
    return target


def _append(writers: dict[str, Any], target: Path, name: str, table: Any, fmt: str) -> None:
    import pyarrow.csv as pacsv  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    w = writers.get(name)
    if w is None:
        if fmt == "parquet":
            w = pq.ParquetWriter(target / f"{name}.parquet", table.schema, compression="zstd")
        else:
            w = pacsv.CSVWriter(target / f"{name}.csv", table.schema)
        writers[name] = w
    w.write_table(table)
