"""The browser-facing channels' own files (widget script, kiosk page), served by the channel.

Mainland networks block Google's fonts and the public CDNs, so every asset a page needs is in
``bot/static/`` and served from the assistant's own address. Only files in the allowed set
are served, by name: a request can never reach outside the folder.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from sanic import response
from sanic.response import HTTPResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".json": "application/json; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png", ".woff2": "font/woff2"}


def asset(folder: str, name: str, *, cache_seconds: int = 300) -> HTTPResponse:
    """``bot/static/<folder>/<name>`` with its content type, or a 404 for anything else."""
    base = (STATIC / folder).resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file() or name.startswith("."):
        return response.json({"error": "没有这个文件 (no such file)"}, status=404)
    content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return response.raw(path.read_bytes(), content_type=content_type,
                        headers={"Cache-Control": f"public, max-age={cache_seconds}",
                                 "X-Content-Type-Options": "nosniff"})
