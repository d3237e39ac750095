"""TrafficLoop against a real HTTP server in this process: it counts answers by body, sees
the body change, and counts refused connections and non-200 answers as failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orion.testing.localcluster import wait_for
from orion.testing.traffic import TrafficLoop


class Site:
    body = "v1"
    status = 200


def serve(site: Site) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = f"{site.body}\n".encode()
            self.send_response(site.status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def site() -> Iterator[tuple[Site, ThreadingHTTPServer]]:
    state = Site()
    server = serve(state)
    yield state, server
    server.shutdown()
    server.server_close()


def test_counts_bodies_and_sees_the_change(site: tuple[Site, ThreadingHTTPServer]) -> None:
    state, server = site
    with TrafficLoop([server.server_address[:2]]) as traffic:
        traffic.wait_for_content("v1", timeout=10)
        state.body = "v2"
        traffic.wait_for_content("v2", timeout=10, settle=5)
    assert traffic.failed == 0, traffic.describe()
    assert [body for _, body in traffic.changes] == ["v1", "v2"]
    assert traffic.seen["v2"] >= 5 and traffic.last_body == "v2"


def test_bad_status_and_refused_connections_are_failures(site: tuple[Site, ThreadingHTTPServer]) -> None:
    state, server = site
    host, port = server.server_address[:2]
    state.status = 500
    with TrafficLoop([(host, port)], timeout=1.0) as traffic:
        wait_for(lambda: traffic.failed >= 3, 10, what="three answers with status 500")
        server.shutdown()
        server.server_close()  # nothing listens on the port now: connections are refused
        before = traffic.failed
        wait_for(lambda: traffic.failed >= before + 3, 10, what="three refused connections")
    assert traffic.ok == 0
    assert any("status 500" in f.error for f in traffic.failures), traffic.describe()
    assert any("ConnectionRefused" in f.error for f in traffic.failures), traffic.describe()
