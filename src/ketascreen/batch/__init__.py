"""Population screening: the knowledge base compiled to set-based SQL, run on DuckDB or Spark.

Public API (imported on first use, so that ``import ketascreen.batch`` stays light)::

    screen_population(input_path, out, kb=..., protocol=None, today=..., engine="duckdb")
    write_population(out_dir, people, seed=1, layout="tables", ref=...)   # synthetic people
    BatchResult, BatchCompileError

Modules: ``layout`` (the normalised tables), ``inputs`` / ``jsonl`` / ``omop`` (readers),
``normalise`` (checks and typed tables), ``vocabulary`` (look-up tables), ``compiler`` (rules →
SQL), ``engines`` (DuckDB and Spark runners), ``run`` (a whole run), ``summary``, ``synth``,
``intakes`` (the registered people as intakes). See ``docs/population.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BatchCompileError", "BatchResult", "screen_population", "write_population"]

_WHERE = {
    "BatchCompileError": "ketascreen.batch.compiler",
    "BatchResult": "ketascreen.batch.run",
    "screen_population": "ketascreen.batch.run",
    "write_population": "ketascreen.batch.synth",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
