"""Generate the ICD-10-CM code set shipped in the knowledge base.

Writes ``src/ketascreen/knowledge/vocab/icd10cm_codes.txt.gz`` from the ``simple_icd_10_cm``
package (a dev dependency; the runtime never imports it). The file lists every valid ICD-10-CM
code, categories and subcategories alike, down to the seventh-character extensions (``S060X0A``),
but not chapters (``5``) or blocks of categories (``F20-F29``): one code per line, without the
dot, upper case, sorted, after a first line ``# release: ...`` naming the package version and
the ICD-10-CM release it carries.

The output is deterministic: the same package version gives the same bytes (gzip with
``mtime=0`` and no file name in the header). ``--check`` compares the shipped file's content
with what would be generated and exits 1 when it is stale; it compares the decompressed text,
because different zlib builds may compress the same text to different bytes.

Usage::

    python scripts/build_icd10cm.py            # (re)write the file
    python scripts/build_icd10cm.py --check    # exit 1 if the shipped file is stale
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import sys
import warnings
from importlib import metadata, resources
from pathlib import Path
from types import ModuleType

PACKAGE = "simple_icd_10_cm"
REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "src" / "ketascreen" / "knowledge" / "vocab" / "icd10cm_codes.txt.gz"
# A letter, then 2 to 6 letters or digits (not always a digit second: QA0 is new in 2026).
CODE = re.compile(r"^[A-Z][0-9A-Z]{2,6}$")
# The package ships its data as e.g. data/code-list-April-2026.txt (the CDC release it carries).
RELEASE_FILE = re.compile(r"^code-list-([A-Za-z]+)-(\d{4})\.txt$")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)


def _import_package() -> ModuleType:
    """Import ``simple_icd_10_cm`` quietly (it uses a deprecated importlib.resources call)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm

    module: ModuleType = simple_icd_10_cm
    return module


def release_line() -> str:
    """The header line: package version and the ICD-10-CM release (and US fiscal year)."""
    version = metadata.version(PACKAGE)
    data = resources.files(PACKAGE) / "data"
    found: list[tuple[str, int]] = []
    for entry in data.iterdir():
        match = RELEASE_FILE.match(entry.name)
        if match:
            found.append((match.group(1).capitalize(), int(match.group(2))))
    if len(found) != 1 or found[0][0] not in MONTHS:
        raise SystemExit(f"cannot tell which ICD-10-CM release {PACKAGE} carries: {found}")
    month, year = found[0]
    # The US fiscal year starts on 1 October: the October release of year N is FY N+1.
    fiscal_year = year + 1 if MONTHS.index(month) >= MONTHS.index("October") else year
    return (
        f"# release: {PACKAGE} {version}, ICD-10-CM {month} {year} release "
        f"(FY{fiscal_year}, CDC/NCHS)"
    )


def codes() -> list[str]:
    """Every category and subcategory code, without the dot, upper case, sorted, unique."""
    cm = _import_package()
    result: set[str] = set()
    for code in cm.get_all_codes(with_dots=False):
        # Chapters ("5") and blocks ("F20-F29") are not codes; a block holding a single
        # category shares that category's name and is kept as the category.
        if not cm.is_category_or_subcategory(code):
            continue
        code = str(code).replace(".", "").upper()
        if not CODE.match(code):
            raise SystemExit(f"unexpected code shape from {PACKAGE}: {code!r}")
        result.add(code)
    if len(result) < 70_000:
        raise SystemExit(f"only {len(result)} codes from {PACKAGE}: the data looks incomplete")
    return sorted(result)


def render() -> str:
    """The file's text: the release line, then one code per line."""
    return "\n".join([release_line(), *codes()]) + "\n"


def compress(text: str) -> bytes:
    """Gzip with a fixed header (no file name, mtime 0) so the bytes are reproducible."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("ascii"))
    return buffer.getvalue()


def check(path: Path) -> int:
    """0 when the shipped file holds exactly what would be generated, 1 otherwise."""
    if not path.exists():
        print(f"{path} is missing: run python scripts/build_icd10cm.py", file=sys.stderr)
        return 1
    expected = render()
    try:
        shipped = gzip.decompress(path.read_bytes()).decode("ascii")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        print(f"{path} is unreadable ({error}): run python scripts/build_icd10cm.py",
              file=sys.stderr)
        return 1
    if shipped != expected:
        old, new = shipped.splitlines(), expected.splitlines()
        added = sorted(set(new[1:]) - set(old[1:]))
        removed = sorted(set(old[1:]) - set(new[1:]))
        print(
            f"{path} is stale: it says {old[0] if old else '(nothing)'!r}, the generator "
            f"{new[0]!r}; {len(added)} codes to add (e.g. {added[:5]}), {len(removed)} to "
            f"remove (e.g. {removed[:5]}). Run python scripts/build_icd10cm.py",
            file=sys.stderr,
        )
        return 1
    print(f"{path} is up to date ({len(expected.splitlines()) - 1} codes)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the shipped file differs from the output"
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help="file to write or check (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    path: Path = args.output
    if args.check:
        return check(path)
    text = render()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(compress(text))
    lines = text.splitlines()
    print(f"wrote {path} ({len(lines) - 1} codes; {lines[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
