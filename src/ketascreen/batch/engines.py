"""The two runners: DuckDB (embedded, the default) and Spark (local, a cluster, or Spark Connect).

A runner registers input files and Arrow tables as views, runs SQL rendered in its own dialect,
and writes results. Everything above this module speaks SQLGlot trees or DuckDB-dialect text,
so the same screening runs on both. Heavy libraries are imported when a runner is created.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ketascreen.batch.sql import Expr, render
from ketascreen.errors import InputError, Problem

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

# Column types as the readers see them.
TEXT, INT, FLOAT, BOOL, DATE, TIMESTAMP, OTHER = (
    "text", "int", "float", "bool", "date", "timestamp", "other")


class Runner(ABC):
    """One SQL engine session."""

    dialect: str = ""

    def render(self, query: str | Expr) -> str:
        return render(query, self.dialect)

    @abstractmethod
    def read_files(self, name: str, files: Sequence[Path | str], fmt: str) -> dict[str, str]:
        """Register ``files`` (parquet or csv) as view ``name`` with lower-case column names;
        return each column's type (text, int, float, bool, date, timestamp, other)."""

    @abstractmethod
    def register_arrow(self, name: str, table: pa.Table) -> None: ...

    @abstractmethod
    def view(self, name: str, query: str | Expr) -> None: ...

    @abstractmethod
    def table(self, name: str, query: str | Expr) -> None:
        """Materialise ``query`` as ``name`` (computed once, read many times)."""

    @abstractmethod
    def rows(self, query: str | Expr) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def arrow(self, query: str | Expr) -> pa.Table: ...

    @abstractmethod
    def columns(self, name: str) -> dict[str, str]: ...

    @abstractmethod
    def write(self, query: str | Expr, path: str, fmt: str) -> None: ...

    def scalar(self, query: str | Expr) -> Any:
        found = self.rows(query)
        return found[0][0] if found else None

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def _file_error(files: Sequence[Path | str], exc: Exception) -> InputError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^[A-Za-z ]*Error: ", "", text)
    where = ", ".join(str(f) for f in files[:3])
    return InputError([Problem("", f"cannot read the file: {text}")], source=where)


def _lower_columns(names: Sequence[str], files: Sequence[Path | str]) -> list[str]:
    seen: dict[str, str] = {}
    out = []
    for name in names:
        low = name.strip().lower()
        if low in seen:
            raise InputError([Problem(name, f"two columns are both named {low!r} (ignoring case)")],
                             source=str(files[0]))
        seen[low] = name
        out.append(low)
    return out


# ============================================================================================ DuckDB


def _duck_kind(type_name: str) -> str:
    t = type_name.upper()
    if t in ("VARCHAR", "TEXT", "STRING") or t.startswith("VARCHAR"):
        return TEXT
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT"):
        return INT
    if t in ("FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL"):
        return FLOAT
    if t == "BOOLEAN":
        return BOOL
    if t == "DATE":
        return DATE
    if t.startswith("TIMESTAMP"):
        return TIMESTAMP
    if t == '"NULL"' or t == "NULL":
        return TEXT
    return OTHER


class DuckDBRunner(Runner):
    dialect = "duckdb"

    def __init__(self, *, threads: int | None = None, memory_limit: str | None = None,
                 temp_directory: str | None = None) -> None:
        import duckdb

        self._duckdb = duckdb
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute("SET memory_limit = ?", [memory_limit])
        if temp_directory:
            self.con.execute("SET temp_directory = ?", [temp_directory])
        # Output order is set explicitly by ORDER BY; insertion order need not be kept.
        self.con.execute("SET preserve_insertion_order = false")
        self._arrow: list[Any] = []

    def _run(self, sql: str) -> Any:
        return self.con.execute(sql)

    def read_files(self, name: str, files: Sequence[Path | str], fmt: str) -> dict[str, str]:
        paths = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
        if fmt == "parquet":
            source = f"read_parquet({paths}, union_by_name = true)"
        else:
            source = (f"read_csv({paths}, header = true, all_varchar = true, union_by_name = true, "
                      "auto_detect = true)")
        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        except self._duckdb.Error as exc:
            raise _file_error(files, exc) from None
        names = [row[0] for row in described]
        lower = _lower_columns(names, files)
        select = ", ".join(
            f'"{n.replace(chr(34), chr(34) * 2)}" AS "{low}"' for n, low in zip(names, lower,
                                                                                  strict=True))
        self._run(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {select} FROM {source}")
        return {low: _duck_kind(str(row[1])) for low, row in zip(lower, described, strict=True)}

    def register_arrow(self, name: str, table: pa.Table) -> None:
        self._arrow.append(table)
        self.con.register(name, table)

    def view(self, name: str, query: str | Expr) -> None:
        self._run(f"CREATE OR REPLACE TEMP VIEW {name} AS {self.render(query)}")

    def table(self, name: str, query: str | Expr) -> None:
        self._run(f"CREATE OR REPLACE TEMP TABLE {name} AS {self.render(query)}")

    def rows(self, query: str | Expr) -> list[tuple[Any, ...]]:
        return list(self._run(self.render(query)).fetchall())

    def arrow(self, query: str | Expr) -> pa.Table:
        relation = self.con.sql(self.render(query))
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        table = fetch()
        if type(table).__name__ == "RecordBatchReader":
            table = table.read_all()
        return table

    def columns(self, name: str) -> dict[str, str]:
        described = self.con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
        return {str(r[0]): _duck_kind(str(r[1])) for r in described}

    def write(self, query: str | Expr, path: str, fmt: str) -> None:
        target = "'" + path.replace("'", "''") + "'"
        options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER"
        self._run(f"COPY ({self.render(query)}) TO {target} ({options})")

    def close(self) -> None:
        self.con.close()


# ============================================================================================ Spark


def _spark_kind(type_name: str) -> str:
    t = type_name.lower()
    if t == "string":
        return TEXT
    if t in ("byte", "short", "integer", "long", "tinyint", "smallint", "int", "bigint"):
        return INT
    if t in ("float", "double") or t.startswith("decimal"):
        return FLOAT
    if t == "boolean":
        return BOOL
    if t == "date":
        return DATE
    if t.startswith("timestamp"):
        return TIMESTAMP
    if t in ("void", "null"):
        return TEXT
    return OTHER


def spark_session(master: str | None = None, remote: str | None = None,
                  conf: dict[str, str] | None = None) -> Any:
    """A Spark session: Spark Connect at ``remote``, a cluster at ``master``, else local[*]."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("ketascreen-batch")
    if remote:
        builder = builder.remote(remote)
    else:
        builder = builder.master(master or os.environ.get("KETASCREEN_SPARK_MASTER") or "local[*]")
        defaults = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8",
                    "spark.sql.session.timeZone": "UTC",
                    "spark.sql.constraintPropagation.enabled": "false",
                    "spark.ui.showConsoleProgress": "false"}
        for key, value in {**defaults, **(conf or {})}.items():
            builder = builder.config(key, value)
    session = builder.getOrCreate()
    if not remote:
        session.sparkContext.setLogLevel("ERROR")
    return session


class SparkRunner(Runner):
    dialect = "spark"

    def __init__(self, session: Any | None = None, *, master: str | None = None,
                 remote: str | None = None, conf: dict[str, str] | None = None) -> None:
        self._own = session is None
        self.spark = session or spark_session(master, remote, conf)
        self._cached: list[Any] = []
        self._views: list[str] = []
        # Constraint propagation re-derives every filter's consequences through the compiled
        # rules' large expressions: minutes of planning for nothing here. Restored on close.
        self._restore: dict[str, str | None] = {}
        for key, value in (("spark.sql.constraintPropagation.enabled", "false"),
                           ("spark.sql.session.timeZone", "UTC")):
            self._restore[key] = self.spark.conf.get(key, None)
            self.spark.conf.set(key, value)

    def _df(self, query: str | Expr) -> Any:
        return self.spark.sql(self.render(query))

    def _name(self, df: Any, name: str) -> None:
        df.createOrReplaceTempView(name)
        self._views.append(name)

    def read_files(self, name: str, files: Sequence[Path | str], fmt: str) -> dict[str, str]:
        paths = [str(f) for f in files]
        try:
            if fmt == "parquet":
                df = self.spark.read.option("mergeSchema", "true").parquet(*paths)
            else:
                df = (self.spark.read.option("header", "true").option("mode", "FAILFAST")
                      .option("inferSchema", "false").csv(paths))
        except Exception as exc:  # Spark raises its own analysis and IO errors
            raise _file_error(files, exc) from None
        names = list(df.columns)
        lower = _lower_columns(names, files)
        df = df.toDF(*lower)
        self._name(df, name)
        return {f.name: _spark_kind(f.dataType.simpleString()) for f in df.schema.fields}

    def register_arrow(self, name: str, table: pa.Table) -> None:
        import pyarrow as pa

        if table.num_rows == 0:
            # Spark cannot infer types from no rows: give it the schema.
            from pyspark.sql.pandas.types import from_arrow_schema

            df = self.spark.createDataFrame([], schema=from_arrow_schema(table.schema))
        else:
            # Spark's Arrow path wants plain (not large) strings and no dictionaries.
            fields = []
            for f in table.schema:
                t = f.type
                if pa.types.is_large_string(t):
                    t = pa.string()
                fields.append(pa.field(f.name, t))
            df = self.spark.createDataFrame(table.cast(pa.schema(fields)))
        self._name(df, name)

    def view(self, name: str, query: str | Expr) -> None:
        self._name(self._df(query), name)

    def table(self, name: str, query: str | Expr) -> None:
        # An eager local checkpoint computes the table once and cuts its lineage: the plans of
        # the queries that read it stay small (a persisted plan is re-analysed by every query
        # that reads it, which for the compiled rules costs minutes and gigabytes).
        df = self._df(query).localCheckpoint(eager=True)
        self._cached.append(df)
        self._name(df, name)

    def rows(self, query: str | Expr) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._df(query).collect()]

    def arrow(self, query: str | Expr) -> pa.Table:
        return self._df(query).toArrow()

    def columns(self, name: str) -> dict[str, str]:
        df = self.spark.table(name)
        return {f.name: _spark_kind(f.dataType.simpleString()) for f in df.schema.fields}

    def write(self, query: str | Expr, path: str, fmt: str) -> None:
        df = self._df(query)
        if "://" in path or path.endswith("/"):
            # A cluster writes a dataset (a directory of part files) to shared storage.
            writer = df.write.mode("overwrite")
            if fmt == "parquet":
                writer.parquet(path)
            else:
                writer.option("header", "true").csv(path)
            return
        table = df.toArrow()
        _write_arrow(table, path, fmt)

    def close(self) -> None:
        for df in self._cached:
            with contextlib.suppress(Exception):
                df.unpersist()
        for name in self._views:
            with contextlib.suppress(Exception):
                self.spark.catalog.dropTempView(name)
        if self._own:
            self.spark.stop()
            return
        for key, old in self._restore.items():
            try:
                if old is None:
                    self.spark.conf.unset(key)
                else:
                    self.spark.conf.set(key, old)
            except Exception:
                pass


def _write_arrow(table: pa.Table, path: str, fmt: str) -> None:
    import pyarrow.csv as pacsv  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    try:
        if fmt == "parquet":
            pq.write_table(table, tmp, compression="zstd")
        else:
            pacsv.write_csv(table, tmp)
        shutil.move(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
