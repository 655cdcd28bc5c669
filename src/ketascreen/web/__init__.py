"""The web application: patient self-screening, the clinician workspace and the REST API (FastAPI).

``ketascreen.web.app.create_app(settings)`` builds the application from a
:class:`~ketascreen.web.settings.WebSettings`; ``ketascreen serve`` runs it. See docs/web.md.
Nothing is imported or built here, so importing the package stays cheap.
"""
