"""OMOP CDM v5.4 tables → the normalised layout (SQL views), and synthetic OMOP output.

Read: ``person``, ``condition_occurrence``, ``drug_exposure``, ``measurement``, ``observation``
and, when given, ``concept`` (every table but ``person`` may be absent). What OMOP carries:

- **conditions**: ICD-10-CM codes from the source concept (``*_source_concept_id`` whose concept
  is ICD10CM) or from ``*_source_value`` when it has the shape of an ICD-10-CM code; otherwise
  the standard concept's name as free text (resolved by ketascreen's condition names, else
  unrecognized). ICD-10-CM codes in ``observation`` (Z codes…) count as conditions. Rows of one
  code are one condition: active unless every row ended before the screening date; ``since`` is
  the latest start date (the safe reading for "within the last N days").
- **medications**: RxNorm and the drug's name from the concept table, else ``drug_source_value``
  (a name, or an RxNorm code when all digits). Exposures of one drug are one medication:
  current unless the last one ended more than 30 days before the screening date.
- **vitals**: blood pressure from LOINC 8480-6 / 8462-4 (concepts 3004249 / 3012888), heart
  rate from 8867-4 (3027018); the latest day with both pressures (highest values that day).
- **labs**: ALT 1742-6, AST 1920-8, ALP 6768-6, GGT 2324-2 (latest value).
- **answers**: ``observation`` rows whose ``observation_source_value`` is
  ``ketascreen:<answer field>`` (e.g. ``ketascreen:symptoms.suicidal``) with the answer in
  ``value_as_string`` (or ``value_as_number``): how a health system records the screening
  questions in OMOP.
- **age and sex**: from the birth date (a missing month or day reads as the latest possible,
  the younger age) and ``gender_concept_id`` (8507 male, 8532 female, anything else unknown).

What OMOP does not carry becomes *not asked*, exactly as the engine reports an absent answer:
substance use other than F10-F19 diagnoses, allergies, family history, pregnancy, symptoms,
readiness, questionnaires (unless given as ``ketascreen:`` observations), a condition's
``controlled``, a drug's daily dose, the route and the setting. Facts dated after the
screening date are left out (they had not happened yet).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ketascreen.batch import layout as L
from ketascreen.batch.engines import Runner
from ketascreen.batch.inputs import RawInput, RawTable, table_files
from ketascreen.batch.sql import lit, quote
from ketascreen.errors import InputError, Problem

OMOP_TABLES: dict[str, tuple[str, ...]] = {
    # table: required columns
    "person": ("person_id", "gender_concept_id", "year_of_birth"),
    "condition_occurrence": ("person_id", "condition_start_date"),
    "drug_exposure": ("person_id", "drug_exposure_start_date"),
    "measurement": ("person_id", "measurement_date"),
    "observation": ("person_id", "observation_date"),
    "concept": ("concept_id", "concept_name", "vocabulary_id", "concept_code"),
}
OPTIONAL: dict[str, tuple[tuple[str, str], ...]] = {
    "person": (("month_of_birth", "BIGINT"), ("day_of_birth", "BIGINT"),
               ("birth_datetime", "TIMESTAMP")),
    "condition_occurrence": (("condition_concept_id", "BIGINT"), ("condition_end_date", "DATE"),
                             ("condition_source_value", "VARCHAR"),
                             ("condition_source_concept_id", "BIGINT")),
    "drug_exposure": (("drug_concept_id", "BIGINT"), ("drug_exposure_end_date", "DATE"),
                      ("drug_source_value", "VARCHAR"), ("drug_source_concept_id", "BIGINT")),
    "measurement": (("measurement_concept_id", "BIGINT"), ("value_as_number", "DOUBLE"),
                    ("measurement_source_value", "VARCHAR")),
    "observation": (("observation_concept_id", "BIGINT"), ("value_as_string", "VARCHAR"),
                    ("value_as_number", "DOUBLE"), ("observation_source_value", "VARCHAR"),
                    ("observation_source_concept_id", "BIGINT")),
    "concept": (),
}
LOINC = {"systolic": ("8480-6", 3004249), "diastolic": ("8462-4", 3012888),
         "heart_rate": ("8867-4", 3027018)}
LABS = {"labs.alt": ("1742-6", 3006923), "labs.ast": ("1920-8", 3013721),
        "labs.alp": ("6768-6", 3035995), "labs.ggt": ("2324-2", None)}
ICD_SHAPE = "^[A-Za-z][0-9][0-9A-Za-z](\\.?[0-9A-Za-z]{1,4})?$"
STOPPED_AFTER_DAYS = 30
ANSWER_PREFIX = "ketascreen:"


def _date(col: str) -> str:
    return f"TRY_CAST({col} AS DATE)"


def register_omop(runner: Runner, folder: str, *, today: object = None) -> RawInput:
    """Register an OMOP CDM folder as the raw normalised tables (views ``raw_*``)."""
    as_of = today if isinstance(today, date) else date.today()
    root = Path(folder)
    present: dict[str, dict[str, str]] = {}
    problems: list[Problem] = []
    for name, required in OMOP_TABLES.items():
        found = table_files(root, name)
        if found is None:
            if name == "person":
                raise InputError([Problem("", "the OMOP person table is missing")], source=folder)
            continue
        files, fmt = found
        types = runner.read_files(f"omop_src_{name}", files, fmt)
        missing = [c for c in required if c not in types]
        for c in missing:
            problems.append(Problem(f"{files[0].name}: {c}", "is required but the file has no "
                                    "such column"))
        present[name] = types
    if problems:
        raise InputError(problems, source=folder)
    for name, types in present.items():
        cols = ["*"] + [f"CAST(NULL AS {t}) AS {c}" for c, t in OPTIONAL[name] if c not in types]
        runner.view(f"omop_{name}", f"SELECT {', '.join(cols)} FROM omop_src_{name}")
    if "concept" not in present:
        runner.view("omop_concept", "SELECT CAST(NULL AS BIGINT) AS concept_id, CAST(NULL AS "
                    "VARCHAR) AS concept_name, CAST(NULL AS VARCHAR) AS vocabulary_id, "
                    "CAST(NULL AS VARCHAR) AS concept_code WHERE FALSE")
    for name in ("condition_occurrence", "drug_exposure", "measurement", "observation"):
        if name not in present:
            empty = ", ".join(["CAST(NULL AS BIGINT) AS person_id"]
                              + [f"CAST(NULL AS {t}) AS {c}" for c, t in OPTIONAL[name]]
                              + [f"CAST(NULL AS DATE) AS {c}" for c in OMOP_TABLES[name][1:]])
            runner.view(f"omop_{name}", f"SELECT {empty} WHERE FALSE")
    day = lit(as_of)
    raw = RawInput("omop", folder)
    raw.info.append("OMOP carries no answers for substance use (beyond F10-F19 diagnoses), "
                     "allergies, family history, pregnancy, symptoms or readiness unless they "
                     "are given as ketascreen: observations: those are reported as missing")

    # people -------------------------------------------------------------------------------
    birth_year = "CAST(year_of_birth AS BIGINT)"
    month = "coalesce(CAST(month_of_birth AS BIGINT), 12)"
    day_expr = ("coalesce(CAST(day_of_birth AS BIGINT), day(last_day(make_date("
                f"{birth_year}, {month}, 1))))")
    birth = (f"coalesce(CAST(birth_datetime AS DATE), TRY_CAST(make_date({birth_year}, {month}, "
             f"{day_expr}) AS DATE))")
    age = (f"year({day}) - year(b) - CASE WHEN month({day}) < month(b) OR (month({day}) = month(b) "
           f"AND day({day}) < day(b)) THEN 1 ELSE 0 END")
    runner.view("raw_people", (
        f"SELECT person_id, CAST(person_id AS VARCHAR) AS _id, CAST({age} AS BIGINT) AS age, "
        "CASE CAST(gender_concept_id AS BIGINT) WHEN 8507 THEN 'male' WHEN 8532 THEN 'female' "
        "ELSE 'unknown' END AS sex, CAST(NULL AS VARCHAR) AS route, CAST(NULL AS VARCHAR) AS "
        "setting, TRUE AS conditions_asked, TRUE AS medications_asked, FALSE AS substances_asked, "
        "FALSE AS allergies_asked, FALSE AS family_history_asked FROM (SELECT *, "
        f"{birth} AS b FROM omop_person) AS p"))

    # conditions ---------------------------------------------------------------------------
    def condition_rows(table: str, prefix: str, start: str, end: str | None) -> str:
        end_sql = _date(end) if end else "CAST(NULL AS DATE)"
        source = f"{prefix}_source_value"
        return (
            f"SELECT o.person_id, CASE WHEN sc.vocabulary_id IN ('ICD10CM', 'ICD10') THEN "
            f"sc.concept_code WHEN regexp_matches(trim(o.{source}), {quote(ICD_SHAPE)}) THEN "
            f"trim(o.{source}) END AS code, coalesce(c.concept_name, o.{source}, "
            f"'{prefix}_concept_id ' || CAST(o.{prefix}_concept_id AS VARCHAR)) AS label, "
            f"{_date('o.' + start)} AS start_d, {end_sql} AS end_d FROM omop_{table} AS o "
            f"LEFT JOIN omop_concept AS sc ON o.{prefix}_source_concept_id = sc.concept_id "
            f"LEFT JOIN omop_concept AS c ON o.{prefix}_concept_id = c.concept_id")

    conditions = condition_rows("condition_occurrence", "condition", "condition_start_date",
                                "condition_end_date")
    observed = condition_rows("observation", "observation", "observation_date", None)
    runner.view("omop_condition_rows", (
        f"SELECT person_id, code, CASE WHEN code IS NULL THEN label END AS name, start_d, end_d "
        f"FROM ({conditions}) AS a WHERE start_d IS NULL OR start_d <= {day} UNION ALL "
        f"SELECT person_id, code, NULL AS name, start_d, end_d FROM ({observed}) AS b "
        f"WHERE code IS NOT NULL AND (start_d IS NULL OR start_d <= {day})"))
    runner.view("raw_conditions", (
        "SELECT person_id, code, name, CASE WHEN bool_or(end_d IS NULL OR end_d >= "
        f"{day}) THEN 'active' ELSE 'history' END AS status, CAST(max(start_d) AS VARCHAR) AS since "
        "FROM omop_condition_rows GROUP BY person_id, code, name"))

    # medications --------------------------------------------------------------------------
    runner.view("omop_drug_rows", (
        "SELECT d.person_id, coalesce(c.concept_name, trim(d.drug_source_value), "
        "'drug_concept_id ' || CAST(d.drug_concept_id AS VARCHAR)) AS name, CASE WHEN "
        "c.vocabulary_id = 'RxNorm' AND regexp_matches(c.concept_code, '^[0-9]{1,10}$') THEN "
        "c.concept_code WHEN regexp_matches(trim(d.drug_source_value), '^[0-9]{1,10}$') THEN "
        f"trim(d.drug_source_value) END AS rxnorm, {_date('d.drug_exposure_start_date')} AS "
        f"start_d, {_date('d.drug_exposure_end_date')} AS end_d FROM omop_drug_exposure AS d "
        "LEFT JOIN omop_concept AS c ON d.drug_concept_id = c.concept_id"))
    stale = lit(as_of - timedelta(days=STOPPED_AFTER_DAYS))
    runner.view("raw_medications", (
        "SELECT person_id, name, rxnorm, CASE WHEN bool_or(end_d IS NULL) OR max(end_d) >= "
        f"{stale} THEN 'daily' ELSE 'stopped' END AS schedule, CASE WHEN bool_or(end_d IS NULL) "
        f"OR max(end_d) >= {stale} THEN NULL ELSE CAST(least(max(end_d), {day}) AS VARCHAR) END "
        f"AS stopped_on FROM omop_drug_rows WHERE start_d IS NULL OR start_d <= {day} "
        "GROUP BY person_id, name, rxnorm"))

    # vitals and labs ----------------------------------------------------------------------
    def kind(code: str, concept: int | None) -> str:
        ids = f" OR m.measurement_concept_id = {concept}" if concept else ""
        return (f"(c.vocabulary_id = 'LOINC' AND c.concept_code = {quote(code)}) OR "
                f"trim(m.measurement_source_value) = {quote(code)}{ids}")

    kinds = [(name, code, concept) for name, (code, concept) in {**LOINC, **LABS}.items()]
    which = "CASE " + " ".join(f"WHEN {kind(code, concept)} THEN {quote(name)}"
                               for name, code, concept in kinds) + " END"
    runner.view("omop_measure_rows", (
        f"SELECT m.person_id, {which} AS what, {_date('m.measurement_date')} AS taken, "
        "CAST(m.value_as_number AS DOUBLE) AS value FROM omop_measurement AS m LEFT JOIN "
        "omop_concept AS c ON m.measurement_concept_id = c.concept_id"))
    runner.view("omop_readings", (
        "SELECT person_id, taken, max(CASE WHEN what = 'systolic' THEN value END) AS systolic, "
        "max(CASE WHEN what = 'diastolic' THEN value END) AS diastolic, "
        "max(CASE WHEN what = 'heart_rate' THEN value END) AS heart_rate FROM omop_measure_rows "
        f"WHERE what IN ('systolic', 'diastolic', 'heart_rate') AND taken <= {day} "
        "GROUP BY person_id, taken"))
    runner.view("raw_vitals", (
        "SELECT person_id, CAST(round(systolic) AS BIGINT) AS systolic, CAST(round(diastolic) AS "
        "BIGINT) AS diastolic, CAST(round(heart_rate) AS BIGINT) AS heart_rate, CAST(taken AS "
        "VARCHAR) AS taken_on FROM omop_readings WHERE systolic IS NOT NULL AND diastolic IS NOT "
        "NULL"))
    labs = ", ".join(quote(x) for x in LABS)
    runner.view("omop_lab_answers", (
        "SELECT person_id, what AS field, CAST(max_by(value, taken) AS VARCHAR) AS value FROM "
        f"omop_measure_rows WHERE what IN ({labs}) AND value IS NOT NULL AND taken <= {day} "
        "GROUP BY person_id, what"))

    # answers recorded as observations ---------------------------------------------------------
    n = len(ANSWER_PREFIX)
    runner.view("omop_answer_rows", (
        f"SELECT person_id, substr(trim(observation_source_value), {n + 1}) AS field, "
        "coalesce(value_as_string, CAST(value_as_number AS VARCHAR)) AS value, "
        f"{_date('observation_date')} AS taken FROM omop_observation WHERE "
        f"starts_with(trim(observation_source_value), {quote(ANSWER_PREFIX)})"))
    runner.view("raw_answers", (
        "SELECT person_id, field, value FROM omop_lab_answers UNION ALL "
        "SELECT person_id, field, value FROM omop_answer_rows WHERE field = 'indications' AND "
        f"(taken IS NULL OR taken <= {day}) UNION ALL "
        "SELECT person_id, field, max_by(value, taken) AS value FROM omop_answer_rows WHERE "
        f"field <> 'indications' AND (taken IS NULL OR taken <= {day}) GROUP BY person_id, field"))

    for name in ("people", "conditions", "medications", "vitals", "answers"):
        view = f"raw_{name}"
        source = {"people": "person", "conditions": "condition_occurrence",
                  "medications": "drug_exposure", "vitals": "measurement",
                  "answers": "observation"}[name]
        raw.tables[name] = RawTable(L.TABLE_BY_NAME[name], view, runner.columns(view),
                                    f"{folder}/{source}", wide=False)
    return raw


# ============================================================================== writer


class OmopWriter:
    """Writes synthetic chunks (normalised tables) as OMOP CDM tables."""

    def __init__(self, target: Path, ref: date, fmt: str = "parquet") -> None:
        self.target = target
        self.ref = ref
        self.fmt = fmt
        self.writers: dict[str, Any] = {}
        self.ids = {"condition_occurrence": 0, "drug_exposure": 0, "measurement": 0,
                    "observation": 0}

    def _write(self, name: str, columns: dict[str, list[Any]], types: dict[str, Any]) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]

        from ketascreen.batch.synth import _append

        table = pa.table({k: pa.array(v, type=types[k]) for k, v in columns.items()})
        _append(self.writers, self.target, name, table, self.fmt)

    def _next(self, name: str) -> int:
        self.ids[name] += 1
        return self.ids[name]

    def add(self, chunk: Any) -> None:
        import pyarrow as pa

        from ketascreen.core.dates import PartialDate

        t = chunk.tables
        ref = self.ref
        people = t["people"]
        person: dict[str, list[Any]] = {"person_id": [], "gender_concept_id": [],
                                        "year_of_birth": [], "month_of_birth": [],
                                        "day_of_birth": []}
        for pid, sex, age in zip(people["person_id"], people["sex"], people["age"], strict=True):
            person["person_id"].append(pid)
            person["gender_concept_id"].append({"male": 8507, "female": 8532}.get(sex, 0))
            years = age if age is not None else 40
            # Born on 1 January: the age at the reference date is exact.
            person["year_of_birth"].append(ref.year - years - (1 if (ref.month, ref.day) < (1, 1)
                                                                else 0))
            person["month_of_birth"].append(1)
            person["day_of_birth"].append(1)
        i64 = pa.int64()
        self._write("person", person, dict.fromkeys(person, i64))

        def day(text: str | None, default: date) -> date:
            return PartialDate.parse(text).nearest_to(ref) if text else default

        cond: dict[str, list[Any]] = {k: [] for k in (
            "condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
            "condition_end_date", "condition_source_value")}
        c = t["conditions"]
        for i, pid in enumerate(c["person_id"]):
            start = day(c["since"][i], ref - timedelta(days=400))
            end = start + timedelta(days=30) if c["status"][i] == "history" else None
            if end is not None and end >= ref:
                end = ref - timedelta(days=1)
            cond["condition_occurrence_id"].append(self._next("condition_occurrence"))
            cond["person_id"].append(pid)
            cond["condition_concept_id"].append(0)
            cond["condition_start_date"].append(min(start, end) if end else start)
            cond["condition_end_date"].append(end)
            cond["condition_source_value"].append(c["code"][i] or c["name"][i])
        self._write("condition_occurrence", cond, {
            "condition_occurrence_id": i64, "person_id": i64, "condition_concept_id": i64,
            "condition_start_date": pa.date32(), "condition_end_date": pa.date32(),
            "condition_source_value": pa.string()})

        drug: dict[str, list[Any]] = {k: [] for k in (
            "drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
            "drug_exposure_end_date", "drug_source_value")}
        m = t["medications"]
        for i, pid in enumerate(m["person_id"]):
            if m["schedule"][i] == "stopped":
                end = day(m["stopped_on"][i], ref - timedelta(days=200))
                start = end - timedelta(days=90)
            else:
                start, end = ref - timedelta(days=60), ref + timedelta(days=30)
            drug["drug_exposure_id"].append(self._next("drug_exposure"))
            drug["person_id"].append(pid)
            drug["drug_concept_id"].append(0)
            drug["drug_exposure_start_date"].append(start)
            drug["drug_exposure_end_date"].append(end)
            drug["drug_source_value"].append(m["name"][i])
        self._write("drug_exposure", drug, {
            "drug_exposure_id": i64, "person_id": i64, "drug_concept_id": i64,
            "drug_exposure_start_date": pa.date32(), "drug_exposure_end_date": pa.date32(),
            "drug_source_value": pa.string()})

        meas: dict[str, list[Any]] = {k: [] for k in (
            "measurement_id", "person_id", "measurement_concept_id", "measurement_date",
            "value_as_number", "measurement_source_value")}

        def measure(pid: int, what: tuple[str, int | None], when: date, value: float) -> None:
            meas["measurement_id"].append(self._next("measurement"))
            meas["person_id"].append(pid)
            meas["measurement_concept_id"].append(what[1] or 0)
            meas["measurement_date"].append(when)
            meas["value_as_number"].append(float(value))
            meas["measurement_source_value"].append(what[0])

        v = t["vitals"]
        for i, pid in enumerate(v["person_id"]):
            when = day(v["taken_on"][i], ref - timedelta(days=10))
            measure(pid, LOINC["systolic"], when, v["systolic"][i])
            measure(pid, LOINC["diastolic"], when, v["diastolic"][i])
            if v["heart_rate"][i] is not None:
                measure(pid, LOINC["heart_rate"], when, v["heart_rate"][i])
        obs: dict[str, list[Any]] = {k: [] for k in (
            "observation_id", "person_id", "observation_concept_id", "observation_date",
            "value_as_string", "observation_source_value")}
        ans = t["answers"]
        for i, pid in enumerate(ans["person_id"]):
            for name, values in ans.items():
                if name == "person_id" or values[i] is None:
                    continue
                value = values[i]
                if name in LABS:
                    measure(pid, LABS[name], ref - timedelta(days=20), value)
                    continue
                for one in (str(value).split(";") if name == "indications" else [value]):
                    obs["observation_id"].append(self._next("observation"))
                    obs["person_id"].append(pid)
                    obs["observation_concept_id"].append(0)
                    obs["observation_date"].append(ref - timedelta(days=3))
                    obs["value_as_string"].append(
                        ("true" if one else "false") if isinstance(one, bool) else str(one))
                    obs["observation_source_value"].append(ANSWER_PREFIX + name)
        self._write("measurement", meas, {
            "measurement_id": i64, "person_id": i64, "measurement_concept_id": i64,
            "measurement_date": pa.date32(), "value_as_number": pa.float64(),
            "measurement_source_value": pa.string()})
        self._write("observation", obs, {
            "observation_id": i64, "person_id": i64, "observation_concept_id": i64,
            "observation_date": pa.date32(), "value_as_string": pa.string(),
            "observation_source_value": pa.string()})

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
