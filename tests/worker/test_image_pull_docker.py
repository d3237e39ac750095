"""Pulls through the worker from a registry of the test's own on 127.0.0.1, with the real engine.

dockerd treats registries on 127.0.0.0/8 as insecure, so the registry here speaks plain HTTP:
just enough of the Registry v2 API (``/v2/``, manifests, blobs) for a pull. One of its blobs
never ends (a few bytes at a time, forever), which is what a pull that times out looks like;
the registry counts the connections it is streaming that blob on, so a test can see whether
dockerd really stopped downloading after Orion gave up.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker
import docker.errors
import pytest

from orion.worker import DockerWorker, WorkerError

pytestmark = pytest.mark.docker

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
TRICKLE_SIZE = 64 * 1024**2  # announced size of the endless blob: far more than it ever sends
TRICKLE_PIECE = b"\x00" * 16
TRICKLE_PACE = 0.05  # seconds between pieces
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeRegistry:
    """Manifests by "name:reference", blobs by digest; ``endless`` blobs trickle forever."""

    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    endless: set[str] = field(default_factory=set)
    streams_started: int = 0
    streams_open: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)
    stopping: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def add_image(self, name: str, tag: str, config: bytes, layers: list[tuple[str, int]]) -> None:
        """``layers``: (digest, size) of blobs already added (or endless)."""
        self.blobs[digest_of(config)] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": digest_of(config)},
                "layers": [
                    {"mediaType": LAYER_TYPE, "size": size, "digest": digest} for digest, size in layers
                ],
            }
        ).encode()
        self.manifests[f"{name}:{tag}"] = manifest
        self.manifests[f"{name}:{digest_of(manifest)}"] = manifest

    def wait_streams(self, started: int, open_at_most: int, timeout: float) -> bool:
        """True once at least ``started`` endless streams began and at most ``open_at_most`` run."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not (self.streams_started >= started and self.streams_open <= open_at_most):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def _stream_opened(self) -> None:
        with self.changed:
            self.streams_started += 1
            self.streams_open += 1
            self.changed.notify_all()

    def _stream_closed(self) -> None:
        with self.changed:
            self.streams_open -= 1
            self.changed.notify_all()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # dockerd's requests are the test's business, not stderr's

            def do_HEAD(self) -> None:
                self._answer(with_body=False)

            def do_GET(self) -> None:
                self._answer(with_body=True)

            def _answer(self, with_body: bool) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/v2/" or path == "/v2":
                    self._send(200, "application/json", b"{}", with_body)
                    return
                manifest = _MANIFEST.match(path)
                if manifest:
                    body = registry.manifests.get(f"{manifest['name']}:{manifest['reference']}")
                    if body is None:
                        self._unknown("MANIFEST_UNKNOWN", "manifest unknown", with_body)
                    else:
                        self._send(200, MANIFEST_TYPE, body, with_body, digest=digest_of(body))
                    return
                blob = _BLOB.match(path)
                if blob and blob["digest"] in registry.endless:
                    self._trickle(blob["digest"], with_body)
                elif blob and blob["digest"] in registry.blobs:
                    body = registry.blobs[blob["digest"]]
                    self._send(200, "application/octet-stream", body, with_body, digest=blob["digest"])
                else:
                    self._unknown("BLOB_UNKNOWN", "blob unknown to registry", with_body)

            def _send(self, status: int, kind: str, body: bytes, with_body: bool, digest: str = "") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def _unknown(self, code: str, message: str, with_body: bool) -> None:
                body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
                self._send(404, "application/json", body, with_body)

            def _trickle(self, digest: str, with_body: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(TRICKLE_SIZE))
                self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if not with_body:
                    return
                registry._stream_opened()
                try:
                    # Until dockerd hangs up (a write then fails) or the test ends.
                    while not registry.stopping.wait(TRICKLE_PACE):
                        self.wfile.write(TRICKLE_PIECE)
                        self.wfile.flush()
                except OSError:
                    pass
                finally:
                    registry._stream_closed()
                    self.close_connection = True

        return Handler


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    server.daemon_threads = True
    fake.port = server.server_address[1]
    serving = threading.Thread(target=server.serve_forever, name="fake registry", daemon=True)
    serving.start()
    try:
        yield fake
    finally:
        fake.stopping.set()  # ends every trickle, so a pull still running fails and lets go
        server.shutdown()
        server.server_close()
        serving.join(timeout=10)


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    engine = docker.from_env()
    engine.ping()  # Docker must answer: this test fails rather than skips
    yield engine
    engine.close()


@pytest.fixture
def worker(client: docker.DockerClient) -> DockerWorker:
    return DockerWorker(f"test-{uuid.uuid4().hex[:10]}", pull_timeout=20.0, client=client, cluster_id="c0")


@pytest.fixture
def image_name(client: docker.DockerClient, registry: FakeRegistry) -> Iterator[str]:
    """A reference into the fake registry (a fresh port, so never present before), removed after."""
    name = f"127.0.0.1:{registry.port}/orion-test-{uuid.uuid4().hex[:8]}:latest"
    yield name
    try:
        client.images.remove(name, force=True)
    except docker.errors.ImageNotFound:
        pass


def image_config(client: docker.DockerClient, diff_ids: list[str]) -> bytes:
    return json.dumps(
        {
            "architecture": client.version()["Arch"],
            "os": "linux",
            "config": {"Cmd": ["/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()


def one_file_layer() -> tuple[bytes, str]:
    """(gzipped tar, digest of the tar): one file, hello.txt."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        content = b"hello from the fake registry\n"
        entry = tarfile.TarInfo("hello.txt")
        entry.size = len(content)
        tar.addfile(entry, io.BytesIO(content))
    return gzip.compress(tar_bytes.getvalue()), digest_of(tar_bytes.getvalue())


def repository_of(image: str) -> tuple[str, str]:
    """ "127.0.0.1:PORT/name:tag" -> ("name", "tag"), as the registry sees them."""
    path = image.split("/", 1)[1]
    name, tag = path.rsplit(":", 1)
    return name, tag


@pytest.mark.timeout(120)
def test_a_timed_out_pull_is_cancelled_in_the_engine(
    worker: DockerWorker, client: docker.DockerClient, registry: FakeRegistry, image_name: str
) -> None:
    endless = digest_of(uuid.uuid4().bytes)
    registry.endless.add(endless)
    name, tag = repository_of(image_name)
    registry.add_image(name, tag, image_config(client, [digest_of(b"never")]), [(endless, TRICKLE_SIZE)])
    # Long enough for dockerd to reach the blob on a loaded machine; the blob never ends anyway.
    worker.pull_timeout = 8.0
    with pytest.raises(WorkerError) as caught:
        worker.ensure_image(image_name)
    assert str(caught.value).startswith(f"cannot pull image {image_name}: no result within 8 s")
    assert registry.streams_started >= 1, "dockerd never asked for the layer: the test proved nothing"
    # The pull really stopped: dockerd hung up on the registry (before the fix it never does).
    assert registry.wait_streams(started=1, open_at_most=0, timeout=20.0), (
        f"dockerd still downloads the layer on {registry.streams_open} connection(s) after the timeout"
    )
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(image_name)


@pytest.mark.timeout(120)
def test_a_pull_from_the_registry_gives_the_image(
    worker: DockerWorker, client: docker.DockerClient, registry: FakeRegistry, image_name: str
) -> None:
    layer, diff_id = one_file_layer()
    registry.blobs[digest_of(layer)] = layer
    name, tag = repository_of(image_name)
    registry.add_image(name, tag, image_config(client, [diff_id]), [(digest_of(layer), len(layer))])
    worker.ensure_image(image_name)
    assert client.images.get(image_name).attrs["RootFS"]["Layers"] == [diff_id]


@pytest.mark.timeout(120)
def test_a_layer_the_registry_lacks_fails_with_its_message(
    worker: DockerWorker, client: docker.DockerClient, registry: FakeRegistry, image_name: str
) -> None:
    # dockerd has answered 200 by the time it asks for the layer: the failure is in the stream.
    missing = digest_of(b"not in the registry")
    name, tag = repository_of(image_name)
    registry.add_image(name, tag, image_config(client, [missing]), [(missing, 100)])
    with pytest.raises(WorkerError) as caught:
        worker.ensure_image(image_name)
    message = str(caught.value)
    assert message.startswith(f"cannot pull image {image_name}: "), message
    assert "unknown blob" in message or "blob unknown" in message, message


@pytest.mark.timeout(120)
def test_a_manifest_the_registry_lacks_fails_with_its_message(
    worker: DockerWorker, registry: FakeRegistry, image_name: str
) -> None:
    with pytest.raises(WorkerError) as caught:
        worker.ensure_image(image_name)
    message = str(caught.value)
    assert message.startswith(f"cannot pull image {image_name}: "), message
    assert "manifest unknown" in message, message
