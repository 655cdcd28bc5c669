"""Running the batch path and the per-patient engine on the same people, and comparing them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from ketascreen.batch.engines import Runner
from ketascreen.batch.intakes import to_intakes
from ketascreen.batch.run import prepare, screen_tables
from ketascreen.core.engine import CompiledKnowledgeBase
from ketascreen.errors import InputError
from ketascreen.services import Screener

COMPARED = ("decision", "urgent", "route_iv", "route_im", "route_intranasal", "route_oral",
            "rules", "missing", "unrecognized", "kb_sha256")


def engine_row(screener: Screener, intake: dict[str, Any], today: date) -> dict[str, Any]:
    """The per-patient engine's result, in the batch output's shape (error: the message)."""
    try:
        a = screener.screen(intake, today=today)
    except InputError as exc:
        return {"error": exc.describe()}
    return {
        "id": a.id, "decision": a.decision, "urgent": a.urgent,
        **{f"route_{k}": v for k, v in a.routes.items()},
        "rules": [f.rule for f in a.findings],
        "missing": [{"field": m.field, "blocking": m.blocking} for m in a.missing],
        "unrecognized": [{"field": u.field, "value": u.value} for u in a.unrecognized],
        "kb_sha256": a.knowledge_base.sha256, "error": None,
    }


def run(runner: Runner, path: str | Path, ckb: CompiledKnowledgeBase, today: date,
        layout: str = "auto") -> tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]]]:
    """Screen ``path`` on ``runner``: (output rows by person key, intakes by person key)."""
    _norm, compiler = prepare(runner, str(path), ckb=ckb, today=today, layout=layout)
    screen_tables(runner, compiler)
    rows = {r["_key"]: r for r in runner.arrow("SELECT * FROM kx_output").to_pylist()}
    intakes = dict(to_intakes(runner))
    return rows, intakes


def differences(rows: dict[Any, dict[str, Any]], expected: dict[Any, dict[str, Any]]
                ) -> list[str]:
    """Every field where a batch row differs from the engine's result (empty when equal)."""
    out: list[str] = []
    assert set(rows) == set(expected), (sorted(set(rows) ^ set(expected), key=str)[:5])
    for key, want in expected.items():
        got = rows[key]
        if want.get("error") is not None:
            if got["error"] is None:
                out.append(f"{key}: the engine refused the intake ({want['error']}), the batch "
                           "screened it")
            continue
        if got["error"] is not None:
            out.append(f"{key}: the batch refused it ({got['error']}), the engine screened it")
            continue
        for field in COMPARED:
            if got[field] != want[field]:
                out.append(f"{key}.{field}: batch {got[field]!r} != engine {want[field]!r}")
    return out


def write_jsonl(path: Path, intakes: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in intakes), encoding="utf-8")
    return path
