"""Bad service specs get clear errors from `orion service ...` against a real node: the exit
code says what kind of mistake it was (2: usage or invalid request, 1: refused by the cluster,
4: no such service) and the message names the field or the conflict. Nothing is created.
"""

from __future__ import annotations

import pytest

from tests.integration.services_support import V1, orion, published_port

pytestmark = [pytest.mark.cluster]

EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND = 1, 2, 4


@pytest.fixture
def cluster(make_cluster):
    return make_cluster(1)


def refused(cluster, *args: str, code: int, words: tuple[str, ...]) -> str:
    result = orion(cluster, *args, check=False)
    message = (result.stderr + result.stdout).strip()
    assert result.returncode == code, f"orion {' '.join(args)} exited {result.returncode}: {message}"
    for word in words:
        assert word in message, f"{word!r} not in the message of orion {' '.join(args)}: {message}"
    assert "Traceback" not in message, message
    return message


# Each bad flag value and a word its message must contain (the flag, or the value it refused).
BAD_FLAGS: list[tuple[list[str], tuple[str, ...]]] = [
    (["--update-order", "sideways"], ("update-order", "sideways")),
    (["--update-failure-action", "explode"], ("update-failure-action", "explode")),
    (["--replicas", "-1"], ("replicas",)),
    (["--replicas", "many"], ("replicas",)),
    (["-p", "eighty:80/tcp"], ("eighty",)),
    (["-p", "8080:80/udp"], ("udp",)),
    (["--health-http", "http:/health"], ("health-http",)),
    (["--health-interval", "soon"], ("health-interval",)),
    (["--update-parallelism", "-2"], ("parallelism",)),
    (["--memory", "lots"], ("memory",)),
]


def test_bad_flag_values_are_usage_errors(cluster):
    # One cluster for every case (a node takes seconds to start); each case names itself on failure.
    for flags, words in BAD_FLAGS:
        refused(cluster, "service", "create", "web", V1, *flags, code=EXIT_USAGE, words=words)
    refused(cluster, "service", "inspect", "web", code=EXIT_NOT_FOUND, words=("web",))


def test_bad_names_and_negative_scale(cluster):
    refused(cluster, "service", "create", "Bad_Name!", V1, code=EXIT_USAGE, words=("name",))
    orion(cluster, "service", "create", "web", V1, "--replicas", "0")
    refused(cluster, "service", "scale", "web", "-1", code=EXIT_USAGE, words=("replicas",))
    refused(cluster, "service", "scale", "nothing", "2", code=EXIT_NOT_FOUND, words=("nothing",))
    refused(cluster, "service", "rollback", "web", code=EXIT_USAGE, words=("previous",))


def test_a_port_published_by_another_service_is_refused(cluster):
    port = published_port(cluster)
    orion(cluster, "service", "create", "one", V1, "--replicas", "0", "-p", f"{port}:80/tcp")
    message = refused(
        cluster, "service", "create", "two", V1, "--replicas", "0", "-p", f"{port}:80/tcp",
        code=EXIT_REFUSED, words=(str(port), "one"),
    )  # fmt: skip
    assert "two" not in orion(cluster, "service", "ls").stdout, message
    orion(cluster, "service", "create", "two", V1, "--replicas", "0")
    refused(
        cluster,
        "service",
        "update",
        "two",
        "-p",
        f"{port}:80/tcp",
        code=EXIT_REFUSED,
        words=(str(port), "one"),
    )
    refused(cluster, "service", "create", "one", V1, "--replicas", "0", code=EXIT_REFUSED, words=("one",))
