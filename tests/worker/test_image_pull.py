"""The pull's progress stream and engine address, without an engine (orion/worker/image_pull.py)."""

from __future__ import annotations

import json

import docker
import pytest

from orion.worker.image_pull import (
    EngineAddress,
    PullOutcome,
    PullProgress,
    PullResult,
    engine_address,
    error_answer,
    pull_image,
)

# As dockerd 20.10 writes them: one JSON object per line, "\r\n" after each.
GOOD_PULL = (
    b'{"status":"Pulling from orion/web","id":"latest"}\r\n'
    b'{"status":"Pulling fs layer","progressDetail":{},"id":"4f4fb700ef54"}\r\n'
    b'{"status":"Downloading","progressDetail":{"current":512,"total":1024},'
    b'"progress":"[=====>     ]     512B/1.024kB","id":"4f4fb700ef54"}\r\n'
    b'{"status":"Pull complete","progressDetail":{},"id":"4f4fb700ef54"}\r\n'
    b'{"status":"Digest: sha256:0d3b"}\r\n'
    b'{"status":"Status: Downloaded newer image for 127.0.0.1:5000/orion/web:latest"}\r\n'
)
FAILED_AFTER_200 = (
    b'{"status":"Pulling from orion/web","id":"latest"}\r\n'
    b'{"status":"Pulling fs layer","progressDetail":{},"id":"4f4fb700ef54"}\r\n'
    b'{"errorDetail":{"message":"unknown blob"},"error":"unknown blob"}\r\n'
)


def read(stream: bytes, piece: int) -> PullResult:
    progress = PullProgress()
    for start in range(0, len(stream), piece):
        progress.feed(stream[start : start + piece])
    return progress.end()


@pytest.mark.parametrize("piece", [1, 7, 64, 1 << 20])
def test_a_good_pull_is_pulled_whatever_pieces_it_arrives_in(piece: int) -> None:
    result = read(GOOD_PULL, piece)
    assert result == PullResult(
        PullOutcome.PULLED, "Status: Downloaded newer image for 127.0.0.1:5000/orion/web:latest"
    )


@pytest.mark.parametrize("piece", [1, 5, 1 << 20])
def test_an_error_detail_after_200_is_a_failure_with_its_message(piece: int) -> None:
    assert read(FAILED_AFTER_200, piece) == PullResult(PullOutcome.FAILED, "unknown blob")


def test_the_error_detail_message_wins_and_the_first_error_is_kept() -> None:
    stream = (
        b'{"errorDetail":{"message":"manifest for x:1 not found: manifest unknown"},"error":"short"}\n'
        b'{"error":"a later error"}\n'
    )
    assert read(stream, 1 << 20) == PullResult(
        PullOutcome.FAILED, "manifest for x:1 not found: manifest unknown"
    )


def test_an_error_without_error_detail_still_fails() -> None:
    assert read(b'{"error":"toomanyrequests: rate limit"}\n', 1 << 20) == PullResult(
        PullOutcome.FAILED, "toomanyrequests: rate limit"
    )


def test_a_last_line_without_newline_is_read() -> None:
    assert read(b'{"status":"ok"}\n{"errorDetail":{"message":"denied"}}', 3).outcome is PullOutcome.FAILED


@pytest.mark.parametrize("line", [b"<html>proxy error</html>", b"[1, 2]", b'{"status": "cut'])
def test_an_unreadable_line_is_a_failure_that_quotes_it(line: bytes) -> None:
    result = read(line + b"\n", 1 << 20)
    assert result.outcome is PullOutcome.FAILED
    assert result.message.startswith("unreadable progress line from the Docker engine: ")
    assert line.decode()[:10] in result.message


def test_an_empty_stream_without_error_is_pulled() -> None:
    assert read(b"\r\n", 1).outcome is PullOutcome.PULLED


def test_a_non_200_answer_gives_the_engine_message() -> None:
    body = json.dumps({"message": "pull access denied for x, repository does not exist"}).encode()
    assert error_answer(404, body) == "pull access denied for x, repository does not exist"
    assert error_answer(502, b"Bad Gateway") == "the Docker engine answered 502: Bad Gateway"
    assert error_answer(500, b"") == "the Docker engine answered 500"


def test_the_engine_address_follows_the_client() -> None:
    unix = docker.APIClient(base_url="unix:///run/orion-test/docker.sock", version="1.41")
    assert engine_address(unix) == EngineAddress(socket_path="/run/orion-test/docker.sock")
    tcp = docker.APIClient(base_url="tcp://127.0.0.1:2375", version="1.41")
    assert engine_address(tcp) == EngineAddress(host="127.0.0.1", port=2375)
    tls = docker.APIClient(base_url="tcp://127.0.0.1:2376", version="1.41", tls=True)
    address = engine_address(tls)
    assert (address.host, address.port, address.tls is not None) == ("127.0.0.1", 2376, True)


def test_a_zero_timeout_starts_no_pull() -> None:
    # No engine at this address: a pull that tried to connect would fail, not time out.
    client = docker.APIClient(base_url="unix:///nonexistent/orion-test.sock", version="1.41")
    result = pull_image(client, "orion-busybox:latest", 0)
    assert result == PullResult(PullOutcome.TIMED_OUT, "no result within 0 s; no pull was started")


def test_an_engine_that_is_not_there_is_a_failure_naming_the_connection() -> None:
    client = docker.APIClient(base_url="unix:///nonexistent/orion-test.sock", version="1.41")
    result = pull_image(client, "orion-busybox:latest", 5.0)
    assert result.outcome is PullOutcome.FAILED
    assert result.message.startswith("connection to the Docker engine: "), result.message
