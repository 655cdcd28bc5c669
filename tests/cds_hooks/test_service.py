"""The CDS Hooks 2.0 service: discovery, requests and responses checked against the 2.0 JSON
shapes, prefetch semantics (absent → fetched, null → nothing found, neither → 412), cards."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ketascreen.cds_hooks.cards import SUMMARY_LIMIT
from ketascreen.cds_hooks.record import PREFETCH
from tests.cds_hooks.conftest import (
    BASE,
    FHIR,
    ORDER_SELECT,
    ORDER_SIGN,
    PATIENT_VIEW,
    FakeEhr,
    Keys,
    Service,
    chart,
    draft_orders,
    hook_request,
    ketamine_order,
    mint,
)
from tests.fhir.builders import RXNORM, coding, med_request

CARD_KEYS = {"uuid", "summary", "detail", "indicator", "source", "suggestions",
             "selectionBehavior", "overrideReasons", "links"}


def no_empty_values(value: Any, where: str = "card") -> None:
    """CDS Hooks: optional fields are left out, never sent null or empty."""
    assert value is not None, where
    if isinstance(value, str):
        assert value.strip(), where
    elif isinstance(value, list):
        assert value, where
        for i, v in enumerate(value):
            no_empty_values(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        assert value, where
        for k, v in value.items():
            no_empty_values(v, f"{where}.{k}")


def check_card(card: dict[str, Any]) -> None:
    """A card as CDS Hooks 2.0 defines it."""
    assert set(card) <= CARD_KEYS
    assert str(uuid.UUID(card["uuid"])) == card["uuid"]
    assert isinstance(card["summary"], str) and len(card["summary"]) < SUMMARY_LIMIT
    assert card["indicator"] in ("info", "warning", "critical")
    assert isinstance(card["detail"], str)
    assert isinstance(card["source"]["label"], str)
    assert card["source"].get("url", "https://").startswith(("https://", "http://"))
    for reason in card.get("overrideReasons", []):
        assert {"code", "system", "display"} <= set(reason)
    for link in card.get("links", []):
        assert link["type"] in ("absolute", "smart") and link["label"] and link["url"]
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for s in card["suggestions"]:
            assert s["label"]
            for action in s.get("actions", []):
                assert action["type"] in ("create", "update", "delete") and action["description"]
    no_empty_values(card)


def full_prefetch() -> dict[str, Any]:
    return chart()


def call(service: Service, keys: Keys, service_id: str, body: dict[str, Any]) -> Any:
    return service.call(service_id, body, mint(keys, aud=f"{BASE}/cds-services/{service_id}"))


# --------------------------------------------------------------------------------------------
# Discovery


def test_discovery_lists_three_services_with_prefetch_templates(service: Service) -> None:
    r = service.request("GET", "/cds-services")
    assert r.status_code == 200
    services = r.json()["services"]
    assert {s["hook"]: s["id"] for s in services} == {
        "patient-view": PATIENT_VIEW, "order-select": ORDER_SELECT, "order-sign": ORDER_SIGN}
    for s in services:
        assert set(s) <= {"hook", "title", "description", "id", "prefetch", "usageRequirements"}
        assert isinstance(s["description"], str) and s["description"]
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in s["prefetch"].items())
        assert s["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert set(s["prefetch"]) == set(PREFETCH)
        assert "85354-9" in s["prefetch"]["bloodPressure"]
        assert "82810-3" in s["prefetch"]["pregnancy"]
        assert "{questionnaire}" not in s["prefetch"]["questionnaireResponses"]


# --------------------------------------------------------------------------------------------
# patient-view


def test_patient_view_with_full_prefetch(service: Service, keys: Keys, ehr: FakeEhr) -> None:
    r = call(service, keys, PATIENT_VIEW, hook_request(prefetch=full_prefetch()))
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    check_card(card)
    assert card["indicator"] == "critical"  # the aneurysm: not recommended
    assert card["summary"].startswith("Ketamine screening: not recommended")
    assert "Condition/c2" in card["detail"]  # evidence points at the EHR's resource
    assert card["source"] == {"label": "ketascreen (knowledge base "
                              f"{service_kb_version(service)})", "url": f"{BASE}/rules"}
    assert card["links"][0]["url"].startswith(f"{BASE}/cds-services/reports/")
    assert {r["display"] for r in card["overrideReasons"]}
    assert not ehr.fhir_requests()  # everything was prefetched


def service_kb_version(service: Service) -> str:
    from ketascreen.services import load_knowledge_base

    return load_knowledge_base().version


def test_the_report_link_shows_the_full_report(service: Service, keys: Keys) -> None:
    r = call(service, keys, PATIENT_VIEW, hook_request(prefetch=full_prefetch()))
    link = r.json()["cards"][0]["links"][0]["url"]
    page = service.request("GET", link.removeprefix(BASE))
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["cache-control"] == "no-store"
    assert "cardio.aneurysm_avm" in page.text or "aneurysm" in page.text.lower()
    assert service.request("GET", "/cds-services/reports/not-a-token").status_code == 404


def test_missing_prefetch_keys_are_fetched_from_the_fhir_server(
        service: Service, keys: Keys, ehr: FakeEhr) -> None:
    partial = {k: v for k, v in full_prefetch().items() if k in ("patient", "allergies")}
    r = call(service, keys, PATIENT_VIEW, hook_request(prefetch=partial))
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    check_card(card)
    assert card["indicator"] == "critical"
    fetched = ehr.fhir_requests()
    assert len(fetched) == len(PREFETCH) - 2
    assert all(req.headers["authorization"] == "Bearer ehr-access-token-123" for req in fetched)
    urls = {str(req.url) for req in fetched}
    assert f"{FHIR}/Condition?patient=example" in urls
    assert not any("Patient/example" in u for u in urls)  # prefetched: not fetched again


def test_no_prefetch_at_all_fetches_everything(service: Service, keys: Keys,
                                               ehr: FakeEhr) -> None:
    r = call(service, keys, PATIENT_VIEW, hook_request())
    assert r.status_code == 200, r.text
    assert len(ehr.fhir_requests()) == len(PREFETCH)
    assert r.json()["cards"][0]["indicator"] == "critical"


def test_null_means_nothing_found_and_is_not_fetched(service: Service, keys: Keys,
                                                     ehr: FakeEhr) -> None:
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH)
    prefetch["patient"] = chart()["patient"]
    r = call(service, keys, PATIENT_VIEW, hook_request(prefetch=prefetch, with_server=False))
    assert r.status_code == 200, r.text
    assert not ehr.fhir_requests()
    detail = r.json()["cards"][0]["detail"]
    assert "none recorded" in detail  # no conditions or medicines on record: said so
    assert r.json()["cards"][0]["indicator"] == "warning"  # incomplete: answers missing


def test_neither_prefetched_nor_fetchable_is_412(service: Service, keys: Keys) -> None:
    partial = {"patient": chart()["patient"]}
    r = call(service, keys, PATIENT_VIEW, hook_request(prefetch=partial, with_server=False))
    assert r.status_code == 412
    assert "conditions" in r.json()["error"]["prefetch"]


@pytest.mark.parametrize(("status", "delay", "reason"), [
    (500, 0.0, "answered 500"), (200, 1.0, "did not answer in time")])
def test_a_failing_fhir_server_is_412(service: Service, keys: Keys, ehr: FakeEhr, status: int,
                                      delay: float, reason: str) -> None:
    ehr.fhir_status, ehr.delay = status, delay
    r = call(service, keys, PATIENT_VIEW, hook_request(prefetch={"patient": chart()["patient"]}))
    assert r.status_code == 412
    assert reason in r.json()["error"]["message"]


def test_a_fhir_server_not_allowed_is_not_fetched(make_service: Callable[..., Service],
                                                  keys: Keys, ehr: FakeEhr) -> None:
    service = make_service(fhir_servers=("https://other-ehr.example/fhir",))
    r = call(service, keys, PATIENT_VIEW, hook_request())
    assert r.status_code == 412 and not ehr.fhir_requests()


def test_an_unreadable_patient_gives_a_warning_card(service: Service, keys: Keys) -> None:
    prefetch = full_prefetch()
    prefetch["questionnaireResponses"] = {"resourceType": "QuestionnaireResponse",
                                          "id": "qr", "status": "completed",
                                          "questionnaire": "https://ketascreen.org/fhir/"
                                          "Questionnaire/ketascreen-self-screening",
                                          "item": [{"linkId": "about", "item": [
                                              {"linkId": "age", "answer": [
                                                  {"valueInteger": 500}]}]}]}
    r = call(service, keys, PATIENT_VIEW, hook_request(prefetch=prefetch))
    assert r.status_code == 200
    card = r.json()["cards"][0]
    check_card(card)  # the bad answer is reported on the card; the rest is still screened
    assert "QuestionnaireResponse/qr" in card["detail"]


def test_bad_requests_are_422_and_unknown_services_404(service: Service, keys: Keys) -> None:
    aud = f"{BASE}/cds-services/{PATIENT_VIEW}"
    r = service.call(PATIENT_VIEW, {"hook": "patient-view"}, mint(keys, aud=aud))
    assert r.status_code == 422
    assert {p["field"] for p in r.json()["error"]["problems"]} >= {"hookInstance", "context"}
    wrong = service.call(PATIENT_VIEW, hook_request("order-sign"), mint(keys, aud=aud))
    assert wrong.status_code == 422
    assert service.call("nope", hook_request(), mint(keys, aud=aud)).status_code == 404


# --------------------------------------------------------------------------------------------
# order-select and order-sign


def test_order_sign_with_ketamine_fetches_and_warns(service: Service, keys: Keys,
                                                    ehr: FakeEhr) -> None:
    body = hook_request("order-sign", draftOrders=draft_orders(ketamine_order()),
                        encounterId="enc-1")
    r = call(service, keys, ORDER_SIGN, body)
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    check_card(card)
    assert card["indicator"] == "critical"
    assert card["summary"].startswith("Ketamine order: not recommended")
    assert ehr.fhir_requests()  # nothing was prefetched: fetched
    assert card["suggestions"][0]["actions"] == [{
        "type": "delete", "description": "Remove the draft ketamine or esketamine order.",
        "resourceId": ["MedicationRequest/ket-1"]}]


def test_order_sign_without_ketamine_says_nothing(service: Service, keys: Keys,
                                                  ehr: FakeEhr) -> None:
    body = hook_request("order-sign", draftOrders=draft_orders(
        med_request("o1", "36437", "sertraline 50 MG Oral Tablet", status="draft")))
    r = call(service, keys, ORDER_SIGN, body)
    assert r.status_code == 200 and r.json() == {"cards": []}
    assert not ehr.fhir_requests()  # nothing to say: nothing fetched


@pytest.mark.parametrize("order", [
    ketamine_order(rxnorm=None, name="Ketalar 10 mg/mL injection"),
    ketamine_order(rxnorm="2107300", name="SPRAVATO 28 MG Nasal Spray", route=None),
    ketamine_order(rxnorm=None, name="esketamine 28 MG per actuation nasal spray", route=None),
], ids=["brand-name", "spravato", "esketamine-text"])
def test_ketamine_is_recognised_by_names_and_codes(service: Service, keys: Keys,
                                                   order: dict[str, Any]) -> None:
    body = hook_request("order-sign", prefetch=full_prefetch(),
                        draftOrders=draft_orders(order))
    r = call(service, keys, ORDER_SIGN, body)
    assert r.status_code == 200 and len(r.json()["cards"]) == 1


def test_the_order_route_is_assessed(service: Service, keys: Keys) -> None:
    prefetch = full_prefetch()
    prefetch["conditions"] = {"resourceType": "Bundle", "type": "searchset"}
    nasal = hook_request("order-sign", prefetch=prefetch, draftOrders=draft_orders(
        ketamine_order(rxnorm=None, name="Spravato 56 mg dose kit", route=None)))
    detail = call(service, keys, ORDER_SIGN, nasal).json()["cards"][0]["detail"]
    assert "(route intranasal)" in detail  # Spravato: the nasal route, from the product
    assert "most cautious route" not in detail


def test_an_order_with_no_route_shows_the_most_cautious_route(service: Service,
                                                              keys: Keys) -> None:
    body = hook_request("order-sign", prefetch=full_prefetch(), draftOrders=draft_orders(
        ketamine_order(route=None, name="ketamine hydrochloride 100 MG/ML")))
    card = call(service, keys, ORDER_SIGN, body).json()["cards"][0]
    assert "most cautious route" in card["detail"]


def test_order_select_looks_only_at_the_selected_orders(service: Service, keys: Keys) -> None:
    orders = draft_orders(ketamine_order("ket-1"), med_request("o2", "36437", "sertraline",
                                                               status="draft"))
    unselected = hook_request("order-select", prefetch=full_prefetch(), draftOrders=orders,
                              selections=["MedicationRequest/o2"])
    assert call(service, keys, ORDER_SELECT, unselected).json() == {"cards": []}
    selected = hook_request("order-select", prefetch=full_prefetch(), draftOrders=orders,
                            selections=["MedicationRequest/ket-1"])
    card = call(service, keys, ORDER_SELECT, selected).json()["cards"][0]
    check_card(card)
    assert "suggestions" not in card  # suggestions only at signing
    assert "sertraline" in card["detail"]  # the other draft order counts as a medicine


def test_other_draft_orders_count_as_medicines(service: Service, keys: Keys) -> None:
    maoi = med_request("o3", "30121", "phenelzine 15 MG Oral Tablet", status="draft")
    maoi["medicationCodeableConcept"]["coding"] = [coding(RXNORM, "30121", "phenelzine")]
    body = hook_request("order-sign", prefetch=full_prefetch(),
                        draftOrders=draft_orders(ketamine_order(), maoi))
    card = call(service, keys, ORDER_SIGN, body).json()["cards"][0]
    assert "Counted as current medicines (draft orders): phenelzine" in card["detail"]
    assert "phenelzine" in card["detail"].split("**Findings:**")[-1]


def test_the_rules_catalogue_is_served_with_an_anchor_per_rule(
        make_service: Callable[..., Service], keys: Keys) -> None:
    service = make_service(rules_url=None)
    card = call(service, keys, PATIENT_VIEW, hook_request(prefetch=full_prefetch())
                ).json()["cards"][0]
    assert card["source"]["url"] == f"{BASE}/cds-services/rules"
    page = service.request("GET", "/cds-services/rules")
    assert page.status_code == 200
    assert '<section id="cardioaneurysm_avm">' in page.text
    assert "<script" not in page.text


def test_a_patient_prefetched_as_a_search_bundle_is_read(service: Service, keys: Keys) -> None:
    prefetch = full_prefetch()
    prefetch["patient"] = {"resourceType": "Bundle", "type": "searchset",
                           "entry": [{"resource": prefetch["patient"]}]}
    r = call(service, keys, PATIENT_VIEW, hook_request(prefetch=prefetch))
    assert r.status_code == 200 and r.json()["cards"][0]["indicator"] == "critical"


def test_every_cds_setting_is_documented() -> None:
    from pathlib import Path

    from ketascreen.cds_hooks.settings import CDS_SETTINGS_DOC

    doc = (Path(__file__).resolve().parents[2] / "docs" / "integration.md").read_text("utf-8")
    for name in CDS_SETTINGS_DOC:
        assert f"`{name}`" in doc, name
