"""Settings, declared once: flag > environment (KETASCREEN_*) > default. No import-time state."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CRISIS_CONTACTS = (
    "If you are in danger or thinking about ending your life, call or text 988 (the Suicide & "
    "Crisis Lifeline) now, or call 911 for an emergency. Please do not wait for the clinic."
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting ketascreen reads. Documented in docs/configuration.md."""

    protocol: Path | None = None
    crisis_contacts: str | None = None
    cache_dir: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: object) -> Settings:
        env = os.environ if env is None else env
        protocol = flags.get("protocol") or env.get("KETASCREEN_PROTOCOL") or None
        crisis = flags.get("crisis_contacts") or env.get("KETASCREEN_CRISIS_CONTACTS") or None
        cache = env.get("KETASCREEN_CACHE_DIR") or None
        return cls(
            protocol=Path(str(protocol)) if protocol else None,
            crisis_contacts=str(crisis) if crisis else None,
            cache_dir=Path(cache) if cache else None,
        )


SETTINGS_DOC: dict[str, str] = {
    "KETASCREEN_PROTOCOL": "path of a clinic protocol file used when --protocol is not given",
    "KETASCREEN_CRISIS_CONTACTS": "the crisis and emergency contacts shown in urgent patient "
    "texts (default: 988 and 911, for the US)",
    "KETASCREEN_CACHE_DIR": "where the compiled knowledge base is cached (default: "
    "$XDG_CACHE_HOME/ketascreen or ~/.cache/ketascreen)",
}
