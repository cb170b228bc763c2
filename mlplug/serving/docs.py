"""The API page ``/docs`` (Swagger UI), with its script, style sheet and icon served by the
server itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so in an air-gapped cluster they
stay blank. The files come from the ``fastapi-offline`` distribution (Swagger UI 5, which
reads the OpenAPI 3.1 documents FastAPI writes) and are served under :data:`ASSETS`; the page
references nothing outside the server (no validator badge either). ReDoc is not offered: its
bundle fetches the Redocly logo from the vendor's CDN whatever the page says.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS = "/docs"
#: Where the page assets are served: ``swagger-ui-bundle.js``, ``swagger-ui.css`` and
#: ``favicon.png``.
ASSETS = "/docs-assets"
#: Swagger UI settings on top of FastAPI's: no validator badge (an image fetched from
#: swagger.io). Auth is by API key, so there is no OAuth2 redirect page either.
SWAGGER_PARAMETERS = {"validatorUrl": None}


def assets_dir() -> Path:
    return Path(str(files("fastapi_offline").joinpath("static")))


def add_docs(app: FastAPI) -> None:
    """Add ``/docs`` and its assets to ``app`` (created with ``docs_url=None, redoc_url=None``).
    URLs honour the ASGI ``root_path`` of a server behind a path prefix."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )
