"""Shared fixtures: the packaged knowledge base, loaded once, and a screener over it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from ketascreen.core.kb import KnowledgeBase
from ketascreen.core.model import Assessment
from ketascreen.services import Screener, load_knowledge_base
from ketascreen.testing import BASELINE_DATE, merge_intake


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return load_knowledge_base()


@pytest.fixture(scope="session")
def screener(kb: KnowledgeBase) -> Screener:
    return Screener(kb)


@pytest.fixture(scope="session")
def assess(screener: Screener) -> Callable[..., Assessment]:
    """assess(fragment, unset=[...], explain=False): screen a fragment merged onto the baseline."""

    def run(fragment: dict[str, Any] | None = None, unset: list[str] | None = None,
            explain: bool = False, today: date = BASELINE_DATE) -> Assessment:
        return screener.screen(merge_intake(fragment, unset), today=today, explain=explain)

    return run


def rule_ids(a: Assessment) -> set[str]:
    return {f.rule for f in a.findings}
