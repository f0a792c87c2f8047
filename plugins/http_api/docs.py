"""``/docs``: interactive API documentation (Swagger UI) served by the API itself, no CDN.

The Swagger UI assets come from the ``swagger-ui-py`` package (the
``docs`` extra), read from its folder and served from ``/docs/...``; the
page loads ``openapi.json`` by a relative URL, so it also works behind a
path prefix (an API Gateway stage). No inline script: the start-up code is
``/docs/init.js``, and a Content-Security-Policy keeps every fetch on this
origin. Without the extra, ``/docs`` says which one to install.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>FlowMason API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/init.js"></script>
</body>
</html>
"""
_INIT = """window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true});\n"""
_ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript"}
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'")


def _static() -> Path | None:
    try:
        import swagger_ui
    except ImportError:
        return None
    folder = Path(swagger_ui.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def docs_routes() -> list[Any]:
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route

    from .app import error_response

    headers = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"}

    async def page(request: Any) -> Any:
        if _static() is None:
            return error_response(404, "not_found", "the interactive docs need the docs extra (swagger-ui-py)",
                                  hint="pip install 'flowmason[docs]'; /openapi.json is served either way")
        return HTMLResponse(_PAGE, headers=headers)

    async def asset(request: Any) -> Any:
        name = request.path_params["name"]
        folder = _static()
        if name == "init.js":
            return Response(_INIT, media_type="text/javascript", headers=headers)
        if folder is None or name not in _ASSETS:
            return error_response(404, "not_found", "no such docs asset", hint="open /docs")
        return Response((folder / name).read_bytes(), media_type=_ASSETS[name],
                        headers={**headers, "Cache-Control": "public, max-age=86400"})

    return [Route("/docs", page, methods=["GET"], name="docs"),
            Route("/docs/{name}", asset, methods=["GET"], name="docs_asset")]
