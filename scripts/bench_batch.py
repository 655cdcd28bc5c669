"""`make bench` (population screening, issue 6): speed and memory of `ketascreen batch`.

Measures, on synthetic populations (`ketascreen synth`, seeded, normalised tables):

1. DuckDB, end to end (read, check every value, compile, screen, write Parquet, summary), wall
   time and peak memory (each run in a fresh process), for a series of sizes (linear cost?);
2. `screen()` one by one on a sample of the same people, extrapolated to the population;
3. the same compiled path restricted to a subset of rules, against a **hand-written DuckDB
   query** for that subset (the reference below), on the same data, both end to end;
4. Spark in local mode, for one size.

Prints a Markdown table (for docs/performance.md) and writes bench-out/batch.json. The machine
is shared and noisy: each figure is the best of a few runs. ``--quick`` runs small sizes only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-out" / "batch"
REF = date(2026, 11, 16)
SEED = 42

# The rules the hand-written reference implements (one or more of every predicate kind).
SUBSET = [
    "cardio.bp_severe", "cardio.bp_stage2", "cardio.bp_stage1", "cardio.hypertension_uncontrolled",
    "psych.primary_psychotic_disorder", "psych.suicide_passive", "psych.mania_current",
    "ready.not_own_choice", "med.benzodiazepine", "med.cns_depressant_combination",
    "subst.alcohol_cannabis_current", "age.under_18", "age.older_adult", "preg.breastfeeding",
    "home.no_session_monitor",
]

# ---------------------------------------------------------------------------------------------
# The reference: the subset's rules written by hand as one DuckDB query over the same tables
# (three-valued where the rules are: NULL = unknown; "blocked" = unknown for want of a must-have
# answer). It computes each route's decision, urgency and the fired rules; it does not check
# the input, list the missing answers or resolve free text (drug names come from a name → classes
# table built from the vocabulary, as a person would load one).
REFERENCE_SQL = """
WITH
p AS (SELECT * FROM read_parquet('{d}/people.parquet')),
a AS (SELECT * FROM read_parquet('{d}/answers.parquet')),
v AS (SELECT * FROM read_parquet('{d}/vitals.parquet')),
c AS (SELECT person_id,
        bool_or(upper(replace(code, '.', '')) SIMILAR TO '(F20|F21|F22|F25).*') AS psychotic,
        bool_or(status = 'active' AND upper(replace(code, '.', '')) SIMILAR TO '(F30|F310|F311|F312|F316).*')
          AS mania_code,
        bool_or(coalesce(status, 'active') = 'active' AND substr(upper(replace(code, '.', '')), 1, 3)
                BETWEEN 'I10' AND 'I15' AND controlled = FALSE) AS htn_uncontrolled,
        bool_or(coalesce(status, 'active') = 'active' AND substr(upper(replace(code, '.', '')), 1, 3)
                BETWEEN 'I10' AND 'I15' AND controlled IS NULL) AS htn_unknown,
        -- alcohol or cannabis use recorded as an active diagnosis, not in remission
        bool_or(coalesce(status, 'active') = 'active' AND substr(upper(replace(code, '.', '')), 1, 3)
                IN ('F10', 'F12') AND substr(upper(replace(code, '.', '')), 4, 2) NOT IN ('11', '21'))
          AS alc_can_code
      FROM read_parquet('{d}/conditions.parquet') GROUP BY person_id),
m AS (SELECT person_id,
        bool_or(coalesce(schedule, 'daily') <> 'stopped' AND list_contains(k.classes, 'benzodiazepine'))
          AS benzo,
        (bool_or(coalesce(schedule, 'daily') <> 'stopped' AND list_contains(k.classes, 'opioid'))::INT
         + bool_or(coalesce(schedule, 'daily') <> 'stopped'
                   AND list_contains(k.classes, 'benzodiazepine'))::INT
         + bool_or(coalesce(schedule, 'daily') <> 'stopped'
                   AND list_contains(k.classes, 'gabapentinoid'))::INT
         + bool_or(coalesce(schedule, 'daily') <> 'stopped' AND list_contains(k.classes, 'barbiturate'))::INT
         + bool_or(coalesce(schedule, 'daily') <> 'stopped'
                   AND list_contains(k.classes, 'sedating_antipsychotic'))::INT) AS depressants_a,
        (bool_or(coalesce(schedule, 'daily') <> 'stopped' AND list_contains(k.classes, 'opioid'))::INT
         + bool_or(coalesce(schedule, 'daily') <> 'stopped' AND list_contains(k.classes, 'z_drug'))::INT
         + bool_or(coalesce(schedule, 'daily') <> 'stopped'
                   AND list_contains(k.classes, 'gabapentinoid'))::INT
         + bool_or(coalesce(schedule, 'daily') <> 'stopped' AND list_contains(k.classes, 'barbiturate'))::INT
         + bool_or(coalesce(schedule, 'daily') <> 'stopped'
                   AND list_contains(k.classes, 'sedating_antipsychotic'))::INT) AS depressants_b
      FROM read_parquet('{d}/medications.parquet') AS md JOIN drug_classes AS k
        ON lower(md.name) = k.name GROUP BY person_id),
s AS (SELECT person_id, bool_or(substance IN ('alcohol', 'cannabis') AND NOT (status = 'never'
        AND NOT coalesce(disorder, FALSE)) AND (status = 'current' OR lo IS NOT NULL AND date_diff('day',
        -- a partial date (2026-10) reads as the day nearest the screening date it can mean
        CASE WHEN hi <= DATE '{ref}' THEN hi ELSE greatest(lo, DATE '{ref}') END,
        DATE '{ref}') <= 30)) AS alc_can
      FROM (SELECT *, TRY_CAST(CASE length(last_use) WHEN 4 THEN last_use || '-01-01'
                WHEN 7 THEN last_use || '-01' ELSE last_use END AS DATE) AS lo,
              CASE length(last_use) WHEN 4 THEN TRY_CAST(last_use || '-12-31' AS DATE)
                WHEN 7 THEN last_day(TRY_CAST(last_use || '-01' AS DATE))
                ELSE TRY_CAST(last_use AS DATE) END AS hi
            FROM read_parquet('{d}/substances.parquet')) AS su GROUP BY person_id),
f AS (
  SELECT p.person_id, p.route, p.setting,
    coalesce(p.conditions_asked, TRUE) AS cond_asked,
    coalesce(p.medications_asked, TRUE) AS med_asked,
    coalesce(p.substances_asked, TRUE) AS sub_asked,
    coalesce(date_diff('day', TRY_CAST(v.taken_on AS DATE), DATE '{ref}') > 90, FALSE) AS stale,
    CASE WHEN v.taken_on IS NOT NULL AND date_diff('day', TRY_CAST(v.taken_on AS DATE),
         DATE '{ref}') > 90 THEN NULL ELSE v.systolic END AS sys,
    CASE WHEN v.taken_on IS NOT NULL AND date_diff('day', TRY_CAST(v.taken_on AS DATE),
         DATE '{ref}') > 90 THEN NULL ELSE v.diastolic END AS dia,
    p.age, coalesce(p.sex, 'unknown') AS sex,
    a."symptoms.suicidal" AS suicidal, a."symptoms.mania_now" AS mania_now,
    a."readiness.pressured" AS pressured, a."readiness.own_choice" AS own_choice,
    a."readiness.session_monitor" AS monitor, a."pregnancy.breastfeeding" AS breastfeeding,
    c.psychotic, c.mania_code, c.htn_uncontrolled, c.htn_unknown, m.benzo, m.depressants_a,
    m.depressants_b, s.alc_can, c.alc_can_code
  FROM p LEFT JOIN a USING (person_id) LEFT JOIN v USING (person_id)
    LEFT JOIN c USING (person_id) LEFT JOIN m USING (person_id) LEFT JOIN s USING (person_id)),
r AS (
  SELECT person_id, route, setting, stale,
    -- three-valued rule values (NULL = unknown)
    sys >= 180 OR dia >= 110 AS bp_severe,
    sys >= 160 OR dia >= 100 AS bp_stage2,
    sys >= 140 OR dia >= 90 AS bp_stage1,
    CASE WHEN NOT cond_asked THEN NULL WHEN coalesce(htn_uncontrolled, FALSE) THEN TRUE
         WHEN coalesce(htn_unknown, FALSE) THEN NULL ELSE FALSE END AS htn,
    CASE WHEN NOT cond_asked THEN NULL ELSE coalesce(psychotic, FALSE) END AS psychotic,
    suicidal = 'passive' AS passive,
    mania_now = TRUE OR CASE WHEN NOT cond_asked THEN NULL ELSE coalesce(mania_code, FALSE) END
      AS mania,
    pressured = TRUE OR own_choice = FALSE AS not_own_choice,
    CASE WHEN NOT med_asked THEN NULL ELSE coalesce(benzo, FALSE) END AS benzo,
    CASE WHEN NOT med_asked THEN NULL ELSE coalesce(depressants_a, 0) >= 2
         OR coalesce(depressants_b, 0) >= 2 END AS cns,
    CASE WHEN coalesce(alc_can, FALSE) OR (cond_asked AND coalesce(alc_can_code, FALSE)) THEN TRUE
         WHEN NOT sub_asked THEN NULL ELSE FALSE END AS alc_can,
    age < 18 AS under_18, age >= 65 AS older,
    CASE WHEN breastfeeding IS NULL AND (sex = 'male' OR age < 10 OR age > 60) THEN FALSE
         ELSE breastfeeding = TRUE END AS breastfeeding,
    monitor = FALSE AS no_monitor
  FROM f),
d AS (
  SELECT *,
    greatest(CASE WHEN coalesce(psychotic, FALSE) THEN 4 ELSE 0 END,
      CASE WHEN coalesce(bp_severe, FALSE) OR coalesce(bp_stage2, FALSE) OR coalesce(mania, FALSE)
        OR coalesce(not_own_choice, FALSE) OR coalesce(under_18, FALSE)
        OR coalesce(breastfeeding, FALSE) THEN 3 ELSE 0 END,
      CASE WHEN coalesce(bp_stage1, FALSE) OR coalesce(htn, FALSE) OR coalesce(cns, FALSE)
        THEN 2 ELSE 0 END,
      CASE WHEN coalesce(passive, FALSE) OR coalesce(benzo, FALSE) OR coalesce(alc_can, FALSE)
        OR coalesce(older, FALSE) THEN 1 ELSE 0 END) AS known_clinic,
    greatest(CASE WHEN psychotic IS NULL THEN 4 ELSE -1 END,
      -- an old blood-pressure reading is confirmed at the first visit: it blocks nothing
      CASE WHEN ((bp_severe IS NULL OR bp_stage2 IS NULL) AND NOT stale) OR mania IS NULL
        OR not_own_choice IS NULL OR under_18 IS NULL OR breastfeeding IS NULL THEN 3 ELSE -1 END,
      CASE WHEN (bp_stage1 IS NULL AND NOT stale) OR htn IS NULL OR cns IS NULL THEN 2 ELSE -1 END,
      CASE WHEN passive IS NULL OR benzo IS NULL OR alc_can IS NULL OR older IS NULL
        THEN 1 ELSE -1 END) AS unknown_clinic
  FROM r),
e AS (
  SELECT *,
    CASE WHEN coalesce(setting, 'home') = 'home' THEN greatest(known_clinic,
      CASE WHEN coalesce(no_monitor, FALSE) THEN 3 ELSE 0 END) ELSE known_clinic END AS known_oral,
    CASE WHEN coalesce(setting, 'home') = 'home' THEN greatest(unknown_clinic,
      CASE WHEN no_monitor IS NULL THEN 3 ELSE -1 END) ELSE unknown_clinic END AS unknown_oral,
    CASE WHEN coalesce(setting, 'clinic') = 'home' THEN greatest(known_clinic,
      CASE WHEN coalesce(no_monitor, FALSE) THEN 3 ELSE 0 END) ELSE known_clinic END AS known_iv,
    CASE WHEN coalesce(setting, 'clinic') = 'home' THEN greatest(unknown_clinic,
      CASE WHEN no_monitor IS NULL THEN 3 ELSE -1 END) ELSE unknown_clinic END AS unknown_iv
  FROM d),
g AS (
  SELECT person_id, route,
    CASE WHEN unknown_iv > known_iv AND known_iv < 3 THEN 3
         ELSE [0, 1, 2, 4, 5][known_iv + 1] END AS rank_iv,
    CASE WHEN unknown_oral > known_oral AND known_oral < 3 THEN 3
         ELSE [0, 1, 2, 4, 5][known_oral + 1] END AS rank_oral,
    coalesce(bp_severe, FALSE) AS urgent,
    list_filter([CASE WHEN psychotic THEN 'psych.primary_psychotic_disorder' END,
      CASE WHEN bp_severe THEN 'cardio.bp_severe' END, CASE WHEN bp_stage2 THEN 'cardio.bp_stage2' END,
      CASE WHEN breastfeeding THEN 'preg.breastfeeding' END,
      CASE WHEN mania THEN 'psych.mania_current' END,
      CASE WHEN not_own_choice THEN 'ready.not_own_choice' END,
      CASE WHEN under_18 THEN 'age.under_18' END,
      CASE WHEN bp_stage1 THEN 'cardio.bp_stage1' END,
      CASE WHEN htn THEN 'cardio.hypertension_uncontrolled' END,
      CASE WHEN cns THEN 'med.cns_depressant_combination' END,
      CASE WHEN older THEN 'age.older_adult' END, CASE WHEN benzo THEN 'med.benzodiazepine' END,
      CASE WHEN passive THEN 'psych.suicide_passive' END,
      CASE WHEN alc_can THEN 'subst.alcohol_cannabis_current' END], lambda x: x IS NOT NULL)
      AS rules
  FROM e)
SELECT person_id AS id,
  ['eligible', 'eligible_with_precautions', 'needs_evaluation', 'incomplete', 'defer',
   'not_recommended'][CASE route WHEN 'oral' THEN rank_oral WHEN NULL THEN least(rank_iv, rank_oral)
                      ELSE CASE WHEN route IS NULL THEN least(rank_iv, rank_oral) ELSE rank_iv END
                      END + 1] AS decision,
  urgent, rules
FROM g ORDER BY person_id
"""


def _python() -> list[str]:
    return [sys.executable, "-c"]


def _child(code: str, timeout: int = 3600) -> dict[str, Any]:
    """Run ``code`` in a fresh process; it prints one JSON line (its figures and peak memory)."""
    wrapped = ("import json, resource, time\n" + code
               + "\nresult['rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024"
               "\nprint(json.dumps(result))")
    done = subprocess.run([*_python(), wrapped], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def population(n: int) -> Path:
    folder = OUT / f"pop-{n}"
    marker = folder / "synth.json"
    want = {"people": n, "seed": SEED, "date": REF.isoformat(), "format": 2}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return folder
    from ketascreen.batch.synth import write_population

    started = time.perf_counter()
    write_population(str(folder), n, seed=SEED, ref=REF, workers=os.cpu_count() or 1)
    marker.write_text(json.dumps(want))
    print(f"  synthesised {n:,} people in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


def batch_run(folder: Path, engine: str = "duckdb", protocol_subset: bool = False) -> dict[str, Any]:
    code = f"""
from datetime import date
from ketascreen.services import load_knowledge_base
from ketascreen.batch.run import screen_population
kb = load_knowledge_base()
protocol = None
if {protocol_subset!r}:
    from ketascreen.core.kb import Protocol, RuleOverride
    keep = set({SUBSET!r})
    protocol = Protocol.model_construct(
        name="bench-subset", version="1", description=None, add_rules=[],
        confirm_at_first_visit=[], sha256="bench-subset",
        overrides={{r.id: RuleOverride.model_construct(enabled=False, severity=None, urgent=None,
                   params={{}}, reason="bench", override_safety_floor=True)
                   for r in kb.rules if r.id not in keep}})
started = time.perf_counter()
res = screen_population({str(folder)!r}, {str(OUT / ('out-' + engine + '.parquet'))!r}, kb=kb,
                        protocol=protocol, today=date.fromisoformat({REF.isoformat()!r}),
                        engine={engine!r})
result = {{"wall": time.perf_counter() - started, "people": res.people,
          "timings": res.timings}}
"""
    return _child(code)


def reference_run(folder: Path) -> dict[str, Any]:
    sql = REFERENCE_SQL.format(d=str(folder), ref=REF.isoformat())
    code = f"""
import duckdb, pyarrow as pa
from ketascreen.services import load_knowledge_base
from ketascreen.core.vocab import normalize_name
kb = load_knowledge_base()
names, classes = [], []
for d in kb.vocabulary.drugs:
    for n in (d.name, *d.brands, *d.synonyms):
        names.append(normalize_name(n)); classes.append(sorted(d.classes))
started = time.perf_counter()
con = duckdb.connect()
con.register("drug_classes", pa.table({{"name": names, "classes": classes}}))
con.execute("COPY (" + {sql!r} + ") TO " + {"'" + str(OUT / "out-reference.parquet") + "'"!r}
            + " (FORMAT parquet, COMPRESSION zstd)")
result = {{"wall": time.perf_counter() - started}}
"""
    return _child(code)


def agree_with_reference() -> int:
    """People whose decision, urgency or rules differ between the reference and the compiled
    subset run (the reference does not resolve drug names fully: a few may differ there)."""
    import duckdb

    con = duckdb.connect()
    found = con.execute(
        f"SELECT count(*) FROM '{OUT / 'out-reference.parquet'}' AS r JOIN "
        f"'{OUT / 'out-duckdb.parquet'}' AS b ON CAST(r.id AS VARCHAR) = b.id WHERE "
        "r.decision IS DISTINCT FROM b.decision OR r.urgent IS DISTINCT FROM b.urgent").fetchone()
    return int(found[0]) if found else 0


def screen_one_by_one(folder: Path, sample: int) -> dict[str, Any]:
    code = f"""
from datetime import date
from ketascreen.services import load_knowledge_base, Screener
from ketascreen.batch.engines import DuckDBRunner
from ketascreen.batch.run import prepare
from ketascreen.batch.intakes import to_intakes
from ketascreen.core.engine import CompiledKnowledgeBase
kb = load_knowledge_base()
ref = date.fromisoformat({REF.isoformat()!r})
r = DuckDBRunner()
prepare(r, {str(folder)!r}, ckb=CompiledKnowledgeBase(kb), today=ref)
intakes = [i for _k, i in to_intakes(r, where="person_id <= {sample}")]
screener = Screener(kb)
started = time.perf_counter()
for i in intakes:
    screener.screen(i, today=ref)
wall = time.perf_counter() - started
result = {{"sample": len(intakes), "wall": wall, "per_person_ms": 1000 * wall / len(intakes)}}
"""
    return _child(code)


def best(runs: int, fn: Any, *args: Any) -> dict[str, Any]:
    results = [fn(*args) for _ in range(runs)]
    return min(results, key=lambda r: float(r["wall"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,500000,1000000,2000000,5000000")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--spark-size", type=int, default=100_000)
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args()
    sizes = [10_000, 50_000] if args.quick else [int(x) for x in args.sizes.split(",")]
    main_size = 1_000_000 if 1_000_000 in sizes else sizes[-1]
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                              "python": platform.python_version(), "series": []}
    print("== DuckDB, end to end", flush=True)
    for n in sizes:
        folder = population(n)
        r = best(2 if n <= 1_000_000 else 1, batch_run, folder)
        report["series"].append({"people": n, **r})
        print(f"  {n:>9,} people: {r['wall']:6.1f} s, peak {r['rss_mb']:,.0f} MB, "
              f"{n / r['wall']:,.0f} people/s", flush=True)
    folder = population(main_size)
    main = next(s for s in report["series"] if s["people"] == main_size)
    print("== screen() one by one (sample)", flush=True)
    one = screen_one_by_one(folder, 5000 if not args.quick else 1000)
    one_total = one["per_person_ms"] * main_size / 1000
    report["one_by_one"] = {**one, "extrapolated_s": one_total,
                            "speedup": one_total / main["wall"]}
    print(f"  {one['per_person_ms']:.3f} ms a person → {one_total:,.0f} s for {main_size:,}: "
          f"batch is {one_total / main['wall']:.0f}x faster", flush=True)
    print("== hand-written reference vs compiled, same rule subset", flush=True)
    compiled = best(2, batch_run, folder, "duckdb", True)
    reference = best(2, reference_run, folder)
    report["reference"] = {"rules": SUBSET, "compiled": compiled, "reference": reference,
                           "ratio": compiled["wall"] / reference["wall"],
                           "disagreeing_people": agree_with_reference()}
    print(f"  compiled {compiled['wall']:.1f} s vs hand-written {reference['wall']:.1f} s: "
          f"{compiled['wall'] / reference['wall']:.2f}x; people whose decision differs: "
          f"{report['reference']['disagreeing_people']}", flush=True)
    if not args.no_spark:
        print("== Spark local", flush=True)
        n = args.spark_size if not args.quick else 10_000
        r = batch_run(population(n), "spark")
        report["spark"] = {"people": n, **r}
        print(f"  {n:,} people: {r['wall']:.1f} s (peak {r['rss_mb']:,.0f} MB in the driver's "
              "Python; the JVM is separate)", flush=True)
    (OUT / "results.json").write_text(json.dumps(report, indent=2))
    print("\n| people | DuckDB wall (s) | people/s | peak memory (MB) |\n|---:|---:|---:|---:|")
    for s in report["series"]:
        print(f"| {s['people']:,} | {s['wall']:.1f} | {s['people'] / s['wall']:,.0f} | "
              f"{s['rss_mb']:,.0f} |")


if __name__ == "__main__":
    main()
