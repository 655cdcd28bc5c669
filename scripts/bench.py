"""`make bench`: throughput, end-to-end CLI speed, cold start and peak memory.

Prints a Markdown table (paste into docs/performance.md) and writes bench-out/results.json.
Targets (issue 2): screen() >= 5,000 typical intakes/s in one process; the CLI's jsonl path
>= 3,000 intakes/s on 10,000 intakes; one screening from a cold start < 0.3 s.
The machine is shared and noisy: each figure is the best of several runs.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from ketascreen.core.validation import parse_intake
from ketascreen.services import Screener
from ketascreen.testing import merge_intake

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 16)
CLI = [sys.executable, "-m", "ketascreen.cli"]


def typical_intakes(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """The bundled example intakes (a clinic's everyday mix), cycled with varied ids and ages."""
    rnd = random.Random(seed)
    examples = []
    for path in sorted((ROOT / "examples").glob("*.json")):
        data = json.loads(path.read_text())
        if path.stem != "invalid-heart-rate":
            examples.append(data)
    out = []
    for i in range(n):
        data = json.loads(json.dumps(examples[i % len(examples)]))
        data["id"] = f"typical-{i}"
        if data.get("sex") == "male":
            data["age"] = rnd.randint(25, 64)
        out.append(data)
    return out


def complex_intakes(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """A heavier seeded mix: up to 3 comorbidities and 4 drugs each (about 5 findings each)."""
    rnd = random.Random(seed)
    codes = ["F33.1", "F32.A", "F43.10", "F41.1", "I10", "E03.9", "G47.33", "F31.81", "F60.3",
             "K76.0", "J45.909", "E11.9", "G43.909", "M79.7", "F42.2", "F10.21", "N18.30"]
    drugs = ["sertraline", "Lexapro", "bupropion", "lorazepam", "levothyroxine", "lisinopril",
             "amlodipine", "atorvastatin", "metformin", "trazodone", "gabapentin", "lamotrigine",
             "aripiprazole", "Adderall", "omeprazole", "oxycodone", "clonazepam", "zolpidem"]
    out = []
    for i in range(n):
        sex = rnd.choice(["female", "male", "female", "male", "intersex"])
        conditions = [{"code": "F33.1"}] + [
            {"code": c, "controlled": rnd.random() < 0.8} for c in rnd.sample(codes, rnd.randint(0, 3))]
        meds = [{"name": m} for m in rnd.sample(drugs, rnd.randint(0, 4))]
        subs: list[dict[str, Any]] = []
        if rnd.random() < 0.5:
            subs.append({"substance": "alcohol", "status": "current", "disorder": False})
        if rnd.random() < 0.15:
            subs.append({"substance": "cannabis", "status": "past", "disorder": False,
                         "last_use": "2025-06"})
        systolic = rnd.randint(100, 165)
        fragment: dict[str, Any] = {
            "id": f"bench-{i}", "age": rnd.randint(18, 80), "sex": sex,
            "route": rnd.choice(["iv", "intranasal", "oral", None]),
            "conditions": conditions, "medications": meds, "substances": subs,
            "vitals": {"systolic": systolic, "diastolic": rnd.randint(60, min(105, systolic - 20)),
                       "heart_rate": rnd.randint(55, 115), "taken_on": "2026-11-01"},
            "symptoms": {"suicidal": rnd.choice(["none", "none", "none", "passive", "active"])},
        }
        out.append(merge_intake(fragment))
    return out


def best_rate(fn: Any, n: int, repeats: int = 5) -> float:
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t))
    return max(rates)


def main() -> int:
    screener = Screener()
    heavy = complex_intakes(3000)
    intakes = typical_intakes(5000)
    parsed = [parse_intake(d, today=TODAY) for d in intakes]
    for d in intakes[:200]:  # warm-up: compiled knowledge base, code memos
        screener.screen(d, today=TODAY)

    results: dict[str, Any] = {}
    results["screen_dict_per_s"] = best_rate(
        lambda: [screener.screen(d, today=TODAY) for d in intakes], len(intakes))
    results["engine_only_per_s"] = best_rate(
        lambda: [screener.screen(p, today=TODAY) for p in parsed], len(parsed))
    results["screen_and_json_per_s"] = best_rate(
        lambda: [screener.screen(d, today=TODAY).model_dump_json() for d in intakes], len(intakes))
    results["screen_complex_per_s"] = best_rate(
        lambda: [screener.screen(d, today=TODAY) for d in heavy], len(heavy))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "intakes.jsonl"
        ten_k = typical_intakes(10_000, seed=11)
        path.write_text("\n".join(json.dumps(d) for d in ten_k) + "\n")
        walls = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([*CLI, "screen", str(path), "--format", "jsonl", "--date",
                            "2026-11-16", "-o", str(Path(tmp) / "out.jsonl")], check=True)
            walls.append(time.perf_counter() - t)
        results["cli_jsonl_10k_wall_s"] = min(walls)
        results["cli_jsonl_per_s"] = 10_000 / min(walls)
        lines = (Path(tmp) / "out.jsonl").read_text().splitlines()
        assert len(lines) == 10_000

        one = Path(tmp) / "one.json"
        one.write_text(json.dumps(intakes[0]))
        exe = Path(sys.executable).parent / "ketascreen"
        cmd = [str(exe)] if exe.exists() else CLI
        subprocess.run([*cmd, "screen", str(one), "-f", "json"], check=True, capture_output=True)
        colds = []
        for _ in range(10):
            t = time.perf_counter()
            subprocess.run([*cmd, "screen", str(one), "-f", "json"], check=True,
                           capture_output=True)
            colds.append(time.perf_counter() - t)
        results["cold_start_median_s"] = statistics.median(colds)
        results["cold_start_best_s"] = min(colds)

    results["peak_rss_mib_bench_process"] = resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024
    results["peak_rss_mib_cli_children"] = resource.getrusage(
        resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    results["machine"] = {
        "cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(),
    }
    out = ROOT / "bench-out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))

    rows = [
        ("screen() on typical contract JSON, per second (target >= 5,000)",
         f"{results['screen_dict_per_s']:,.0f}"),
        ("engine on parsed intakes, per second", f"{results['engine_only_per_s']:,.0f}"),
        ("screen() + JSON serialisation, per second", f"{results['screen_and_json_per_s']:,.0f}"),
        ("screen() on the complex mix (~5 findings each), per second",
         f"{results['screen_complex_per_s']:,.0f}"),
        ("CLI `--format jsonl`, 10,000 intakes, per second (target >= 3,000)",
         f"{results['cli_jsonl_per_s']:,.0f} ({results['cli_jsonl_10k_wall_s']:.2f} s)"),
        ("cold start, one screening, median of 10 (target < 0.3 s)",
         f"{results['cold_start_median_s']:.3f} s (best {results['cold_start_best_s']:.3f} s)"),
        ("peak RSS, benchmark process", f"{results['peak_rss_mib_bench_process']:.0f} MiB"),
        ("peak RSS, largest CLI run", f"{results['peak_rss_mib_cli_children']:.0f} MiB"),
    ]
    print(f"machine: {results['machine']}")
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
