"""The screening engine: a pure function from (knowledge base, protocol, intake, date) to assessment.

Collect, then aggregate: every rule is evaluated (three-valued), for every route it applies to;
the decision of each route is derived from all findings by the contract's precedence, and
unknown answers that could make it worse make it ``incomplete``. Nothing here reads files, the
environment or the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel

from ketascreen.core.facts import Facts, build_facts
from ketascreen.core.gating import GateIndex, gate_of
from ketascreen.core.kb import KnowledgeBase, Protocol, Rule
from ketascreen.core.model import (
    CONTRACT_VERSION,
    DECISION_RANK,
    ROUTES,
    SEVERITY_DECISION,
    SEVERITY_RANK,
    Assessment,
    Decision,
    Evidence,
    Finding,
    Intake,
    KnowledgeBaseInfo,
    MissingAnswer,
    ProtocolInfo,
    Route,
    Severity,
    SourceRef,
    Summary,
    TraceEntry,
)
from ketascreen.core.predicates import (
    FALSE,
    TRUE,
    UNKNOWN,
    Compiled,
    Ev,
    compile_predicate,
    uses_setting,
)
from ketascreen.core.protocols import (
    ALWAYS_MUST_HAVE,
    DEFAULT_PROTOCOL,
    apply_protocol,
    protocol_hash,
)
from ketascreen.core.vocab import Lexicon

_INDEX = re.compile(r"\[[^\]]*\]")
# Suicide questions are listed first in `missing`, whatever the decision (contract).
_SUICIDE_FIELDS = ("symptoms.suicidal", "symptoms.suicide_attempt")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    test: Compiled
    routes: tuple[Route, ...]
    route_dependent: bool
    reads_bp: bool


class CompiledKnowledgeBase:
    """A knowledge base with one protocol applied, its predicates compiled. Immutable, reusable."""

    def __init__(self, kb: KnowledgeBase, protocol: Protocol | None = None) -> None:
        self.kb = kb
        self.protocol = protocol or DEFAULT_PROTOCOL
        rules, deviations, disabled = apply_protocol(kb, self.protocol)
        self.deviations = deviations
        self.disabled = disabled
        self.rules = [
            CompiledRule(
                rule=r,
                test=compile_predicate(r.when, dict(r.params)),
                routes=tuple(x for x in ROUTES if x in r.routes),
                route_dependent=uses_setting(r.when),
                reads_bp=_reads_bp(r.when),
            )
            for r in rules
        ]
        self.gates = GateIndex([gate_of(cr.rule.when) for cr in self.rules])
        self.lexicon = Lexicon(kb.vocabulary)
        confirm = set(self.protocol.confirm_at_first_visit)
        self.answer_class: dict[str, str] = {}
        self.answer_order: dict[str, int] = {}
        for i, (name, spec) in enumerate(kb.answers.items()):
            klass = spec.klass
            if name in confirm and klass == "must_have" and name not in ALWAYS_MUST_HAVE:
                klass = "confirm"
            self.answer_class[name] = klass
            self.answer_order[name] = i
        self.sources = kb.sources
        self._source_refs: dict[str, list[SourceRef]] = {}
        self._class_cache: dict[str, str] = {}
        self.protocol_info = ProtocolInfo(
            name=self.protocol.name, version=self.protocol.version,
            sha256=self.protocol.sha256 or protocol_hash(self.protocol),
            deviations=list(self.deviations))
        self.kb_info = KnowledgeBaseInfo(version=kb.version, sha256=kb.sha256)
        self.protocol_info_base = (self.protocol.name, self.protocol.version,
                                   self.protocol.sha256)

    def source_refs(self, rule: Rule) -> list[SourceRef]:
        refs = self._source_refs.get(rule.id)
        if refs is None:
            refs = self._source_refs[rule.id] = [
                SourceRef(id=sid, citation=self.sources[sid].citation, url=self.sources[sid].url)
                for sid in rule.sources if sid in self.sources]
        return list(refs)

    def classify(self, field: str, facts: Facts) -> str:
        if field == "vitals" and facts.vitals_stale:
            return "confirm"
        klass = self._class_cache.get(field)
        if klass is None:
            key = _INDEX.sub("[]", field)
            klass = self.answer_class.get(key)
            if klass is None:
                klass = self.answer_class.get(key.split(".", 1)[0], "must_have")
            if len(self._class_cache) < 10_000:
                self._class_cache[field] = klass
        return klass

    def question(self, field: str) -> str:
        key = _INDEX.sub("[]", field)
        spec = self.kb.answers.get(key) or self.kb.answers.get(key.split(".", 1)[0])
        if spec is None:
            return f"Please provide {field}."
        where = _INDEX.search(field)
        return spec.question if where is None else f"{spec.question} ({field.rsplit('.', 1)[0]})"

    def order(self, field: str) -> tuple[int, int, str]:
        key = _INDEX.sub("[]", field)
        suicide = 0 if key in _SUICIDE_FIELDS else 1
        return (suicide, self.answer_order.get(key, 10_000), field)


def _reads_bp(pred: Any) -> bool:
    if pred.kind == "vital":
        return bool(pred.field in ("systolic", "diastolic"))
    if pred.kind in ("all", "any"):
        return any(_reads_bp(x) for x in pred.of)
    if pred.kind == "not":
        return _reads_bp(pred.of)
    return False


def screen_compiled(
    ckb: CompiledKnowledgeBase,
    intake: Intake,
    *,
    today: date,
    explain: bool = False,
    crisis_contacts: str | None = None,
) -> Assessment:
    as_of = intake.assessed_on or today
    facts = build_facts(intake, ckb.lexicon, as_of, instruments=ckb.kb.instruments)
    considered: tuple[Route, ...] = (intake.route,) if intake.route else ROUTES

    known: dict[Route, int] = dict.fromkeys(ROUTES, 0)
    worst_unknown: dict[Route, int] = dict.fromkeys(ROUTES, -1)
    missing: dict[str, dict[str, Any]] = {}
    findings: list[Finding] = []
    urgent = False
    trace: list[TraceEntry] = []
    crisis = crisis_contacts or ckb.kb.texts.get("crisis_contacts", "")
    classes: dict[str, str] = {}

    # Collect: every rule, evaluated once (or once per setting when it depends on the route).
    # Rules no code or medication of this intake can open are false: skipped unless explaining.
    live = None if explain else ckb.gates.open_rules(facts)
    for index, cr in enumerate(ckb.rules):
        if live is not None and index not in live:
            continue
        if cr.route_dependent:
            by_setting: dict[str, tuple[int, tuple[Ev, ...], tuple[str, ...]]] = {}
            per_route = []
            for route in cr.routes:
                setting = facts.setting[route]
                if setting not in by_setting:
                    by_setting[setting] = cr.test(facts, route)
                per_route.append((route, by_setting[setting]))
        else:
            result = cr.test(facts, None)
            if result[0] == FALSE and not explain:
                continue
            per_route = [(route, result) for route in cr.routes]
        if explain:
            trace.extend(_trace(cr, per_route, ckb, facts))
        rule = cr.rule
        sev = SEVERITY_RANK[rule.severity]
        fired_routes: list[Route] = []
        evidence: list[Ev] = []
        for route, (value, ev, miss) in per_route:
            if value == TRUE:
                fired_routes.append(route)
                if sev > known[route]:
                    known[route] = sev
                for e in ev:
                    if e not in evidence:
                        evidence.append(e)
            elif value == UNKNOWN:
                blocking_here = False
                relevant = route in considered
                for name in miss:
                    klass = classes.get(name)
                    if klass is None:
                        klass = classes[name] = ckb.classify(name, facts)
                    if klass == "supplementary":
                        continue
                    if klass == "must_have":
                        blocking_here = True
                    if relevant:
                        entry = missing.setdefault(name, {"needed_by": set(), "blocking": False})
                        entry["needed_by"].add(rule.id)
                        entry["blocking"] = entry["blocking"] or klass == "must_have"
                if blocking_here and sev > worst_unknown[route]:
                    worst_unknown[route] = sev
        if not fired_routes:
            continue
        if rule.urgent:
            urgent = True
        if rule.urgent or any(r in considered for r in fired_routes):
            findings.append(_finding(ckb, rule, fired_routes, evidence, crisis))

    if facts.vitals_given and not facts.vitals_dated:
        bp_rules = sorted(cr.rule.id for cr in ckb.rules if cr.reads_bp)
        if bp_rules:
            missing["vitals.taken_on"] = {"needed_by": set(bp_rules), "blocking": False}

    routes: dict[Route, Decision] = {}
    for route in ROUTES:
        decision = SEVERITY_DECISION[_SEVERITIES[known[route]]]
        if (worst_unknown[route] > known[route]
                and DECISION_RANK[decision] < DECISION_RANK["defer"]):
            decision = "incomplete"
        routes[route] = decision

    if intake.route:
        decision = routes[intake.route]
    else:
        decision = min((routes[r] for r in ROUTES), key=lambda d: DECISION_RANK[d])

    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], not f.urgent, f.rule))
    missing_list = [
        MissingAnswer.model_construct(field=name, question=ckb.question(name),
                      needed_by=sorted(entry["needed_by"]), blocking=entry["blocking"])
        for name, entry in missing.items()
    ]
    missing_list.sort(key=lambda m: (ckb.order(m.field)[0], not m.blocking, ckb.order(m.field)[1:]))

    return _build(
        Assessment,
        id=intake.id,
        as_of=as_of,
        decision=decision,
        urgent=urgent,
        findings=findings,
        missing=missing_list,
        unrecognized=list(facts.unrecognized),
        routes=routes,
        scores=facts.scores,
        protocol=ckb.protocol_info,
        knowledge_base=ckb.kb_info,
        contract_version=CONTRACT_VERSION,
        route=intake.route,
        summary=_summary(ckb, decision, routes, urgent, findings, missing_list, intake, crisis),
        notes=[ckb.kb.texts.get("note_each_session",
                                "Blood pressure, pregnancy and substance use are checked again "
                                "before each session.")],
        trace=trace if explain else None,
    )


_SEVERITIES: tuple[Severity, ...] = ("info", "precaution", "evaluation", "defer", "exclude")


def _finding(
    ckb: CompiledKnowledgeBase, rule: Rule, routes: list[Route], evidence: list[Ev], crisis: str
) -> Finding:
    # Output models are built from validated data: construct them without re-validating.
    return _build(
        Finding,
        rule=rule.id,
        category=rule.category,
        severity=rule.severity,
        urgent=rule.urgent,
        title=rule.title,
        clinician=rule.clinician.strip(),
        patient=_with_contacts(rule.patient.strip(), crisis),
        evidence=[_build(Evidence, field=f, value=v, meaning=m) for f, v, m in evidence],
        actions=list(rule.actions),
        sources=ckb.source_refs(rule),
        claims=list(rule.claims),
        routes=routes,
    )


_M = TypeVar("_M", bound=BaseModel)


def _build(cls: type[_M], **values: Any) -> _M:
    """An output model from values that are already valid, every field given: what pydantic's
    ``model_construct`` does, without its per-field default handling (a hot path)."""
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", set(values))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def _with_contacts(text: str, crisis: str) -> str:
    if crisis.endswith("."):
        text = text.replace("{crisis_contacts}.", "{crisis_contacts}")
    return text.replace("{crisis_contacts}", crisis)


def _trace(
    cr: CompiledRule,
    per_route: list[tuple[Route, tuple[int, tuple[Ev, ...], tuple[str, ...]]]],
    ckb: CompiledKnowledgeBase,
    facts: Facts,
) -> list[TraceEntry]:
    groups: dict[tuple[int, tuple[Ev, ...], tuple[str, ...]], list[Route]] = {}
    for route, result in per_route:
        groups.setdefault(result, []).append(route)
    entries: list[TraceEntry] = []
    for (value, evidence, miss), routes in groups.items():
        label = "all" if len(routes) == len(ROUTES) else ",".join(routes)
        if value == TRUE:
            why = "; ".join(f"{f} = {v}" + (f" ({m})" if m else "") for f, v, m in evidence)
            entries.append(TraceEntry(rule=cr.rule.id, route=label, result="fired",
                                      why=why or "conditions met"))
        elif value == UNKNOWN:
            classes = [ckb.classify(name, facts) for name in miss]
            parts = [f"{name} ({k.replace('_', '-')})" for name, k in zip(miss, classes, strict=True)]
            if all(k == "supplementary" for k in classes):
                entries.append(TraceEntry(rule=cr.rule.id, route=label, result="not_fired",
                                          why="not applied: only supplementary answers are "
                                          "missing: " + ", ".join(parts)))
            else:
                entries.append(TraceEntry(rule=cr.rule.id, route=label, result="unknown",
                                          why="missing: " + ", ".join(parts)))
        else:
            entries.append(TraceEntry(rule=cr.rule.id, route=label, result="not_fired",
                                      why="conditions not met"))
    return entries


def _summary(
    ckb: CompiledKnowledgeBase,
    decision: Decision,
    routes: dict[Route, Decision],
    urgent: bool,
    findings: list[Finding],
    missing: list[MissingAnswer],
    intake: Intake,
    crisis: str,
) -> Summary:
    t = ckb.kb.texts
    names = {"iv": "IV infusion", "im": "intramuscular injection",
             "intranasal": "esketamine nasal spray", "oral": "oral or sublingual ketamine"}
    clinician = [f"Decision: {decision.replace('_', ' ')}"
                 + (f" (route {intake.route})." if intake.route else " (most favourable route).")]
    if urgent:
        clinician.insert(0, "URGENT: at least one finding needs attention today.")
    worst = [f for f in findings if f.severity in ("exclude", "defer", "evaluation")][:3]
    if worst:
        clinician.append("Main findings: " + "; ".join(f.title for f in worst) + ".")
    blocking = [m.field for m in missing if m.blocking]
    if blocking:
        clinician.append("Blocking answers missing: " + ", ".join(blocking) + ".")
    patient: list[str] = []
    if urgent:
        patient.append(t.get("patient_urgent", "Something you told us needs care today. {crisis_contacts}")
                       .replace("{crisis_contacts}", crisis))
    key = f"patient_{decision}"
    patient.append(t.get(key, ""))
    if not intake.route:
        held = [names[r] for r in ROUTES if DECISION_RANK[routes[r]] >= DECISION_RANK["defer"]]
        if held and len(held) < len(ROUTES):
            patient.append(t.get("patient_routes_held", "For now these forms are not advised: {routes}.")
                           .replace("{routes}", ", ".join(held)))
    patient.append(t.get("patient_clinician_decides", ""))
    return Summary(clinician=" ".join(x for x in clinician if x),
                   patient=" ".join(x for x in patient if x))


def screen(
    kb: KnowledgeBase,
    intake: Intake,
    *,
    today: date,
    protocol: Protocol | None = None,
    explain: bool = False,
    crisis_contacts: str | None = None,
) -> Assessment:
    """Assess one intake. ``today`` is the screening date for intakes without ``assessed_on``."""
    return screen_compiled(_compiled(kb, protocol), intake, today=today, explain=explain,
                           crisis_contacts=crisis_contacts)


_CACHE: dict[tuple[str, str], CompiledKnowledgeBase] = {}


def _compiled(kb: KnowledgeBase, protocol: Protocol | None) -> CompiledKnowledgeBase:
    key = (kb.sha256, (protocol.sha256 or protocol_hash(protocol)) if protocol else "")
    found = _CACHE.get(key)
    if found is None or found.kb is not kb:
        found = CompiledKnowledgeBase(kb, protocol)
        _CACHE[key] = found
    return found
