"""`make demo`: screen the bundled example intakes, print a summary table and one full report."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ketascreen.errors import IntakeError
from ketascreen.reports.render import render
from ketascreen.services import Screener

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHORT = {"eligible": "OK", "eligible_with_precautions": "OK+P", "needs_evaluation": "EVAL",
         "incomplete": "INC", "defer": "DEFER", "not_recommended": "NO"}


def main() -> int:
    console = Console(width=max(150, Console().width))
    screener = Screener()
    kb = screener.kb
    console.print(f"[bold]ketascreen demo[/bold] · knowledge base {kb.name} v{kb.version} "
                  f"({len(kb.rules)} rules, sha256 {kb.sha256[:12]})\n")
    table = Table(title="Example intakes")
    for col in ("intake", "decision", "urgent", "routes iv/im/nasal/oral", "main findings"):
        table.add_column(col)
    featured = None
    for path in sorted(EXAMPLES.glob("*.json")):
        data = json.loads(path.read_text())
        try:
            a = screener.screen(data, today=date(2026, 11, 16))
        except IntakeError as exc:
            table.add_row(path.stem, "[red]invalid[/red]", "", "", str(exc.problems[0]))
            continue
        worst = ", ".join(f.rule for f in a.findings[:2]) or "-"
        routes = " ".join(SHORT[a.routes[r]] for r in ("iv", "im", "intranasal", "oral"))
        table.add_row(path.stem, a.decision, "[red]yes[/red]" if a.urgent else "", routes, worst)
        if path.stem == "bp-184-112":
            featured = a
    console.print(table)
    console.print("routes: OK eligible · OK+P with precautions · EVAL needs evaluation · "
                  "INC incomplete · DEFER defer · NO not recommended\n")
    if featured is not None:
        console.rule("One full clinician report (bp-184-112)")
        print(render(featured, "text", "clinician", kb.texts.get("disclaimer", "")))
    console.print("Try: [bold].venv/bin/ketascreen screen examples/healthy-ptsd.json "
                  "--audience patient[/bold]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
