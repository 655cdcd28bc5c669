"""Load, validate and lint the packaged knowledge base, and run every rule's examples.

Usage: ``python -m ketascreen.knowledge.check`` (also ``ketascreen rules lint``). Prints every
diagnostic and exits 1 if there is any.
"""

from __future__ import annotations

import sys

from ketascreen.core.lint import check_examples
from ketascreen.errors import Diagnostic, KnowledgeBaseError
from ketascreen.knowledge.loader import load_knowledge_base
from ketascreen.testing import BASELINE_DATE, merge_intake


def run_checks() -> tuple[int, list[Diagnostic]]:
    """(number of rules, every diagnostic) for the packaged knowledge base."""
    try:
        kb = load_knowledge_base(use_cache=False)
    except KnowledgeBaseError as exc:
        return 0, exc.diagnostics
    return len(kb.rules), check_examples(kb, merge_intake, BASELINE_DATE)


def main() -> int:
    n, diags = run_checks()
    for d in diags:
        print(d)
    if diags:
        print(f"{len(diags)} problem(s)", file=sys.stderr)
        return 1
    print(f"knowledge base OK: {n} rules, every example behaves as declared")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
