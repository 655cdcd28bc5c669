"""The self-screening questionnaire as typed data, and how its answers become an intake.

The questionnaire lives in ``questionnaire.yaml`` beside this module: pages (one topic each),
items (questions) with their answer options, FHIR-style ``enable_when`` conditions, required
flags, LOINC codes where a standard code exists, and a ``maps_to`` that says which intake field an
answer fills. The web app renders it; the FHIR adapter exports it as an SDC ``Questionnaire`` and
reads a ``QuestionnaireResponse`` back through :meth:`Questionnaire.to_intake`, so the two can
never drift. The schema is documented in ``docs/web.md``.

A page with ``instrument`` presents a validated questionnaire of the knowledge base
(``knowledge/instruments/<id>.yaml``). The loader takes its name, citation and licence from there
(never from the questionnaire file), refuses a page whose instrument's licence does not allow
shipping the item texts (``licence.ship_item_texts``), and checks that the item texts and answer
labels are the knowledge base's verbatim wording.

Answers are a plain mapping ``item id → value``: text, a number, ``true``/``false`` or, for a
``multi_choice`` item, a list of option values. An item that is not enabled has no answer, whatever
the mapping holds (as in FHIR, the answers of a disabled item are ignored).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from ketascreen.core.dates import PartialDate
from ketascreen.core.kb import Instrument, KnowledgeBase
from ketascreen.core.model import Intake
from ketascreen.core.validation import format_loc
from ketascreen.errors import Diagnostic, KnowledgeBaseError
from ketascreen.knowledge.loader import load_knowledge_base

__all__ = [
    "Alert",
    "AnswerValue",
    "Coding",
    "EnableWhen",
    "InstrumentInfo",
    "Item",
    "ItemMapping",
    "Option",
    "Page",
    "Questionnaire",
    "coerce_answer",
    "load_questionnaire",
    "questionnaire_from_data",
]

QUESTIONNAIRE_FILE = Path(__file__).resolve().parent / "questionnaire.yaml"

AnswerValue = str | int | float | bool | list[str]
Scalar = str | int | float | bool
ItemType = Literal["boolean", "choice", "multi_choice", "integer", "decimal", "text", "lines",
                   "date", "month", "display"]
Operator = Literal["exists", "=", "!=", ">", ">=", "<", "<="]
Audience = Literal["patient", "clinician"]
LineKind = Literal["medication", "allergy", "condition"]

_ID = r"^[a-z][a-z0-9_]*$"
_BOTH: tuple[Audience, ...] = ("patient", "clinician")
_CODE_LIKE = re.compile(r"^[A-Za-z]\d[0-9A-Za-z](\.?[0-9A-Za-z]{1,4})?$")
_DOSE_START = re.compile(r"\d")
_AS_NEEDED = re.compile(r"\b(as needed|when needed|prn|if needed)\b", re.IGNORECASE)


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Coding(_Data):
    """A standard code for an item or option (LOINC for questions, where one exists)."""

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


class Option(_Data):
    value: Scalar = Field(description="what the answer holds when this option is chosen")
    label: str = Field(min_length=1, description="the text the person reads")
    entry: dict[str, Any] | None = Field(
        None, description="for a list mapping with from_options: the intake entry this option adds")
    exclusive: bool = Field(False, description="'none of these': cannot be combined with others")
    code: Coding | None = None


class EnableWhen(_Data):
    """FHIR ``enableWhen``: the item applies when ``item``'s answer satisfies ``operator answer``."""

    item: str = Field(pattern=_ID)
    operator: Operator
    answer: Scalar


class ItemMapping(_Data):
    """Where an answer goes in the intake. One of three shapes:

    * ``path``: a field (``age``, ``symptoms.suicidal``, ``instruments.phq9[0]``);
    * ``list`` + ``match`` + ``field``: a key of the list entry that matches (created if absent),
      e.g. ``{list: substances, match: {substance: alcohol}, field: status}``;
    * ``list`` with ``from_options`` (each chosen option's ``entry`` is added), ``lines`` (each
      line of the answer becomes an entry: medication, allergy or condition) or ``gate`` (a yes/no
      whose answer makes the list present, empty when "no").
    """

    path: str | None = None
    list_: str | None = Field(None, alias="list")
    match: dict[str, Any] | None = None
    field: str | None = None
    from_options: bool = False
    lines: LineKind | None = None
    gate: bool = False
    value_map: dict[str, Any] | None = Field(
        None, description="answer (written as text) → the intake's value")
    when_disabled: Any = Field(
        default=None, description="the intake value when the item's page applies but the item "
        "does not (a skipped follow-up whose answer is implied); only when given")

    @model_validator(mode="after")
    def _one_shape(self) -> ItemMapping:
        if (self.path is None) == (self.list_ is None):
            raise ValueError("give either path or list")
        if self.list_ is not None:
            shapes = [self.field is not None, self.from_options, self.lines is not None, self.gate]
            if sum(shapes) != 1:
                raise ValueError("a list mapping needs exactly one of field (with match), "
                                 "from_options, lines or gate")
            if (self.field is None) != (self.match is None):
                raise ValueError("match and field go together")
        return self

    def has_when_disabled(self) -> bool:
        return "when_disabled" in self.model_fields_set


class Item(_Data):
    id: str = Field(pattern=_ID, description="unique; also the FHIR linkId")
    type: ItemType
    text: str = Field(min_length=1)
    help: str | None = None
    required: bool = False
    options: list[Option] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    max_length: int = Field(2000, ge=1, le=20_000)
    enable_when: list[EnableWhen] = Field(default_factory=list)
    enable_behavior: Literal["all", "any"] = "all"
    code: Coding | None = None
    audience: list[Audience] = Field(default_factory=lambda: list(_BOTH))
    maps_to: ItemMapping | None = None

    def option(self, value: Any) -> Option | None:
        for o in self.options:
            if o.value == value and type(o.value) is type(value):
                return o
        return None


class Page(_Data):
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1)
    intro: str | None = None
    instrument: str | None = Field(
        None, description="this page is a validated questionnaire, asked only when the clinic "
        "asks for it (instruments.<name>)")
    code: Coding | None = None
    enable_when: list[EnableWhen] = Field(default_factory=list)
    enable_behavior: Literal["all", "any"] = "all"
    audience: list[Audience] = Field(default_factory=lambda: list(_BOTH))
    items: list[Item] = Field(min_length=1)


class Alert(_Data):
    """Resources shown at once, on the page where an answer calls for them (crisis, emergency)."""

    id: str = Field(pattern=_ID)
    kind: Literal["crisis", "emergency"]
    title: str
    text: str = Field(description="may contain {crisis_contacts}")
    when: list[EnableWhen] = Field(min_length=1)
    behavior: Literal["all", "any"] = "any"


class InstrumentInfo(_Data):
    """A validated questionnaire a page presents, as the knowledge base describes it.

    Filled in by the loader from ``knowledge/instruments/<id>.yaml`` (:meth:`of`); the
    questionnaire file never carries a copy.
    """

    name: str = Field(description="the short name shown with the score: PHQ-9")
    title: str
    citation: str
    holder: str = Field(description="who holds the rights")
    terms: str = Field(description="the licence terms")
    ship_item_texts: bool = Field(description="whether the licence allows shipping the wording")

    @classmethod
    def of(cls, instrument: Instrument) -> InstrumentInfo:
        lic = instrument.licence
        return cls(name=instrument.name, title=instrument.title,
                   citation=" ".join(instrument.citation.split()), holder=lic.holder,
                   terms=" ".join(lic.terms.split()), ship_item_texts=lic.ship_item_texts)


class Questionnaire(_Data):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    version: str
    title: str
    description: str
    publisher: str | None = None
    instruments: dict[str, InstrumentInfo] = Field(
        default_factory=dict, description="the knowledge base's description of each validated "
        "questionnaire a page presents (filled in by the loader)")
    alerts: list[Alert] = Field(default_factory=list)
    pages: list[Page] = Field(min_length=1)
    sha256: str = ""
    _by_id: dict[str, tuple[Page, Item]] | None = PrivateAttr(None)

    # ----------------------------------------------------------------------------------------
    # Consistency of the definition (run once at load)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Questionnaire:
        problems = _check(self)
        kb_instruments = (info.context or {}).get("instruments")
        if kb_instruments is not None:
            problems += _verbatim(self, kb_instruments)
        if problems:
            raise ValueError("\n".join(problems))  # one problem a line (see _diagnostics)
        return self

    # ----------------------------------------------------------------------------------------
    # Lookup

    def item(self, item_id: str) -> Item:
        return self._index()[item_id][1]

    def page(self, page_id: str) -> Page:
        for p in self.pages:
            if p.id == page_id:
                return p
        raise KeyError(page_id)

    def page_of(self, item_id: str) -> Page:
        return self._index()[item_id][0]

    def items(self) -> list[Item]:
        return [i for p in self.pages for i in p.items]

    def _index(self) -> dict[str, tuple[Page, Item]]:
        if self._by_id is None:
            self._by_id = {i.id: (p, i) for p in self.pages for i in p.items}
        return self._by_id

    # ----------------------------------------------------------------------------------------
    # Which questions apply

    def answer(self, item_id: str, answers: Mapping[str, AnswerValue]) -> AnswerValue | None:
        """The answer of an item that applies (None when unanswered or not enabled)."""
        page, item = self._index()[item_id]
        if not self._holds(page.enable_when, page.enable_behavior, answers):
            return None
        if not self._holds(item.enable_when, item.enable_behavior, answers):
            return None
        value = answers.get(item_id)
        if value is None or value == "" or (isinstance(value, list) and item.type != "multi_choice"):
            return None
        return value

    def _holds(self, conditions: list[EnableWhen], behavior: str,
               answers: Mapping[str, AnswerValue]) -> bool:
        if not conditions:
            return True
        results = (self._condition(c, answers) for c in conditions)
        return all(results) if behavior == "all" else any(results)

    def _condition(self, c: EnableWhen, answers: Mapping[str, AnswerValue]) -> bool:
        value = self.answer(c.item, answers)
        if c.operator == "exists":
            return (value is not None) == bool(c.answer)
        if value is None:
            return False
        values = value if isinstance(value, list) else [value]
        if c.operator == "=":
            return any(_same(v, c.answer) for v in values)
        if c.operator == "!=":
            return not any(_same(v, c.answer) for v in values)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            target = c.answer
            if isinstance(target, bool) or not isinstance(target, int | float):
                continue
            if ((c.operator == ">" and v > target) or (c.operator == ">=" and v >= target)
                    or (c.operator == "<" and v < target) or (c.operator == "<=" and v <= target)):
                return True
        return False

    def page_applies(self, page: Page, answers: Mapping[str, AnswerValue], *,
                     instruments: frozenset[str] | None = None,
                     audience: Audience = "patient") -> bool:
        if audience not in page.audience:
            return False
        if page.instrument is not None and instruments is not None and (
                page.instrument not in instruments):
            return False
        return self._holds(page.enable_when, page.enable_behavior, answers)

    def item_applies(self, item: Item, answers: Mapping[str, AnswerValue], *,
                     audience: Audience = "patient") -> bool:
        if audience not in item.audience:
            return False
        return self._holds(item.enable_when, item.enable_behavior, answers)

    def pages_for(self, answers: Mapping[str, AnswerValue], *,
                  instruments: frozenset[str] | None = None,
                  audience: Audience = "patient") -> list[Page]:
        """The pages that apply, in order (pregnancy only where relevant, and so on)."""
        return [p for p in self.pages
                if self.page_applies(p, answers, instruments=instruments, audience=audience)]

    def instrument_ids(self) -> list[str]:
        """The validated questionnaires this questionnaire can ask, in page order."""
        return list(dict.fromkeys(p.instrument for p in self.pages if p.instrument is not None))

    def instrument_problems(self, names: Iterable[str],
                            instruments: Mapping[str, Instrument]) -> list[str]:
        """Why each of ``names`` cannot be asked by this questionnaire (empty: all can).

        ``instruments`` are the knowledge base's, to say why: an instrument whose licence does
        not allow shipping its questions is left to the clinic.
        """
        askable = self.instrument_ids()
        problems = []
        for name in names:
            if name in askable:
                continue
            known = instruments.get(name)
            if known is None:
                problems.append(f"{name} is not a validated questionnaire ketascreen knows")
            elif not known.licence.ship_item_texts:
                problems.append(
                    f"{name} ({known.name}) cannot be asked in the self-screening: its licence "
                    "does not allow ketascreen to ship its questions (the terms: "
                    f"{_words(known.licence.terms)}) The clinic asks it from its own licensed "
                    "form, at the first visit.")
            else:
                problems.append(f"{name} ({known.name}) has no page in the questionnaire")
        return problems

    def visible_items(self, page: Page, answers: Mapping[str, AnswerValue], *,
                      audience: Audience = "patient") -> list[Item]:
        return [i for i in page.items if self.item_applies(i, answers, audience=audience)]

    def unanswered(self, page: Page, answers: Mapping[str, AnswerValue], *,
                   audience: Audience = "patient") -> list[Item]:
        """Required items of ``page`` that apply and have no answer yet."""
        out = []
        for item in self.visible_items(page, answers, audience=audience):
            if item.required and item.type != "display" and _is_empty(answers.get(item.id), item):
                out.append(item)
        return out

    def active_alerts(self, answers: Mapping[str, AnswerValue]) -> list[Alert]:
        return [a for a in self.alerts if self._holds(a.when, a.behavior, answers)]

    # ----------------------------------------------------------------------------------------
    # Answers → intake

    def to_intake(self, answers: Mapping[str, AnswerValue], *,
                  instruments: frozenset[str] | None = None,
                  audience: Audience = "patient") -> dict[str, Any]:
        """The contract intake (plain JSON data) these answers give.

        Only items that apply count. Nothing is guessed: a question that was not answered leaves
        its field absent, so the engine reports it as missing. Validate the result with
        ``parse_intake`` (a wrong value is reported there, with its path).
        """
        out: dict[str, Any] = {}
        for page in self.pages_for(answers, instruments=instruments, audience=audience):
            for item in page.items:
                m = item.maps_to
                if m is None:
                    continue
                if self.item_applies(item, answers, audience=audience):
                    value = answers.get(item.id)
                    if _is_empty(value, item):
                        continue
                    assert value is not None
                    _apply(out, item, m, _mapped(m, value))
                elif m.has_when_disabled() and self._inputs_answered(item, answers):
                    _apply(out, item, m, copy.deepcopy(m.when_disabled), raw=True)
        return out

    def _inputs_answered(self, item: Item, answers: Mapping[str, AnswerValue]) -> bool:
        return all(self.answer(c.item, answers) is not None for c in item.enable_when)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return str(a) == str(b)


def _is_empty(value: Any, item: Item) -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, list):
        return item.type != "multi_choice"  # an empty multi_choice is "none of these"
    return False


def _mapped(m: ItemMapping, value: AnswerValue) -> Any:
    if m.value_map is None:
        return value
    key = str(value).lower() if isinstance(value, bool) else str(value)
    if key in m.value_map:
        return m.value_map[key]
    return value


# --------------------------------------------------------------------------------------------
# Writing into the intake


def _apply(out: dict[str, Any], item: Item, m: ItemMapping, value: Any, raw: bool = False) -> None:
    if m.path is not None:
        _set_path(out, m.path, value)
        return
    assert m.list_ is not None
    entries = out.setdefault(m.list_, [])
    if m.gate:
        return  # the list now exists: empty unless later items add to it
    if m.field is not None:
        assert m.match is not None
        entry = _find(entries, m.match)
        if entry is None:
            entry = copy.deepcopy(m.match)
            entries.append(entry)
        entry[m.field] = value
        return
    if m.from_options:
        chosen = value if isinstance(value, list) else [value]
        for v in chosen:
            opt = item.option(v) or next((o for o in item.options if str(o.value) == str(v)),
                                         None)
            if opt is None or opt.exclusive:
                continue
            if opt.entry is None:  # a list of plain values (indications)
                if opt.value not in entries:
                    entries.append(opt.value)
            elif _find(entries, opt.entry) is None:
                entries.append(copy.deepcopy(opt.entry))
        return
    if m.lines is not None:
        for line in str(value).splitlines():
            text = " ".join(line.split())
            if not text:
                continue
            entry = _line_entry(m.lines, text)
            if entry not in entries:
                entries.append(entry)


def _line_entry(kind: LineKind, text: str) -> dict[str, Any]:
    if kind == "condition":
        return {"code": text.upper()} if _CODE_LIKE.match(text) else {"name": text[:200]}
    if kind == "allergy":
        substance, _, reaction = text.partition(" - ")
        entry: dict[str, Any] = {"substance": substance.strip()[:200] or text[:200]}
        if reaction.strip():
            entry["reaction"] = reaction.strip()[:500]
        return entry
    # medication: "sertraline 100 mg", "lorazepam 1 mg as needed"
    m = _DOSE_START.search(text)
    name = text[: m.start()].strip() if m else text
    dose = text[m.start():].strip() if m else ""
    if not name:
        name, dose = text, ""
    med: dict[str, Any] = {"name": name[:200]}
    if dose:
        med["dose"] = dose[:200]
    if _AS_NEEDED.search(text):
        med["schedule"] = "as_needed"
    return med


def _find(entries: list[Any], match: Mapping[str, Any]) -> dict[str, Any] | None:
    for e in entries:
        if isinstance(e, dict) and all(e.get(k) == v for k, v in match.items()):
            return e
    return None


_SEGMENT = re.compile(r"^([a-z_][a-z0-9_]*)(?:\[(\d+)\])?$")


def _set_path(out: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = out
    for i, part in enumerate(parts):
        m = _SEGMENT.match(part)
        assert m is not None
        name, index = m.group(1), m.group(2)
        last = i == len(parts) - 1
        if index is None:
            if last:
                node[name] = value
            else:
                node = node.setdefault(name, {})
            continue
        seq = node.setdefault(name, [])
        k = int(index)
        while len(seq) <= k:
            seq.append(None)
        if last:
            seq[k] = value
        else:
            if not isinstance(seq[k], dict):
                seq[k] = {}
            node = seq[k]


# --------------------------------------------------------------------------------------------
# Reading answers


def coerce_answer(item: Item, value: Any) -> tuple[AnswerValue | None, str | None]:
    """Check one answer against its item: ``(value, None)`` or ``(None, message)``.

    Accepts text for every type (what a web form or a FHIR ``valueString`` carries) and
    converts it: ``"yes"``/``"true"`` for booleans, digits for numbers, option values as text.
    """
    if item.type == "display":
        return None, "this item takes no answer"
    if item.type == "multi_choice":
        values = value if isinstance(value, list) else [value]
        chosen: list[str] = []
        for v in values:
            opt = _option_for(item, v)
            if opt is None:
                return None, f"{v!r} is not one of the choices"
            chosen.append(str(opt.value))
        exclusive = [o for o in item.options if o.exclusive and str(o.value) in chosen]
        if exclusive and len(chosen) > 1:
            return None, f"'{exclusive[0].label}' cannot be combined with other choices"
        return list(dict.fromkeys(chosen)), None
    if isinstance(value, list):
        return None, "give one answer"
    if item.type == "boolean":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower()
        if text in ("yes", "true", "y", "1"):
            return True, None
        if text in ("no", "false", "n", "0"):
            return False, None
        return None, "answer yes or no"
    if item.type == "choice":
        opt = _option_for(item, value)
        if opt is None:
            return None, "choose one of the options"
        return opt.value, None
    text = str(value).strip()
    if item.type in ("integer", "decimal"):
        try:
            number: int | float = int(text) if item.type == "integer" else float(text)
        except ValueError:
            kind = "a whole number" if item.type == "integer" else "a number"
            return None, f"enter {kind}"
        if item.min is not None and number < item.min:
            return None, f"enter a number of at least {item.min:g}"
        if item.max is not None and number > item.max:
            return None, f"enter a number no more than {item.max:g}"
        return number, None
    if item.type in ("date", "month"):
        pattern = r"^\d{4}-\d{2}-\d{2}$" if item.type == "date" else r"^\d{4}-\d{2}(-\d{2})?$"
        if not re.match(pattern, text):
            shape = "YYYY-MM-DD" if item.type == "date" else "YYYY-MM"
            return None, f"enter a date written {shape}"
        try:
            PartialDate.parse(text)
        except ValueError as exc:
            return None, str(exc)
        return text, None
    if len(text) > item.max_length:
        return None, f"keep it under {item.max_length} characters"
    return text, None


def _option_for(item: Item, value: Any) -> Option | None:
    for o in item.options:
        if _same(o.value, value) or str(o.value).lower() == str(value).strip().lower():
            return o
    return None


# --------------------------------------------------------------------------------------------
# Checks and loading


def _intake_field(path: str) -> bool:
    model: Any = Intake
    for part in path.split("."):
        m = _SEGMENT.match(part)
        if m is None or model is None:
            return False
        fields = getattr(model, "model_fields", None)
        if fields is None or m.group(1) not in fields:
            return False
        model = _inner_model(fields[m.group(1)].annotation, list_index=m.group(2) is not None)
    return True


def _inner_model(annotation: Any, list_index: bool) -> Any:
    stack = [annotation]
    while stack:
        t = stack.pop()
        if hasattr(t, "model_fields"):
            return t
        stack.extend(getattr(t, "__args__", ()) or ())
    return None


_LIST_FIELDS = {"conditions", "family_history", "medications", "allergies", "substances",
                "indications"}


def _check(q: Questionnaire) -> list[str]:
    problems: list[str] = []
    seen: dict[str, Item] = {}
    page_ids: set[str] = set()
    for page in q.pages:
        if page.id in page_ids:
            problems.append(f"page {page.id}: duplicate page id")
        page_ids.add(page.id)
        info = q.instruments.get(page.instrument) if page.instrument is not None else None
        if page.instrument is not None and info is None:
            problems.append(f"page {page.id}: instrument {page.instrument!r} is not a validated "
                            "questionnaire of the knowledge base (knowledge/instruments/)")
        if info is not None and not info.ship_item_texts:
            problems.append(
                f"page {page.id}: presents the items of {info.name} ({page.instrument}), but its "
                "licence does not allow shipping their texts (licence.ship_item_texts is false "
                f"in knowledge/instruments/{page.instrument}.yaml; the terms: {info.terms}) "
                "Remove the page: the clinic asks it from its own licensed form.")
        for c in page.enable_when:
            if c.item not in seen:
                problems.append(f"page {page.id}: enable_when refers to {c.item!r}, which is "
                                "not an earlier item")
        for item in page.items:
            where = f"item {item.id}"
            if item.id in seen or item.id in page_ids:
                problems.append(f"{where}: duplicate id")
            for c in item.enable_when:
                ref = seen.get(c.item)
                if ref is None:
                    problems.append(f"{where}: enable_when refers to {c.item!r}, which is not an "
                                    "earlier item")
                elif ref.options and c.operator in ("=", "!=") and not any(
                        _same(o.value, c.answer) for o in ref.options):
                    problems.append(f"{where}: enable_when answer {c.answer!r} is not an option "
                                    f"of {c.item}")
            if item.type in ("choice", "multi_choice") and not item.options:
                problems.append(f"{where}: a {item.type} item needs options")
            values = [str(o.value) for o in item.options]
            if len(values) != len(set(values)):
                problems.append(f"{where}: option values repeat")
            if item.type == "display" and (item.required or item.maps_to):
                problems.append(f"{where}: a display item takes no answer")
            m = item.maps_to
            if m is not None:
                answers_of = _instrument_of(m.path)
                if answers_of is not None and answers_of != page.instrument:
                    problems.append(f"{where}: answers instrument {answers_of!r}, so it belongs "
                                    f"on a page with `instrument: {answers_of}` (where its "
                                    "licence is checked)")
                if m.path is not None and not _intake_field(m.path):
                    problems.append(f"{where}: maps_to.path {m.path!r} is not an intake field")
                if m.list_ is not None and m.list_ not in _LIST_FIELDS:
                    problems.append(f"{where}: maps_to.list {m.list_!r} is not an intake list")
                if m.from_options and item.type not in ("choice", "multi_choice"):
                    problems.append(f"{where}: from_options needs a choice item")
                if m.lines is not None and item.type != "lines":
                    problems.append(f"{where}: a lines mapping needs a lines item")
                if m.gate and item.type != "boolean":
                    problems.append(f"{where}: a gate needs a boolean item")
            seen[item.id] = item
    for alert in q.alerts:
        for c in alert.when:
            if c.item not in seen:
                problems.append(f"alert {alert.id}: refers to unknown item {c.item!r}")
    return problems


_INSTRUMENT_PATH = re.compile(r"^instruments\.([a-z][a-z0-9_]*)")


def _instrument_of(path: str | None) -> str | None:
    """The validated questionnaire an intake path belongs to (``instruments.phq9[0]`` → phq9)."""
    m = _INSTRUMENT_PATH.match(path or "")
    return m.group(1) if m else None


def _words(text: str | None) -> str:
    return " ".join((text or "").split())


def _verbatim(q: Questionnaire, instruments: Mapping[str, Instrument]) -> list[str]:
    """Item texts and answer labels of instrument pages that differ from the knowledge base's.

    A validated questionnaire is valid only in its own words: where the knowledge base ships the
    wording, the questionnaire must show exactly that wording (spacing aside).
    """
    problems: list[str] = []
    for page in q.pages:
        definition = instruments.get(page.instrument or "")
        if definition is None or not definition.licence.ship_item_texts:
            continue  # reported by _check
        by_key = {i.key: i for i in definition.items if i.key is not None}
        for item in page.items:
            path = item.maps_to.path if item.maps_to is not None else None
            if _instrument_of(path) != definition.id:
                continue
            assert path is not None
            m = re.match(r"^instruments\.[a-z0-9_]+(?:\[(\d+)\]|\.([a-z0-9_]+))?", path)
            index, key = (m.group(1), m.group(2)) if m else (None, None)
            target = (definition.items[int(index)] if index is not None
                      and int(index) < len(definition.items) else by_key.get(key or ""))
            where = f"item {item.id}"
            if target is None:
                problems.append(f"{where}: {path} is not an item of {definition.name}")
                continue
            if target.text is not None and _words(item.text) != _words(target.text):
                problems.append(f"{where}: the text must be {definition.name} item "
                                f"{target.number}'s own wording, {_words(target.text)!r} "
                                f"(knowledge/instruments/{definition.id}.yaml)")
            scale = definition.scales.get(target.scale)
            labels = [(o.value, _words(o.label)) for o in scale.options if o.label] if scale else []
            if labels and [(o.value, _words(o.label)) for o in item.options] != labels:
                problems.append(f"{where}: the answers must be {definition.name}'s own: "
                                + ", ".join(f"{v} = {label}" for v, label in labels))
    return problems


def questionnaire_from_data(raw: Any, *, raw_bytes: bytes = b"",
                            source: str = "questionnaire.yaml",
                            instruments: Mapping[str, Instrument] | None = None,
                            ) -> Questionnaire:
    """Validate questionnaire data; every problem is reported at once (KnowledgeBaseError).

    ``instruments`` are the knowledge base's validated questionnaires (the packaged knowledge
    base's by default): each instrument page is described from them and checked against them.
    """
    if not isinstance(raw, dict):
        raise KnowledgeBaseError([Diagnostic("questionnaire", "the file must hold a mapping",
                                             source)])
    if "instruments" in raw:
        raise KnowledgeBaseError([Diagnostic(
            "questionnaire", "validated questionnaires are described once, in the knowledge base "
            "(knowledge/instruments/<id>.yaml): remove this block", f"{source}:instruments")])
    if instruments is None:
        instruments = load_knowledge_base().instruments
    data = dict(raw)
    data["sha256"] = hashlib.sha256(raw_bytes).hexdigest() if raw_bytes else ""
    pages = raw.get("pages")
    named = [p.get("instrument") for p in pages if isinstance(p, dict)] if isinstance(
        pages, list) else []
    data["instruments"] = {name: InstrumentInfo.of(instruments[name]) for name in named
                           if isinstance(name, str) and name in instruments}
    try:
        return Questionnaire.model_validate(data, context={"instruments": instruments})
    except ValidationError as exc:
        raise KnowledgeBaseError(_diagnostics(exc, source)) from exc


def _diagnostics(exc: ValidationError, source: str) -> list[Diagnostic]:
    out = []
    for e in exc.errors():
        where = f"{source}:{format_loc(e['loc'])}" if e["loc"] else source
        message = str(e["msg"]).removeprefix("Value error, ")
        out += [Diagnostic("questionnaire", line, where) for line in message.splitlines()]
    return out


_LOADED: dict[tuple[Path, str | None], Questionnaire] = {}


def load_questionnaire(path: Path = QUESTIONNAIRE_FILE, *,
                       kb: KnowledgeBase | None = None) -> Questionnaire:
    """The self-screening questionnaire (the packaged one by default), validated against the
    validated questionnaires of ``kb`` (the packaged knowledge base by default).

    Kept once loaded (per file and knowledge base).
    """
    key = (path.resolve(), kb.sha256 if kb is not None else None)
    found = _LOADED.get(key)
    if found is not None and (kb is None or kb.sha256):
        return found
    import yaml

    raw_bytes = path.read_bytes()
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as exc:
        raise KnowledgeBaseError([Diagnostic("questionnaire", f"not valid YAML: {exc}",
                                             path.name)]) from exc
    found = questionnaire_from_data(raw, raw_bytes=raw_bytes, source=path.name,
                                    instruments=kb.instruments if kb is not None else None)
    if len(_LOADED) >= 8:
        _LOADED.clear()
    _LOADED[key] = found
    return found
