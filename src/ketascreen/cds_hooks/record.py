"""The patient's record for one CDS Hooks call: prefetched by the EHR, or fetched by us.

CDS Hooks 2.0 prefetch semantics, exactly: a prefetch key that is *absent* was not fetched by
the EHR, so the service fetches it from ``fhirServer`` with the ``fhirAuthorization`` bearer token
(all missing keys at once, within a short time limit); a key whose value is ``null`` means the
EHR looked and found nothing. When data is neither prefetched nor fetchable the call is answered
412 (:class:`RecordUnavailable`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from ketascreen.cds_hooks.settings import CdsSettings

__all__ = ["PREFETCH", "PREFETCH_TYPES", "PatientRecord", "RecordUnavailable", "gather_record"]

_QUESTIONNAIRE = "{questionnaire}"
PREFETCH: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    # Every condition, not only active ones: a past psychosis, aneurysm or haemorrhage counts
    # whatever its status (refuted and entered-in-error ones are dropped when read, and said so).
    "conditions": "Condition?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&status=active,on-hold",
    "allergies": "AllergyIntolerance?patient={{context.patientId}}",
    "familyHistory": "FamilyMemberHistory?patient={{context.patientId}}",
    "bloodPressure": "Observation?patient={{context.patientId}}"
                     "&code=http://loinc.org|85354-9&_sort=-date&_count=5",
    "heartRate": "Observation?patient={{context.patientId}}"
                 "&code=http://loinc.org|8867-4&_sort=-date&_count=1",
    "pregnancy": "Observation?patient={{context.patientId}}"
                 "&code=http://loinc.org|82810-3,http://loinc.org|63895-7&_sort=-date&_count=4",
    "questionnaireResponses": "QuestionnaireResponse?patient={{context.patientId}}"
                              "&questionnaire=" + _QUESTIONNAIRE + "&_sort=-authored&_count=1",
}
"""Prefetch templates (CDS Hooks 2.0 syntax), the same for every service."""

PREFETCH_TYPES: dict[str, tuple[str, ...]] = {
    "conditions": ("Condition",),
    "medicationStatements": ("MedicationStatement",),
    "medicationRequests": ("MedicationRequest",),
}
"""Keys whose search, once made, means "none recorded" when it finds nothing."""

_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_MAX_PAGES = 5


class RecordUnavailable(Exception):
    """The record could not be had (412): which prefetch keys, and why."""

    def __init__(self, keys: list[str], reason: str) -> None:
        self.keys = keys
        self.reason = reason
        super().__init__(f"{reason}: {', '.join(keys)}")


@dataclass(slots=True)
class PatientRecord:
    """The gathered resources as one ``collection`` Bundle, and where each came from."""

    bundle: dict[str, Any]
    labels: list[str]  # entry index → "Condition/123" (or "prefetch conditions entry[2]")
    searched: set[str] = field(default_factory=set)
    fetched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def label_path(self, path: str) -> str:
        """``entry[3].resource.code`` → ``Condition/123.code`` (a path the EHR can follow)."""
        m = re.match(r"^entry\[(\d+)\]\.resource(.*)$", path)
        if not m or int(m.group(1)) >= len(self.labels):
            return path
        return self.labels[int(m.group(1))] + m.group(2)


def render(template: str, context: Mapping[str, Any], questionnaire: str) -> str:
    """Fill a prefetch template's ``{{context.x}}`` tokens (URL-encoded)."""
    def token(m: re.Match[str]) -> str:
        name = m.group(1)
        if not name.startswith("context.") or not isinstance(context.get(name[8:]), str):
            raise RecordUnavailable([template], f"the context has no {name}")
        return quote(str(context[name[8:]]), safe="")

    return _TOKEN.sub(token, template).replace(_QUESTIONNAIRE, quote(questionnaire, safe=":/"))


def _resources(value: Any) -> list[dict[str, Any]]:
    """A prefetched or fetched value as resources (a Bundle's entries, or the resource)."""
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        out = []
        for e in value.get("entry") or []:
            if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
                continue
            if (e.get("search") or {}).get("mode") == "outcome":
                continue
            out.append(e["resource"])
        return out
    return [value]


def _next_link(bundle: Any) -> str | None:
    if not isinstance(bundle, dict):
        return None
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(
                link.get("url"), str):
            return str(link["url"])
    return None


def _allowed_server(url: str, settings: CdsSettings) -> bool:
    parts = urlsplit(url)
    if settings.fhir_servers:
        return any(url.rstrip("/") == s or url.startswith(s + "/") for s in settings.fhir_servers)
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")


async def gather_record(request: Mapping[str, Any], *, templates: Mapping[str, str],
                        settings: CdsSettings, questionnaire: str) -> PatientRecord:
    """Resolve every prefetch key (given, null, or fetched now) into one Bundle."""
    context = request.get("context") if isinstance(request.get("context"), dict) else {}
    assert isinstance(context, dict)
    prefetch = request.get("prefetch") if isinstance(request.get("prefetch"), dict) else {}
    assert isinstance(prefetch, dict)
    values: dict[str, Any] = {}
    missing: list[str] = []
    searched: set[str] = set()
    notes: list[str] = []
    for key in templates:
        if key in prefetch:
            values[key] = prefetch[key]
            searched.update(PREFETCH_TYPES.get(key, ()))
            if _next_link(prefetch[key]):
                notes.append(f"prefetch {key} holds only the first page of results")
        else:
            missing.append(key)
    if missing:
        fetched = await _fetch(request, missing, templates, context, settings, questionnaire)
        for key, value in fetched.items():
            values[key] = value
            searched.update(PREFETCH_TYPES.get(key, ()))
    patient = values.get("patient")
    if isinstance(patient, dict) and patient.get("resourceType") == "Bundle":
        found = [r for r in _resources(patient) if r.get("resourceType") == "Patient"]
        patient = values["patient"] = found[0] if len(found) == 1 else None
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise RecordUnavailable(["patient"], "the Patient was not found")
    entries: list[dict[str, Any]] = []
    labels: list[str] = []
    seen: set[str] = set()
    for key in templates:
        for i, res in enumerate(_resources(values.get(key))):
            rid = res.get("id")
            ref = f"{res.get('resourceType')}/{rid}" if isinstance(rid, str) else None
            if ref is not None and ref in seen:
                continue
            if ref is not None:
                seen.add(ref)
            entries.append({"resource": res})
            labels.append(ref or f"prefetch {key} entry[{i}]")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return PatientRecord(bundle, labels, searched, missing, notes)


async def _fetch(request: Mapping[str, Any], keys: list[str], templates: Mapping[str, str],
                 context: Mapping[str, Any], settings: CdsSettings,
                 questionnaire: str) -> dict[str, Any]:
    server = request.get("fhirServer")
    auth = request.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, dict) else None
    if not isinstance(server, str) or not server:
        raise RecordUnavailable(keys, "not prefetched, and no fhirServer to fetch them from")
    if not isinstance(token, str) or not token:
        raise RecordUnavailable(keys, "not prefetched, and no fhirAuthorization to fetch them "
                                "with")
    if not _allowed_server(server, settings):
        raise RecordUnavailable(keys, "not prefetched, and fhirServer is not a server this "
                                "service may fetch from")
    base = server.rstrip("/") + "/"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    deadline = time.monotonic() + settings.fetch_timeout
    timeout = httpx.Timeout(settings.fetch_timeout)

    async def one(client: httpx.AsyncClient, key: str) -> tuple[str, Any]:
        url = urljoin(base, render(templates[key], context, questionnaire))
        response = await client.get(url, headers=headers)
        if response.status_code == 404 and key == "patient":
            return key, None
        response.raise_for_status()
        body = response.json()
        pages = 1
        while (nxt := _next_link(body)) and pages < _MAX_PAGES and time.monotonic() < deadline:
            if not nxt.startswith(base):
                break
            more = await client.get(nxt, headers=headers)
            more.raise_for_status()
            page = more.json()
            body.setdefault("entry", []).extend(page.get("entry") or [])
            body["link"] = page.get("link") or []
            pages += 1
        return key, body

    try:
        async with httpx.AsyncClient(transport=settings.transport, timeout=timeout) as client:
            results = await asyncio.wait_for(
                asyncio.gather(*(one(client, k) for k in keys)), timeout=settings.fetch_timeout)
    except TimeoutError as exc:
        raise RecordUnavailable(keys, "the FHIR server did not answer in time") from exc
    except httpx.HTTPStatusError as exc:
        raise RecordUnavailable(keys, f"the FHIR server answered {exc.response.status_code}"
                                ) from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise RecordUnavailable(keys, f"the FHIR server could not be read "
                                f"({type(exc).__name__})") from exc
    return dict(results)
