"""Reading an intake: every problem reported at once, each with its path and a plain message."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import date
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ketascreen.core.dates import PartialDate
from ketascreen.core.model import Intake
from ketascreen.errors import IntakeError, Problem


def format_loc(loc: Sequence[int | str]) -> str:
    """``('conditions', 2, 'status')`` → ``conditions[2].status``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _known_keys(loc: Sequence[int | str]) -> list[str]:
    """Field names allowed at the parent of ``loc`` (for 'did you mean' hints)."""
    model: Any = Intake
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
        for arg in getattr(model, "__args__", ()) or ():
            inner = getattr(arg, "__args__", None)
            candidate = inner[0] if inner else arg
            if hasattr(candidate, "model_fields"):
                model = candidate
                break
    return list(getattr(model, "model_fields", {}))


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind == "extra_forbidden":
        name = str(err["loc"][-1]) if err["loc"] else ""
        close = difflib.get_close_matches(name, _known_keys(err["loc"]), n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown field, not part of the screening contract{hint}"
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        expected = expected.replace(" or ", ", ")
        return f"must be one of {expected} (got {err['input']!r})"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = {"greater_than_equal": "at least", "less_than_equal": "at most",
                 "greater_than": "more than", "less_than": "less than"}[kind]
        limit = next(iter(ctx.values())) if ctx else "?"
        return f"must be {bound} {limit} (got {err['input']!r})"
    if kind in ("too_short", "too_long"):
        # Every length limit of the contract is exact (a questionnaire's item count).
        n = ctx.get("min_length", ctx.get("max_length"))
        got = ctx.get("actual_length")
        return f"must have exactly {n} items" + (f" (got {got})" if got is not None else "")
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in ("int_type", "int_parsing", "int_from_float", "float_type", "float_parsing"):
        if kind.startswith("float"):
            return f"must be a number (got {err['input']!r})"
        return f"must be a whole number (got {err['input']!r})"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false (got {err['input']!r})"
    if kind in ("string_type",):
        return f"must be text (got {err['input']!r})"
    if kind in ("list_type",):
        return "must be a list"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be an object"
    if kind.startswith("date"):
        return f"must be a date written YYYY-MM-DD (got {err['input']!r})"
    return str(err["msg"])


def problems_from(exc: ValidationError) -> list[Problem]:
    out: list[Problem] = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        out.append(Problem(format_loc(loc) or "(intake)", _message(err)))
    return out


# Types the contract's JSON would never carry but Python callers might; kept strict on purpose.
def _late_dates(data: dict[str, Any], today: date) -> list[Problem]:
    """Dates after the screening date, each at its own path (checked on the raw data, so they
    are reported together with every other problem)."""
    as_of = today
    raw = data.get("assessed_on")
    if isinstance(raw, str):
        try:
            as_of = date.fromisoformat(raw)
        except ValueError:
            return []  # reported by the model
    out: list[Problem] = []

    def check(path: str, value: Any) -> None:
        if isinstance(value, str):
            try:
                earliest = PartialDate.parse(value).earliest()
            except ValueError:
                return  # malformed: reported by the model
            if earliest > as_of:
                out.append(Problem(path, f"{value} is after the screening date "
                                         f"{as_of.isoformat()}"))

    for list_name, keys in (("conditions", ("since", "until")), ("medications", ("stopped_on",)),
                            ("substances", ("last_use",))):
        items = data.get(list_name)
        if isinstance(items, list):
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    for key in keys:
                        check(f"{list_name}[{i}].{key}", item.get(key))
    vitals = data.get("vitals")
    if isinstance(vitals, dict):
        check("vitals.taken_on", vitals.get("taken_on"))
    return out


def parse_intake(data: Any, *, today: date, source: str | None = None) -> Intake:
    """Validate one intake (plain JSON data); raises IntakeError listing every problem."""
    if not isinstance(data, dict):
        raise IntakeError([Problem("(intake)", "an intake is a JSON object")], source)
    late = _late_dates(data, today)
    try:
        intake = Intake.model_validate(data, context={"today": today})
    except ValidationError as exc:
        found = [p for p in problems_from(exc)
                 if not (late and p.field == "(intake)" and "after the screening date" in p.message)]
        raise IntakeError(found + late, source) from exc
    if late:
        raise IntakeError(late, source)
    return intake
