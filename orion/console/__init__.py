"""The web console: static HTML, CSS and JavaScript served by the REST mirror at ``/ui``.

The files in ``static/`` are the whole console (no build step, nothing fetched from elsewhere);
the page reads the REST API with the token the user pastes, kept in the tab's sessionStorage.
They are public (they hold no cluster data), so ``/ui`` needs no token; every API call the page
makes does.

Answers carry a strict Content-Security-Policy: scripts, styles and connections from this
origin only, no inline script or style, no frames, forms post nowhere. So a task name holding
markup can at worst show as text (the page builds its DOM with textContent, never innerHTML).
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

PREFIX = "/ui"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",  # revalidate, so an upgraded node serves its own console at once
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


class StaticFile(NamedTuple):
    content_type: str
    body: bytes


def is_console_path(path: str) -> bool:
    """``path`` without its query and trailing slash."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def _load() -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    for entry in resources.files(__name__).joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = StaticFile(CONTENT_TYPES[suffix], entry.read_bytes())
    return files


_FILES = _load()  # a few kilobytes, read once: requests never touch the file system


def console_file(path: str) -> StaticFile | None:
    """The file a console path names (``/ui`` is the page itself); None if there is none.
    Only the shipped files are served, looked up by name, so no path can reach elsewhere."""
    name = path[len(PREFIX) :].lstrip("/") or "index.html"
    return _FILES.get(name)
