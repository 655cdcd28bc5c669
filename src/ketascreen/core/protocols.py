"""Clinic protocols: how a clinic's file changes the default, within the contract's safety floor."""

from __future__ import annotations

import hashlib
import json

from ketascreen.core.kb import KnowledgeBase, Protocol, Rule
from ketascreen.core.model import SEVERITY_RANK
from ketascreen.errors import Problem

# Constructed, not validated: it is known-good, and validating would build the whole rule schema
# at import time (a cost every cold start of the command line would pay).
DEFAULT_PROTOCOL = Protocol.model_construct(
    name="ketascreen-default",
    version="1",
    description="The default protocol: reference Part 1, unchanged.",
    overrides={},
    add_rules=[],
    confirm_at_first_visit=[],
    sha256=hashlib.sha256(b"ketascreen-default/1").hexdigest(),
)

# Answers a protocol can never move to "confirm at the first visit" (contract).
ALWAYS_MUST_HAVE = frozenset({"symptoms.suicidal", "symptoms.suicide_attempt",
                              "instruments.cssrs_screen", "pregnancy",
                              "pregnancy.pregnant", "pregnancy.breastfeeding",
                              "pregnancy.planning", "allergies"})


def protocol_hash(protocol: Protocol) -> str:
    data = protocol.model_dump(mode="json", exclude={"sha256"}, by_alias=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def validate_protocol(kb: KnowledgeBase, protocol: Protocol) -> list[Problem]:
    """Every problem with a protocol against this knowledge base, at once."""
    problems: list[Problem] = []
    rules = {r.id: r for r in kb.rules}
    for rid, o in protocol.overrides.items():
        where = f"overrides.{rid}"
        rule = rules.get(rid)
        if rule is None:
            problems.append(Problem(where, "no rule with this id in the knowledge base"))
            continue
        for name in o.params:
            if name not in rule.params:
                known = ", ".join(sorted(rule.params)) or "none"
                problems.append(Problem(f"{where}.params.{name}",
                                        f"the rule has no such parameter (it has: {known})"))
        changed = (not o.enabled or o.severity is not None or o.urgent is not None
                   or bool(o.params))
        if changed and not (o.reason and o.reason.strip()):
            problems.append(Problem(f"{where}.reason", "every change needs a stated reason"))
        lowers_floor = rule.safety_floor is not None and (
            not o.enabled
            or (o.severity is not None
                and SEVERITY_RANK[o.severity] < SEVERITY_RANK[rule.safety_floor]))
        drops_urgent = rule.urgent and (o.urgent is False or not o.enabled)
        if (lowers_floor or drops_urgent) and not o.override_safety_floor:
            what = "switches off an urgent flag" if drops_urgent else (
                f"goes below the safety floor ({rule.safety_floor})")
            problems.append(Problem(where, f"{what}: needs override_safety_floor: true "
                                           "and a reason"))
    added = set()
    for i, r in enumerate(protocol.add_rules):
        if r.id in rules or r.id in added:
            problems.append(Problem(f"add_rules[{i}].id", f"rule id {r.id!r} already exists"))
        added.add(r.id)
        for sid in r.sources:
            if sid not in kb.sources:
                problems.append(Problem(f"add_rules[{i}].sources",
                                        f"unknown source {sid!r} (see the knowledge base's "
                                        "sources)"))
        for cid in r.claims:
            if cid not in kb.claims:
                problems.append(Problem(f"add_rules[{i}].claims", f"unknown seed claim {cid!r}"))
        if r.urgent and "{crisis_contacts}" not in r.patient:
            problems.append(Problem(f"add_rules[{i}].patient",
                                    "an urgent rule's patient text needs {crisis_contacts}"))
    for i, name in enumerate(protocol.confirm_at_first_visit):
        if name in ALWAYS_MUST_HAVE:
            problems.append(Problem(f"confirm_at_first_visit[{i}]",
                                    f"{name} is always a must-have answer"))
        elif name not in kb.answers:
            problems.append(Problem(f"confirm_at_first_visit[{i}]",
                                    f"{name} is not an answer ketascreen asks"))
    return problems


def apply_protocol(
    kb: KnowledgeBase, protocol: Protocol
) -> tuple[list[Rule], list[str], dict[str, str]]:
    """The effective rules, the ids that deviate from the default, and disabled ids → reason."""
    rules: list[Rule] = []
    deviations: list[str] = []
    disabled: dict[str, str] = {}
    for rule in kb.rules:
        o = protocol.overrides.get(rule.id)
        if o is None:
            rules.append(rule)
            continue
        if not o.enabled:
            disabled[rule.id] = o.reason or ""
            deviations.append(rule.id)
            continue
        update: dict[str, object] = {}
        if o.severity is not None and o.severity != rule.severity:
            update["severity"] = o.severity
        if o.urgent is not None and o.urgent != rule.urgent:
            update["urgent"] = o.urgent
        if o.params and any(rule.params.get(k) != v for k, v in o.params.items()):
            update["params"] = {**rule.params, **o.params}
        if update:
            deviations.append(rule.id)
            rule = rule.model_copy(update=update)
        rules.append(rule)
    for rule in protocol.add_rules:
        rules.append(rule)
        deviations.append(rule.id)
    return rules, sorted(deviations), disabled
