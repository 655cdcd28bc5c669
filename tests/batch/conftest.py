"""Fixtures of the population-screening tests: the compiled knowledge base, the screening date,
and one Spark session (local mode, no UI, two shuffle partitions) shared by every Spark test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from ketascreen.batch.engines import DuckDBRunner, SparkRunner, spark_session
from ketascreen.core.engine import CompiledKnowledgeBase
from ketascreen.core.kb import KnowledgeBase
from ketascreen.services import Screener

REF = date(2026, 11, 16)


@pytest.fixture(scope="session")
def ckb(kb: KnowledgeBase) -> CompiledKnowledgeBase:
    return CompiledKnowledgeBase(kb)


@pytest.fixture(scope="session")
def ref() -> date:
    return REF


@pytest.fixture(scope="session")
def reference(kb: KnowledgeBase) -> Screener:
    return Screener(kb)


@pytest.fixture
def duck() -> Iterator[DuckDBRunner]:
    runner = DuckDBRunner(threads=2)
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def spark_session_local() -> Iterator[Any]:
    session = spark_session("local[2]", conf={
        "spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2",
        "spark.ui.enabled": "false", "spark.driver.memory": "1g",
        "spark.sql.adaptive.enabled": "false",
        # Tiny data, large plans: interpreted expressions and fewer optimizer passes keep the
        # local tests fast (a cluster keeps Spark's defaults).
        "spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.sql.optimizer.maxIterations": "20"})
    yield session
    session.stop()


@pytest.fixture
def spark(spark_session_local: Any) -> Iterator[SparkRunner]:
    runner = SparkRunner(spark_session_local)
    yield runner
    runner.close()
