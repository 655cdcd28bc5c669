"""Loading the knowledge base and clinic protocols from YAML, validated and linted.

The packaged knowledge base lives beside this module. Loading reads every file, hashes the
bytes, and reuses a compiled copy from the user cache when the hash matches (the cache is a
convenience: a missing or unreadable cache only costs time). Every problem in every file is
reported at once, with its file and path.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from ketascreen.core.kb import (
    Allergen,
    AnswerSpec,
    Claim,
    ConditionTerm,
    Drug,
    EducationTopic,
    Instrument,
    KnowledgeBase,
    MedicationClass,
    Protocol,
    Rule,
    Source,
    Vocabulary,
)
from ketascreen.core.protocols import protocol_hash, validate_protocol
from ketascreen.core.validation import format_loc
from ketascreen.errors import Diagnostic, KnowledgeBaseError, Problem, ProtocolError

PACKAGE_DIR = Path(__file__).resolve().parent
_CACHE_FORMAT = "kb-cache-4"


def knowledge_files(root: Path = PACKAGE_DIR) -> list[Path]:
    files = [root / "manifest.yaml", root / "sources.yaml", root / "claims.yaml",
             root / "education.yaml", root / "answers.yaml"]
    files += sorted((root / "rules").glob("*.yaml"))
    files += sorted((root / "instruments").glob("*.yaml"))
    files += sorted((root / "vocab").glob("*.yaml"))
    files += sorted((root / "vocab").glob("*.txt.gz"))
    return files


def content_hash(files: Iterable[Path], root: Path) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() if path.exists() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def _cache_dir() -> Path:
    base = os.environ.get("KETASCREEN_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "ketascreen" if base else Path.home() / ".cache" / "ketascreen"


def load_knowledge_base(root: Path | None = None, *, use_cache: bool = True) -> KnowledgeBase:
    """Load, validate and lint the knowledge base (the packaged one by default)."""
    root = (root or PACKAGE_DIR).resolve()
    files = knowledge_files(root)
    digest = content_hash(files, root)
    cache = _cache_dir() / f"{_CACHE_FORMAT}-{digest}.pickle"
    if use_cache and cache.exists():
        try:
            with cache.open("rb") as fh:
                found = pickle.load(fh)
            if isinstance(found, KnowledgeBase) and found.sha256 == digest:
                return found
        except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError):
            pass
    kb = _load(root, digest)
    if use_cache:
        _write_cache(cache, kb)
    return kb


def _write_cache(path: Path, kb: KnowledgeBase) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(kb, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs start-up time


def _read_yaml(path: Path, diags: list[Diagnostic], root: Path) -> Any:
    import yaml  # only on a cache miss: keeps the command line's cold start short

    where = path.relative_to(root).as_posix()
    if not path.exists():
        diags.append(Diagnostic("KB001", "file is missing", where))
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        diags.append(Diagnostic("KB002", f"not valid YAML: {exc}", where))
        return None


def _validate(model: Any, data: Any, where: str, diags: list[Diagnostic]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = format_loc(err["loc"])
            diags.append(Diagnostic("KB003", err["msg"], f"{where}{'.' + loc if loc else ''}"))
        return None


def _mapping(data: Any, key: str, where: str, diags: list[Diagnostic]) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        diags.append(Diagnostic("KB004", f"expected a mapping under '{key}'", where))
        return {}
    return dict(data[key])


_T = TypeVar("_T")


def _registry(root: Path, name: str, key: str, model: type[_T],
              diags: list[Diagnostic]) -> dict[str, _T]:
    """A YAML file holding one mapping of id → entry, each entry validated as ``model``."""
    out: dict[str, _T] = {}
    for entry_id, raw in _mapping(_read_yaml(root / name, diags, root), key, name, diags).items():
        entry = _validate(model, raw, f"{name}:{entry_id}", diags)
        if entry:
            out[str(entry_id)] = entry
    return out


def _load(root: Path, digest: str) -> KnowledgeBase:
    diags: list[Diagnostic] = []
    manifest = _read_yaml(root / "manifest.yaml", diags, root) or {}
    sources = _registry(root, "sources.yaml", "sources", Source, diags)
    claims = _registry(root, "claims.yaml", "claims", Claim, diags)
    education = _registry(root, "education.yaml", "topics", EducationTopic, diags)
    answers = _registry(root, "answers.yaml", "answers", AnswerSpec, diags)

    rules: list[Rule] = []
    for path in sorted((root / "rules").glob("*.yaml")):
        where = path.relative_to(root).as_posix()
        data = _read_yaml(path, diags, root)
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            diags.append(Diagnostic("KB004", "expected 'rules:' with a list of rules", where))
            continue
        for i, raw in enumerate(data["rules"]):
            rid = raw.get("id", f"#{i}") if isinstance(raw, dict) else f"#{i}"
            rule = _validate(Rule, raw, f"{where}:{rid}", diags)
            if rule:
                rules.append(rule)

    instruments: dict[str, Instrument] = {}
    for path in sorted((root / "instruments").glob("*.yaml")):
        where = path.relative_to(root).as_posix()
        instrument = _validate(Instrument, _read_yaml(path, diags, root), where, diags)
        if instrument:
            instruments[path.stem] = instrument

    vocabulary = _load_vocabulary(root, diags)
    if diags or vocabulary is None:
        raise KnowledgeBaseError(diags)
    kb = KnowledgeBase(
        name=str(manifest.get("name", "ketascreen")),
        version=str(manifest.get("version", "0")),
        sha256=digest,
        rules=rules,
        sources=sources,
        claims=claims,
        education=education,
        answers=answers,
        texts={str(k): " ".join(str(v).split()) for k, v in (manifest.get("texts") or {}).items()},
        vocabulary=vocabulary,
        instruments=instruments,
    )
    from ketascreen.core.lint import lint_knowledge_base  # only on a cache miss
    from ketascreen.core.scoring import check_instruments

    problems = lint_knowledge_base(kb) + check_instruments(kb)
    if problems:
        raise KnowledgeBaseError(problems)
    return kb


def _load_vocabulary(root: Path, diags: list[Diagnostic]) -> Vocabulary | None:
    codes_path = root / "vocab" / "icd10cm_codes.txt.gz"
    release = "unknown"
    codes: set[str] = set()
    if not codes_path.exists():
        diags.append(Diagnostic("KB001", "ICD-10-CM code set is missing (run "
                                "scripts/build_icd10cm.py)", "vocab/icd10cm_codes.txt.gz"))
    else:
        with gzip.open(codes_path, "rt", encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("#"):
                    if "release:" in line:
                        release = line.split("release:", 1)[1].strip()
                elif line:
                    codes.add(line)
    cond = _read_yaml(root / "vocab" / "conditions.yaml", diags, root) or {}
    terms = [t for i, raw in enumerate(cond.get("terms") or [])
             if (t := _validate(ConditionTerm, raw, f"vocab/conditions.yaml:terms[{i}]", diags))]
    meds = _read_yaml(root / "vocab" / "medications.yaml", diags, root) or {}
    classes = {str(k): c for k, raw in (meds.get("classes") or {}).items()
               if (c := _validate(MedicationClass, raw, f"vocab/medications.yaml:classes.{k}",
                                  diags))}
    drugs = [d for i, raw in enumerate(meds.get("drugs") or [])
             if (d := _validate(Drug, raw, f"vocab/medications.yaml:drugs[{i}]", diags))]
    alls = _read_yaml(root / "vocab" / "allergens.yaml", diags, root) or {}
    allergens = [a for i, raw in enumerate(alls.get("allergens") or [])
                 if (a := _validate(Allergen, raw, f"vocab/allergens.yaml:allergens[{i}]",
                                    diags))]
    return Vocabulary(icd10cm=frozenset(codes), icd10cm_release=release, conditions=terms,
                      medication_classes=classes, drugs=drugs, allergens=allergens)


def load_protocol(path: Path, kb: KnowledgeBase) -> Protocol:
    """Load a clinic protocol file; every problem is reported at once (ProtocolError)."""
    import yaml

    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProtocolError([Problem("", f"cannot read the file: {exc.strerror}")], where) from exc
    except yaml.YAMLError as exc:
        raise ProtocolError([Problem("", f"not valid YAML: {exc}")], where) from exc
    return protocol_from_data(raw, kb, source=where, raw_bytes=path.read_bytes())


def protocol_from_data(
    raw: Any, kb: KnowledgeBase, *, source: str = "protocol", raw_bytes: bytes | None = None
) -> Protocol:
    if not isinstance(raw, dict):
        raise ProtocolError([Problem("", "a protocol file is a mapping (name, overrides, …)")],
                            source)
    data = dict(raw)
    data.pop("sha256", None)
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError([Problem(format_loc(e["loc"]), e["msg"]) for e in exc.errors()],
                            source) from exc
    problems = validate_protocol(kb, protocol)
    if problems:
        raise ProtocolError(problems, source)
    digest = hashlib.sha256(raw_bytes).hexdigest() if raw_bytes else protocol_hash(protocol)
    return protocol.model_copy(update={"sha256": digest})
