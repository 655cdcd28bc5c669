"""ketascreen: open, cited, versioned clinical decision support that screens people for ketamine
therapy. It supports a clinician's decision; it never replaces it.

>>> from ketascreen import screen
>>> assessment = screen({"age": 45, ...})          # doctest: +SKIP
>>> assessment.decision                             # doctest: +SKIP
'eligible_with_precautions'
"""

from __future__ import annotations

from ketascreen.core.kb import KnowledgeBase, Protocol
from ketascreen.core.model import Assessment, Finding, Intake, MissingAnswer
from ketascreen.errors import (
    InputError,
    IntakeError,
    KetascreenError,
    KnowledgeBaseError,
    ProtocolError,
)
from ketascreen.services import Screener, load_knowledge_base, load_protocol, screen

__version__ = "0.1.0"

__all__ = [
    "Assessment",
    "Finding",
    "InputError",
    "Intake",
    "IntakeError",
    "KetascreenError",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "MissingAnswer",
    "Protocol",
    "ProtocolError",
    "Screener",
    "__version__",
    "load_knowledge_base",
    "load_protocol",
    "screen",
]
