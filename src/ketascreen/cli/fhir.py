"""Commands of the `ketascreen` CLI for fhir (registered on the main app by `register`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app (keep imports of heavy libraries inside the
    command functions: the CLI's cold start must stay short)."""
