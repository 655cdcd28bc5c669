"""Partial dates (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``) and their safe reading.

The contract says a partial date counts as the day nearest to ``assessed_on`` that it could
mean: ``2026-09`` asked "within 6 weeks of 2026-11-16?" is read as 2026-09-30. That is the latest
day the date could mean, capped at the screening date.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

_PATTERN = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


@dataclass(frozen=True, slots=True, order=True)
class PartialDate:
    year: int
    month: int | None = None
    day: int | None = None

    @classmethod
    def parse(cls, text: str) -> PartialDate:
        m = _PATTERN.match(text.strip())
        if not m:
            raise ValueError("must be a date written YYYY, YYYY-MM or YYYY-MM-DD")
        year = int(m.group(1))
        month = int(m.group(2)) if m.group(2) else None
        day = int(m.group(3)) if m.group(3) else None
        if year < 1900:
            raise ValueError("year must be 1900 or later")
        if month is not None and not 1 <= month <= 12:
            raise ValueError("month must be 01 to 12")
        if day is not None and month is not None:
            last = calendar.monthrange(year, month)[1]
            if not 1 <= day <= last:
                raise ValueError(f"day must be 01 to {last:02d} in that month")
        return cls(year, month, day)

    def earliest(self) -> date:
        return date(self.year, self.month or 1, self.day or 1)

    def latest(self) -> date:
        month = self.month or 12
        day = self.day or calendar.monthrange(self.year, month)[1]
        return date(self.year, month, day)

    def nearest_to(self, as_of: date) -> date:
        """The day this could mean that lies nearest to ``as_of`` (never after it)."""
        latest = self.latest()
        return latest if latest <= as_of else max(self.earliest(), as_of)

    def __str__(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


def days_before(as_of: date, text: str | None) -> int | None:
    """Whole days from a (partial) date to ``as_of``, on the safe reading; None if no date."""
    if text is None:
        return None
    return (as_of - PartialDate.parse(text).nearest_to(as_of)).days
