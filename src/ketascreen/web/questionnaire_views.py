"""Turning questionnaire items into what the templates show, and form posts back into answers.

Shared by the patient's one-topic-per-page questionnaire and the clinician's one-page intake
form. Works without JavaScript: the server decides which follow-ups apply; ``static/app.js``
only shows and hides them sooner, from the same ``enable_when`` data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ketascreen.knowledge.questionnaire import (
    Alert,
    AnswerValue,
    Audience,
    EnableWhen,
    Item,
    Page,
    Questionnaire,
    coerce_answer,
)

__all__ = ["FormResult", "alert_views", "answer_label", "item_views", "read_form"]


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _condition_data(conds: list[EnableWhen], behavior: str) -> str:
    return json.dumps({"behavior": behavior, "when": [
        {"item": c.item, "op": c.operator,
         "answer": c.answer if isinstance(c.answer, int | float) and not isinstance(c.answer, bool)
         else _form_value(c.answer)} for c in conds]})


def item_views(q: Questionnaire, items: Iterable[Item], answers: Mapping[str, AnswerValue], *,
               errors: Mapping[str, str] | None = None,
               raw: Mapping[str, list[str]] | None = None,
               audience: Audience = "patient", new: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One view per item (of ``audience``): texts, options with their checked state, the
    current value, whether it applies now, its error and its ``enable_when`` for the script."""
    errors = errors or {}
    raw = raw or {}
    fresh = set(new)
    views = []
    for item in items:
        if audience not in item.audience:
            continue
        enabled = q.item_applies(item, answers, audience=audience)
        if item.id in raw:
            current: list[str] = [v for v in raw[item.id] if v != ""]
        else:
            value = answers.get(item.id)
            if value is None:
                current = []
            elif isinstance(value, list):
                current = [_form_value(v) for v in value]
            else:
                current = [_form_value(value)]
        if item.type == "boolean":
            options = [{"value": "yes", "label": "Yes", "exclusive": False},
                       {"value": "no", "label": "No", "exclusive": False}]
        else:
            options = [{"value": _form_value(o.value), "label": o.label,
                        "exclusive": o.exclusive} for o in item.options]
        for o in options:
            o["checked"] = o["value"] in current
        views.append({
            "id": item.id,
            "type": item.type,
            "text": item.text,
            "help": item.help,
            "required": item.required,
            "unit": item.unit,
            "min": None if item.min is None else _form_value(item.min),
            "max": None if item.max is None else _form_value(item.max),
            "max_length": item.max_length,
            "enabled": enabled,
            "new": item.id in fresh,
            "error": errors.get(item.id),
            "value": current[0] if current else "",
            "options": options,
            "enable": _condition_data(item.enable_when, item.enable_behavior)
            if item.enable_when else "",
        })
    return views


def alert_views(q: Questionnaire, answers: Mapping[str, AnswerValue], contacts: str, *,
                on_items: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(alerts that concern items on this page — shown when active, else hidden for the script
    to reveal —, alerts already active from earlier answers)."""
    active = {a.id for a in q.active_alerts(answers)}
    local, earlier = [], []
    for a in q.alerts:
        view = _alert_view(a, contacts, a.id in active)
        if any(c.item in on_items for c in a.when):
            local.append(view)
        elif a.id in active:
            earlier.append(view)
    return local, earlier


def _alert_view(a: Alert, contacts: str, active: bool) -> dict[str, Any]:
    return {"id": a.id, "kind": a.kind, "title": a.title,
            "text": a.text.replace("{crisis_contacts}", contacts), "active": active,
            "when": _condition_data(a.when, a.behavior)}


def known_answers(q: Questionnaire, answers: Mapping[str, AnswerValue],
                  referenced: Iterable[str]) -> str:
    """The earlier answers the script needs to evaluate this page's conditions, as JSON."""
    out: dict[str, list[str]] = {}
    for item_id in referenced:
        value = q.answer(item_id, answers)
        if value is None:
            continue
        out[item_id] = [_form_value(v) for v in value] if isinstance(value, list) else [
            _form_value(value)]
    return json.dumps(out)


@dataclass
class FormResult:
    answers: dict[str, AnswerValue]
    errors: dict[str, str] = field(default_factory=dict)
    raw: dict[str, list[str]] = field(default_factory=dict)
    shown: set[str] = field(default_factory=set)


def read_form(q: Questionnaire, items: Iterable[Item], form: Mapping[str, list[str]],
              answers: Mapping[str, AnswerValue]) -> FormResult:
    """Merge a posted form into the answers: only items the page showed (marked by ``_shown``)
    are read; an emptied field removes its answer; a wrong value is kept back with its error."""
    result = FormResult(dict(answers))
    result.shown = set(form.get("_shown", []))
    for item in items:
        if item.id not in result.shown or item.type == "display":
            continue
        posted = [v.strip() for v in form.get(item.id, [])]
        values = [v for v in posted if v]
        if not values:
            result.answers.pop(item.id, None)
            continue
        value, problem = coerce_answer(item, values if item.type == "multi_choice" else values[0])
        if problem is not None:
            result.errors[item.id] = problem[0].upper() + problem[1:] + "."
            result.raw[item.id] = values
            result.answers.pop(item.id, None)
        else:
            assert value is not None
            result.answers[item.id] = value
    return result


def answer_label(item: Item, value: AnswerValue) -> str:
    """An answer as the person would read it back on the review page."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        labels = [o.label for o in item.options if str(o.value) in value]
        return "; ".join(labels) if labels else "None"
    opt = item.option(value) if item.options else None
    if opt is not None:
        return opt.label
    text = str(value)
    return f"{text} {item.unit}" if item.unit else text


def page_items(page: Page, audience: Audience) -> list[Item]:
    return [i for i in page.items if audience in i.audience]
