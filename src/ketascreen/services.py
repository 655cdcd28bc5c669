"""Use cases that compose loading, validation, the engine and rendering; used by every front end.

This layer may read the clock and files; the engine below it never does.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from ketascreen.core.engine import CompiledKnowledgeBase, screen_compiled
from ketascreen.core.kb import KnowledgeBase, Protocol
from ketascreen.core.model import Assessment, Intake
from ketascreen.core.validation import parse_intake
from ketascreen.knowledge.loader import load_knowledge_base as _load_kb
from ketascreen.knowledge.loader import load_protocol as _load_protocol


@lru_cache(maxsize=1)
def _packaged() -> KnowledgeBase:
    return _load_kb()


def load_knowledge_base(root: Path | None = None) -> KnowledgeBase:
    """The packaged knowledge base (loaded once per process), or the one at ``root``."""
    return _packaged() if root is None else _load_kb(root)


def load_protocol(path: Path | str, kb: KnowledgeBase | None = None) -> Protocol:
    """A clinic protocol file, validated against the knowledge base (ProtocolError if invalid)."""
    return _load_protocol(Path(path), kb or load_knowledge_base())


class Screener:
    """A knowledge base and protocol compiled once, ready to screen many intakes."""

    def __init__(
        self,
        kb: KnowledgeBase | None = None,
        protocol: Protocol | None = None,
        *,
        crisis_contacts: str | None = None,
    ) -> None:
        self.kb = kb or load_knowledge_base()
        self.compiled = CompiledKnowledgeBase(self.kb, protocol)
        self.crisis_contacts = crisis_contacts

    def parse(self, data: Any, *, today: date | None = None, source: str | None = None) -> Intake:
        return parse_intake(data, today=today or date.today(), source=source)

    def screen(
        self, intake: Intake | dict[str, Any], *, today: date | None = None,
        explain: bool = False,
    ) -> Assessment:
        day = today or date.today()
        if not isinstance(intake, Intake):
            intake = parse_intake(intake, today=day)
        return screen_compiled(self.compiled, intake, today=day, explain=explain,
                               crisis_contacts=self.crisis_contacts)


def screen(
    intake: Intake | dict[str, Any],
    *,
    kb: KnowledgeBase | None = None,
    protocol: Protocol | None = None,
    today: date | None = None,
    explain: bool = False,
) -> Assessment:
    """Screen one intake (an ``Intake`` or contract JSON data) and return its ``Assessment``.

    ``today`` is the screening date for an intake without ``assessed_on`` (default: the
    system date). Raises ``IntakeError`` listing every problem of an invalid intake.
    """
    return _screener(kb, protocol).screen(intake, today=today, explain=explain)


_SCREENERS: dict[tuple[int, int], Screener] = {}


def _screener(kb: KnowledgeBase | None, protocol: Protocol | None) -> Screener:
    kb = kb or load_knowledge_base()
    key = (id(kb), id(protocol))
    found = _SCREENERS.get(key)
    if found is None:
        if len(_SCREENERS) > 16:
            _SCREENERS.clear()
        found = _SCREENERS[key] = Screener(kb, protocol)
    return found
