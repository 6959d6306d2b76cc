"""The web layer: FastAPI for the JSON API and Jinja2 + htmx pages. Thin: it parses,
authenticates, calls a domain service, and renders."""
