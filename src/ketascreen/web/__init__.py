"""The web application: patient self-screening, the clinician workspace and the REST API (FastAPI)."""
