"""Population screening: the knowledge base compiled to set-based SQL, run on DuckDB or Spark."""
