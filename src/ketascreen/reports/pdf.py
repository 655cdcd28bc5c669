"""PDF reports for the chart: the HTML reports printed by WeasyPrint, as PDF/A-2u.

A chart or document-management system accepts PDF/A: every font is embedded (subset), the
colours carry an sRGB output intent, text maps to Unicode, and the document has a title,
author, subject and language. Pages are US Letter or A4 with page numbers in the footer; the
page is chosen here (``paper``), the layout fits both.

WeasyPrint needs Pango (system libraries). It is imported only when a PDF is made, so the
command line's cold start does not pay for it; when the libraries are missing the error says
how to install them.
"""

from __future__ import annotations

from typing import Any, Literal

from ketascreen.core.model import Assessment
from ketascreen.reports.render import render_many

Paper = Literal["letter", "a4"]
PAPER_SIZES: dict[str, str] = {"letter": "letter", "a4": "A4"}
PDF_VARIANT = "pdf/a-2u"


class PdfUnavailableError(RuntimeError):
    """WeasyPrint or the system libraries it needs (Pango, HarfBuzz, fonts) are missing."""


def _weasyprint() -> Any:
    try:
        import weasyprint  # type: ignore[import-untyped]
    except (ImportError, OSError) as exc:  # OSError: a shared library (Pango) cannot load
        raise PdfUnavailableError(
            "PDF reports need WeasyPrint and the Pango, HarfBuzz and font packages it uses "
            f"({exc}). Run `make system` (Debian: apt-get install libpango-1.0-0 "
            "libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core), or use --format html."
        ) from exc
    return weasyprint


_INTENT = "srgb-iec61966"


def _srgb_profile() -> Any:
    """WeasyPrint's own sRGB profile, read and closed here.

    Given no profile, a PDF/A variant makes WeasyPrint open this file and never close it (a
    ResourceWarning, an error under ``-W error``); handing it over as the output intent avoids
    that and gives the same PDF/A output intent.
    """
    from importlib.resources import files

    from weasyprint.css import ColorProfile  # type: ignore[import-untyped]

    with (files("weasyprint.pdf") / "sRGB2014.icc").open("rb") as fh:
        return ColorProfile(fh, "sRGB2014.icc", "relative-colorimetric", (["r"], ["g"], ["b"]))


def html_to_pdf(html: str, *, paper: Paper = "letter") -> bytes:
    """Print an HTML report (one of ours: self-contained, no external resources) to PDF bytes."""
    if paper not in PAPER_SIZES:
        raise ValueError(f"paper must be one of {', '.join(PAPER_SIZES)}, not {paper!r}")
    weasyprint = _weasyprint()
    page = weasyprint.CSS(string=f"@page {{ size: {PAPER_SIZES[paper]}; }}")
    document = weasyprint.HTML(string=html, base_url=None)
    pdf = document.write_pdf(stylesheets=[page], pdf_variant=PDF_VARIANT, pdf_tags=True,
                             color_profiles={_INTENT: _srgb_profile()}, output_intent=_INTENT)
    if not isinstance(pdf, bytes):  # write_pdf() without a target returns the bytes
        raise TypeError("WeasyPrint returned no PDF")
    return pdf


def render_pdf(
    items: list[Assessment],
    audience: str = "clinician",
    disclaimer: str = "",
    *,
    crisis_contacts: str | None = None,
    paper: Paper = "letter",
) -> bytes:
    """Assessments as one PDF: each screening starts on a new page."""
    if not items:
        raise ValueError("a PDF needs at least one assessment")
    html = render_many(items, "html", audience, disclaimer, crisis_contacts=crisis_contacts)
    return html_to_pdf(html, paper=paper)
