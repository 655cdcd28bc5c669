"""CDS Hooks 2.0 service: discovery, patient-view, order-select and order-sign cards, feedback.

``service.create_router(settings)`` is the FastAPI router (mounted by the web application);
``security`` verifies the EHR's JWT; ``record`` resolves prefetch and fetches what is missing;
``orders`` recognises ketamine and esketamine orders; ``cards`` writes the cards; ``storage``
holds feedback (injected) and issued cards; ``settings`` reads ``KETASCREEN_CDS_*``. The
integrator's walkthrough is docs/integration.md.
"""
