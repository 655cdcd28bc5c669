"""Every exception ketascreen raises on purpose, in one tree.

::

    KetascreenError                 base of everything below; never raised itself
    ├── InputError                  a caller's input is wrong (CLI exit 2, HTTP 422)
    │   ├── IntakeError             an intake breaks the screening contract
    │   └── ProtocolError           a clinic's protocol file is invalid
    └── KnowledgeBaseError          the rules or vocabularies fail validation or lint
                                    (a fault of the installation, CLI exit 1)

Front ends translate these at the edge: the CLI into one line on standard error and an exit
status, the API into one JSON error shape. Anything else escaping is a bug in ketascreen.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Diagnostic",
    "InputError",
    "IntakeError",
    "KetascreenError",
    "KnowledgeBaseError",
    "Problem",
    "ProtocolError",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (a path such as ``conditions[2].status``) and what."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding of the knowledge-base or protocol lint."""

    code: str
    message: str
    location: str

    def __str__(self) -> str:
        return f"{self.location}: [{self.code}] {self.message}"


class KetascreenError(Exception):
    """Base of every deliberate ketascreen error."""


class InputError(KetascreenError):
    """The caller's input is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.describe())

    def describe(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return prefix + "; ".join(str(p) for p in self.problems)


class IntakeError(InputError):
    """An intake does not follow the screening contract."""


class ProtocolError(InputError):
    """A clinic protocol file is invalid or breaks the safety floor."""


class KnowledgeBaseError(KetascreenError):
    """The knowledge base failed to load or lint; carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        lines = "\n".join(str(d) for d in self.diagnostics)
        super().__init__(f"knowledge base has {len(self.diagnostics)} problem(s):\n{lines}")
