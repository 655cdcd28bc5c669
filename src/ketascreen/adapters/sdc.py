"""ketascreen's intake questionnaire as a FHIR SDC ``Questionnaire``, and its responses read back.

Generated from ``knowledge/questionnaire.yaml`` through :mod:`ketascreen.knowledge.questionnaire`,
the same definitions the web questionnaire renders, so the two never drift: each page becomes a
``group`` item, each question an item whose ``linkId`` is the question's id, with ``answerOption``
for choices, ``enableWhen`` for follow-ups, ``required``, LOINC item codes where the definition
gives a standard code, min/max/unit extensions, help texts and the crisis alerts as display items
shown by ``enableWhen``.

A ``QuestionnaireResponse`` to it is read by :func:`read_response` through
:meth:`Questionnaire.to_intake` (the web app's own path from answers to an intake), and
:func:`response_for` writes the answers an intake gives (used for the round trip intake → FHIR →
intake). FHIR R4 (4.0.1); see :mod:`ketascreen.adapters.fhir_r4` for the version pin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ketascreen.adapters.fhir_r4 import CANONICAL_BASE, MappingIssue
from ketascreen.knowledge.questionnaire import (
    AnswerValue,
    EnableWhen,
    Item,
    Option,
    Questionnaire,
    coerce_answer,
    load_questionnaire,
)

__all__ = [
    "ResponseAnswers",
    "answer_system",
    "questionnaire_resource",
    "questionnaire_url",
    "read_response",
    "response_for",
]

SDC_PROFILE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"
ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
ITEM_CONTROL_SYSTEM = "http://hl7.org/fhir/questionnaire-item-control"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
OPTION_EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
INTAKE_FIELD = f"{CANONICAL_BASE}/StructureDefinition/intake-field"
"""ketascreen's extension on an item: the screening-contract field its answer fills."""
UCUM = "http://unitsofmeasure.org"
UCUM_UNITS = {"mmHg": ("mm[Hg]", "mmHg"), "years": ("a", "years"),
              "beats per minute": ("/min", "beats per minute")}

ITEM_TYPES = {"boolean": "boolean", "choice": "choice", "multi_choice": "choice",
              "integer": "integer", "decimal": "decimal", "text": "string", "lines": "text",
              "date": "date", "month": "date", "display": "display"}
# Lists the record carries as resources (Condition, MedicationStatement, AllergyIntolerance,
# FamilyMemberHistory): response_for leaves their questions to those resources.
RESOURCE_LISTS = frozenset({"conditions", "medications", "allergies", "family_history"})


def questionnaire_url(q: Questionnaire | None = None) -> str:
    """The canonical URL of ketascreen's Questionnaire (a QuestionnaireResponse names it)."""
    return f"{CANONICAL_BASE}/Questionnaire/{(q or load_questionnaire()).id}"


def answer_system(item_id: str, q: Questionnaire | None = None) -> str:
    """The code system of one item's answer options (codes are the options' values)."""
    return f"{questionnaire_url(q)}/answers/{item_id}"


def _pascal(text: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", text) if w)


def _coding(c: Any) -> dict[str, Any]:
    out = {"system": c.system, "code": c.code}
    if c.display:
        out["display"] = c.display
    return out


# --------------------------------------------------------------------------------------------
# Questionnaire → SDC Questionnaire


class _Writer:
    def __init__(self, q: Questionnaire, crisis_contacts: str) -> None:
        self.q = q
        self.crisis = crisis_contacts
        self.alerts_after: dict[str, list[Any]] = {}
        for alert in q.alerts:
            self.alerts_after.setdefault(alert.when[0].item, []).append(alert)

    def text(self, s: str) -> str:
        return " ".join(s.replace("{crisis_contacts}", self.crisis).split())

    def option_coding(self, item: Item, o: Option) -> dict[str, Any]:
        if o.code is not None:
            coding = _coding(o.code)
            coding.setdefault("display", o.label)
        else:
            coding = {"system": answer_system(item.id, self.q), "code": str(o.value).lower()
                      if isinstance(o.value, bool) else str(o.value), "display": o.label}
        if isinstance(o.value, int) and not isinstance(o.value, bool):
            coding["extension"] = [{"url": ORDINAL_VALUE, "valueDecimal": o.value}]
        return coding

    def enable_when(self, c: EnableWhen) -> dict[str, Any]:
        out: dict[str, Any] = {"question": c.item, "operator": c.operator}
        target = self.q.item(c.item)
        if c.operator == "exists" or target.type == "boolean":
            out["answerBoolean"] = bool(c.answer)
        elif target.options:
            opt = target.option(c.answer) or next(o for o in target.options
                                                   if str(o.value) == str(c.answer))
            coding = self.option_coding(target, opt)
            coding.pop("extension", None)
            out["answerCoding"] = coding
        elif target.type == "integer":
            out["answerInteger"] = int(c.answer)
        elif target.type == "decimal":
            out["answerDecimal"] = float(c.answer)
        elif target.type in ("date", "month"):
            out["answerDate"] = str(c.answer)
        else:
            out["answerString"] = str(c.answer)
        return out

    def conditions(self, node: dict[str, Any], conditions: list[EnableWhen],
                   behavior: str) -> None:
        if conditions:
            node["enableWhen"] = [self.enable_when(c) for c in conditions]
            if len(conditions) > 1:
                node["enableBehavior"] = behavior

    def item(self, item: Item) -> dict[str, Any]:
        node: dict[str, Any] = {"linkId": item.id, "text": self.text(item.text),
                                "type": ITEM_TYPES[item.type]}
        ext: list[dict[str, Any]] = []
        kind = "Integer" if item.type == "integer" else "Decimal"
        if item.min is not None:
            ext.append({"url": MIN_VALUE, f"value{kind}": int(item.min) if kind == "Integer"
                        else item.min})
        if item.max is not None:
            ext.append({"url": MAX_VALUE, f"value{kind}": int(item.max) if kind == "Integer"
                        else item.max})
        if item.unit:
            code, display = UCUM_UNITS.get(item.unit, (None, item.unit))
            ext.append({"url": UNIT, "valueCoding": {"system": UCUM, "code": code,
                                                     "display": display} if code else
                        {"display": display}})
        m = item.maps_to
        if m is not None:
            ext.append({"url": INTAKE_FIELD, "valueString": _describe_mapping(m)})
        if ext:
            node["extension"] = ext
        if item.code is not None:
            node["code"] = [_coding(item.code)]
        self.conditions(node, item.enable_when, item.enable_behavior)
        if item.required:
            node["required"] = True
        if item.type == "multi_choice":
            node["repeats"] = True
        if item.type in ("text", "lines"):
            node["maxLength"] = item.max_length
        if item.options:
            options = []
            for o in item.options:
                opt: dict[str, Any] = {"valueCoding": self.option_coding(item, o)}
                if o.exclusive:
                    opt["extension"] = [{"url": OPTION_EXCLUSIVE, "valueBoolean": True}]
                options.append(opt)
            node["answerOption"] = options
        if item.help:
            node["item"] = [self.display(f"{item.id}.help", item.help, control="help")]
        return node

    def display(self, link_id: str, text: str, control: str | None = None) -> dict[str, Any]:
        node: dict[str, Any] = {"linkId": link_id, "text": self.text(text), "type": "display"}
        if control:
            node["extension"] = [{"url": ITEM_CONTROL, "valueCodeableConcept": {"coding": [
                {"system": ITEM_CONTROL_SYSTEM, "code": control}]}}]
        return node

    def resource(self) -> dict[str, Any]:
        q = self.q
        groups = []
        for page in q.pages:
            group: dict[str, Any] = {"linkId": page.id, "text": self.text(page.title),
                                     "type": "group"}
            if page.code is not None:
                group["code"] = [_coding(page.code)]
            self.conditions(group, page.enable_when, page.enable_behavior)
            children = []
            if page.intro:
                children.append(self.display(f"{page.id}.intro", page.intro))
            for item in page.items:
                children.append(self.item(item))
                for alert in self.alerts_after.get(item.id, ()):
                    node = self.display(f"alert.{alert.id}", f"{alert.title}. {alert.text}")
                    self.conditions(node, alert.when, alert.behavior)
                    children.append(node)
            group["item"] = children
            groups.append(group)
        licences = [f"{i.name} ({i.title}), {i.holder}: {i.terms} Cite: {i.citation}"
                    for i in q.instruments.values()]
        out: dict[str, Any] = {
            "resourceType": "Questionnaire",
            "id": q.id,
            "meta": {"profile": [SDC_PROFILE]},
            "url": questionnaire_url(q),
            "version": q.version,
            "name": _pascal(q.id),
            "title": q.title,
            "status": "active",
            "subjectType": ["Patient"],
            "description": self.text(q.description),
            "item": groups,
        }
        if q.publisher:
            out["publisher"] = q.publisher
        if licences:
            out["copyright"] = "\n\n".join(licences)
        return out


def _describe_mapping(m: Any) -> str:
    if m.path is not None:
        return str(m.path)
    if m.field is not None:
        match = ", ".join(f"{k}={v}" for k, v in m.match.items())
        return f"{m.list_}[{match}].{m.field}"
    if m.from_options:
        return f"{m.list_} (one entry per chosen option)"
    if m.lines is not None:
        return f"{m.list_} (one {m.lines} per line)"
    return f"{m.list_} (answered: no means none)"


def questionnaire_resource(q: Questionnaire | None = None, *,
                           crisis_contacts: str | None = None) -> dict[str, Any]:
    """ketascreen's questionnaire as an SDC Questionnaire (FHIR R4 JSON).

    ``crisis_contacts`` fills the ``{crisis_contacts}`` placeholders (default: 988 and 911,
    for the US).
    """
    if crisis_contacts is None:
        crisis_contacts = _default_crisis_contacts()
    return _Writer(q or load_questionnaire(), crisis_contacts).resource()


def _default_crisis_contacts() -> str:
    """The knowledge base's own wording (manifest.yaml ``texts.crisis_contacts``)."""
    from importlib import resources

    import yaml

    text = (resources.files("ketascreen.knowledge") / "manifest.yaml").read_text("utf-8")
    return " ".join(str(yaml.safe_load(text)["texts"]["crisis_contacts"]).split())


# --------------------------------------------------------------------------------------------
# QuestionnaireResponse → intake


@dataclass(slots=True)
class ResponseAnswers:
    """What a QuestionnaireResponse gives: contract intake data, origins and issues."""

    data: dict[str, Any]
    answers: dict[str, AnswerValue] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    issues: list[MappingIssue] = field(default_factory=list)


_VALUE_KEYS = ("valueBoolean", "valueInteger", "valueDecimal", "valueDate", "valueDateTime",
               "valueString", "valueCoding", "valueQuantity", "valueTime", "valueUri")


def _raw_answer(item: Item, answer: dict[str, Any]) -> tuple[Any, str | None]:
    key = next((k for k in _VALUE_KEYS if k in answer), None)
    if key is None:
        return None, "an answer without a value ketascreen reads"
    value = answer[key]
    if key == "valueCoding":
        coding = value if isinstance(value, dict) else {}
        code = coding.get("code")
        for o in item.options:
            if o.code is not None and o.code.code == code and o.code.system == coding.get(
                    "system"):
                return o.value, None
        return code, None if code is not None else "a coding without a code"
    if key == "valueQuantity":
        return (value.get("value") if isinstance(value, dict) else None), None
    if key == "valueDateTime" and isinstance(value, str):
        return value[:10], None
    return value, None


def read_response(resource: dict[str, Any], path: str = "QuestionnaireResponse",
                  q: Questionnaire | None = None) -> ResponseAnswers:
    """The intake data a response to ketascreen's Questionnaire gives (nothing guessed).

    Every answer is checked against its question (an invalid one is an ``error`` issue at its
    FHIR path); answers to questions that do not apply, and items that are not ketascreen's
    questions, are reported as ``ignored``.
    """
    q = q or load_questionnaire()
    known = {i.id: i for i in q.items()}
    structural = {p.id for p in q.pages} | {f"{p.id}.intro" for p in q.pages} | {
        f"alert.{a.id}" for a in q.alerts} | {f"{i}.help" for i in known}
    out = ResponseAnswers({})
    where: dict[str, str] = {}

    def walk(items: Any, base: str) -> None:
        for i, node in enumerate(items if isinstance(items, list) else []):
            p = f"{base}.item[{i}]"
            if not isinstance(node, dict):
                out.issues.append(MappingIssue(p, "ignored", "not a response item"))
                continue
            link = node.get("linkId")
            item = known.get(link) if isinstance(link, str) else None
            given = node.get("answer")
            answers: list[Any] = given if isinstance(given, list) else []
            if item is None:
                if link not in structural and (answers or not node.get("item")):
                    out.issues.append(MappingIssue(p, "ignored", "not a question of ketascreen's "
                                                   "questionnaire", str(link)))
                walk(node.get("item"), p)
                continue
            values: list[Any] = []
            for j, ans in enumerate(answers):
                a = ans if isinstance(ans, dict) else {}
                value, problem = _raw_answer(item, a)
                if problem:
                    out.issues.append(MappingIssue(f"{p}.answer[{j}]", "error", problem))
                elif value is not None:
                    values.append(value)
                walk(a.get("item"), f"{p}.answer[{j}]")
            walk(node.get("item"), p)
            if not values:
                continue
            if item.type == "multi_choice":
                raw: Any = values
            elif item.type == "lines":
                raw = "\n".join(str(v) for v in values)
            elif len(values) > 1:
                out.issues.append(MappingIssue(f"{p}.answer[1]", "error", "this question takes "
                                               "one answer"))
                continue
            else:
                raw = values[0]
            value, message = coerce_answer(item, raw)
            if message is not None or value is None:
                out.issues.append(MappingIssue(f"{p}.answer[0]", "error", message or "no answer",
                                               str(raw)))
                continue
            out.answers[item.id] = value
            where[item.id] = f"{p}.answer[0]" if item.type != "multi_choice" else f"{p}.answer"
    walk(resource.get("item"), path)
    for item_id in out.answers:
        if q.answer(item_id, out.answers) is None:
            out.issues.append(MappingIssue(where[item_id], "ignored", "answers a question that "
                                           "does not apply, given the other answers", item_id))
    out.data = q.to_intake(out.answers, audience="clinician")
    out.origins = _origins(q, out.data, out.answers, where)
    return out


def _origins(q: Questionnaire, data: dict[str, Any], answers: dict[str, AnswerValue],
             where: dict[str, str]) -> dict[str, str]:
    origins: dict[str, str] = {}
    for item in q.items():
        m = item.maps_to
        if m is None or item.id not in where or q.answer(item.id, answers) is None:
            continue
        p = where[item.id]
        if m.path is not None:
            origins[m.path] = p
            continue
        entries = data.get(m.list_ or "")
        if not isinstance(entries, list):
            continue
        if m.field is not None and m.match is not None:
            for idx, e in enumerate(entries):
                if isinstance(e, dict) and all(e.get(k) == v for k, v in m.match.items()):
                    origins.setdefault(f"{m.list_}[{idx}]", p)
                    origins[f"{m.list_}[{idx}].{m.field}"] = p
        elif m.from_options:
            answer = answers[item.id]
            chosen = {str(c) for c in answer} if isinstance(answer, list) else {str(answer)}
            for o in item.options:
                if str(o.value) not in chosen or o.exclusive:
                    continue
                target = o.entry if o.entry is not None else o.value
                for idx, e in enumerate(entries):
                    if e == target or (isinstance(e, dict) and isinstance(target, dict) and all(
                            e.get(k) == v for k, v in target.items())):
                        origins.setdefault(f"{m.list_}[{idx}]", p)
            origins.setdefault(m.list_ or "", p)
        else:
            origins.setdefault(m.list_ or "", p)
    return origins


# --------------------------------------------------------------------------------------------
# intake → QuestionnaireResponse (the answers the record's resources cannot carry)


_MISSING = object()


def _get(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        m = re.match(r"^([a-z_][a-z0-9_]*)(?:\[(\d+)\])?$", part)
        if m is None or not isinstance(node, dict) or m.group(1) not in node:
            return _MISSING
        node = node[m.group(1)]
        if m.group(2) is not None:
            k = int(m.group(2))
            if not isinstance(node, list) or k >= len(node):
                return _MISSING
            node = node[k]
    return node


def _inverse(item: Item, m: Any, value: Any) -> Any:
    """The answer that gives ``value`` through the item's value_map (or the value itself)."""
    if m.value_map:
        for key, mapped in m.value_map.items():
            if mapped == value and type(mapped) is type(value):
                opt = next((o for o in item.options if str(o.value) == key), None)
                return opt.value if opt is not None else key
    return value


def response_for(intake: dict[str, Any], *, q: Questionnaire | None = None,
                 subject: str | None = None, authored: str | None = None,
                 ) -> tuple[dict[str, Any], list[str]]:
    """A QuestionnaireResponse giving the answers of ``intake`` that records do not carry.

    Conditions, medications, allergies and family history are left to their own resources.
    Returns the response and the intake fields it could not express (a question that does not
    apply given the other answers, or a field no question asks about).
    """
    q = q or load_questionnaire()
    answers: dict[str, AnswerValue] = {}
    for item in q.items():
        m = item.maps_to
        if m is None or (m.list_ in RESOURCE_LISTS):
            continue
        if m.path is not None:
            value = _get(intake, m.path)
            if value is _MISSING or (value is None and not (
                    m.value_map and None in m.value_map.values())):
                continue
            answers[item.id] = _inverse(item, m, value)
        elif m.field is not None and m.match is not None:
            entries = intake.get(m.list_ or "")
            if entries == [] and m.field == "status" and item.option("never") is not None:
                answers[item.id] = "never"  # an empty list: no use of any substance at all
                continue
            for e in entries if isinstance(entries, list) else []:
                if isinstance(e, dict) and all(e.get(k) == v for k, v in m.match.items()) and (
                        e.get(m.field) is not None):
                    answers[item.id] = _inverse(item, m, e[m.field])
        elif m.from_options:
            entries = intake.get(m.list_ or "")
            if isinstance(entries, list):
                chosen = [o.value for o in item.options if o.entry is None and o.value in entries]
                answers[item.id] = [str(c) for c in chosen]
    # A yes/no question that only opens follow-ups ("do you know your blood pressure?") is
    # answered yes when one of its follow-ups is answered.
    for item in q.items():
        if item.maps_to is None and item.type == "boolean":
            opened = [i for i in q.items() if any(c.item == item.id for c in i.enable_when)]
            if any(i.id in answers for i in opened):
                answers[item.id] = True
    regenerated = q.to_intake(answers, audience="clinician")
    lost = _lost(intake, regenerated)
    resource = _response_resource(q, answers, subject, authored)
    return resource, lost


def _lost(intake: dict[str, Any], regenerated: dict[str, Any]) -> list[str]:
    lost: list[str] = []
    skip = RESOURCE_LISTS | {"id", "assessed_on", "age", "sex", "vitals", "pregnancy", "labs",
                             "extensions"}
    for key, value in intake.items():
        if key in skip or value is None:
            continue
        again = regenerated.get(key, _MISSING)
        if isinstance(value, dict) and again is _MISSING:
            again = {}
        if isinstance(value, dict) and isinstance(again, dict):
            lost += [f"{key}.{k}" for k, v in value.items()
                     if v is not None and again.get(k, _MISSING) != v]
        elif isinstance(value, list) and isinstance(again, list) and key == "substances":
            # "never" entries say what an empty list says: no use of that substance.
            lost += [f"{key}[{i}]" for i, entry in enumerate(value) if entry not in again]
            named = {e.get("substance") for e in value if isinstance(e, dict)}
            if any(e not in value and e.get("substance") not in named
                   and e.get("status") != "never" for e in again if isinstance(e, dict)):
                lost.append(key)
        elif again != value:
            lost.append(key)
    for key in ("pregnancy",):
        value = intake.get(key)
        if isinstance(value, dict) and value.get("planning") is not None and (
                regenerated.get(key, {}).get("planning") != value["planning"]):
            lost.append(f"{key}.planning")
    if isinstance(intake.get("labs"), dict) and intake["labs"].get("child_pugh") is not None:
        lost.append("labs.child_pugh")
    if intake.get("extensions"):
        lost.append("extensions")
    return lost


def _answer_node(q: Questionnaire, item: Item, value: AnswerValue) -> list[dict[str, Any]]:
    values = value if isinstance(value, list) else [value]
    out: list[dict[str, Any]] = []
    for v in values:
        if item.options:
            o = item.option(v) or next((o for o in item.options if str(o.value) == str(v)), None)
            if o is None:
                continue
            coding = _Writer(q, "").option_coding(item, o)
            coding.pop("extension", None)
            out.append({"valueCoding": coding})
        elif item.type == "boolean":
            out.append({"valueBoolean": bool(v)})
        elif item.type == "integer":
            out.append({"valueInteger": int(v)})
        elif item.type == "decimal":
            out.append({"valueDecimal": float(v)})
        elif item.type in ("date", "month"):
            out.append({"valueDate": str(v)})
        elif item.type == "lines":
            out += [{"valueString": line} for line in str(v).splitlines() if line.strip()]
        else:
            out.append({"valueString": str(v)})
    return out


def _response_resource(q: Questionnaire, answers: dict[str, AnswerValue], subject: str | None,
                       authored: str | None) -> dict[str, Any]:
    groups = []
    for page in q.pages:
        nodes = []
        for item in page.items:
            if item.id not in answers or q.answer(item.id, answers) is None:
                continue
            answer = _answer_node(q, item, answers[item.id])
            if answer:
                nodes.append({"linkId": item.id, "text": item.text, "answer": answer})
        if nodes:
            groups.append({"linkId": page.id, "text": page.title, "item": nodes})
    out: dict[str, Any] = {"resourceType": "QuestionnaireResponse",
                           "questionnaire": f"{questionnaire_url(q)}|{q.version}",
                           "status": "completed", "item": groups}
    if subject:
        out["subject"] = {"reference": subject}
    if authored:
        out["authored"] = authored
    return out
