"""The console's static files on the REST port: types, security headers, no token, no escape."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from orion.api.http import HttpApi
from orion.console import CONTENT_SECURITY_POLICY
from orion.security.keys import TokenSet
from tests.api.memory_node import MemoryNode


@pytest.fixture
def http(node: MemoryNode) -> Iterator[HttpApi]:
    server = HttpApi("127.0.0.1", 0, node, timeout=5.0, tokens=TokenSet(["s3cret"]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(http: HttpApi, path: str) -> tuple[int, dict[str, str], bytes]:
    url = f"http://127.0.0.1:{http.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/ui", "text/html; charset=utf-8", b"<title>Orion console</title>"),
        ("/ui/", "text/html; charset=utf-8", b"<title>Orion console</title>"),
        ("/ui/index.html", "text/html; charset=utf-8", b'src="/ui/console.js"'),
        ("/ui/console.js", "text/javascript; charset=utf-8", b"sessionStorage"),
        ("/ui/console.css", "text/css; charset=utf-8", b".bar"),
    ],
)
def test_console_files_need_no_token_and_carry_a_strict_policy(
    http: HttpApi, path: str, content_type: str, marker: bytes
) -> None:
    status, headers, body = get(http, path)
    assert status == 200
    assert headers["Content-Type"] == content_type
    assert marker in body
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_the_api_behind_the_console_still_needs_the_token(http: HttpApi) -> None:
    assert get(http, "/raft")[0] == 401
    request = urllib.request.Request(
        f"http://127.0.0.1:{http.port}/raft", headers={"Authorization": "Bearer s3cret"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    "path", ["/ui/nope.js", "/ui/../pyproject.toml", "/ui/%2e%2e/__init__.py", "/ui/static/console.js"]
)
def test_only_shipped_files_are_served(http: HttpApi, path: str) -> None:
    status, headers, _ = get(http, path)
    assert status == 404 and headers["Content-Type"] == "application/json"


def test_the_page_has_no_inline_script_or_style() -> None:
    from importlib import resources

    page = resources.files("orion.console").joinpath("static/index.html").read_text()
    assert "<script>" not in page and "style=" not in page and "<style" not in page
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere
