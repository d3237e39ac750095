"""orion/metrics_text.py against prometheus_client (a test dependency only): the same metrics,
given the same values, must be written the same way, and its parser must read them back."""

from __future__ import annotations

import math
import re
import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from orion.metrics_text import Counter, Gauge, GaugeFamily, Histogram, Registry, go_float

BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)
AWKWARD = 'a "quoted" back\\slash\nnew line, ünïcode'
_CREATED = re.compile(r"^(\w+_created(?:\{[^}]*\})?) \S+$", re.MULTILINE)


def _mask_created(text: str) -> str:
    """``_created`` samples hold each metric's start time, which differs between the two."""
    return _CREATED.sub(r"\1 T", text)


class _Source(Collector):
    def collect(self):  # type: ignore[no-untyped-def]
        single = GaugeMetricFamily("x_term", "Current term", value=7)
        labelled = GaugeMetricFamily("x_tasks", "Tasks, by state", labels=["state"])
        labelled.add_metric(["Running"], 3)
        labelled.add_metric([AWKWARD], 1.5)
        return [single, labelled]


def _ours_source() -> list[GaugeFamily]:
    labelled = GaugeFamily("x_tasks", "Tasks, by state", ["state"])
    labelled.add(["Running"], 3)
    labelled.add([AWKWARD], 1.5)
    return [GaugeFamily("x_term", "Current term", value=7), labelled]


def _fill(counter, labelled_counter, gauge, histogram, labelled_histogram) -> None:  # type: ignore[no-untyped-def]
    counter.inc()
    counter.inc(2.5)
    labelled_counter.labels("GetTask", "not_found").inc()
    labelled_counter.labels("ListNodes", "ok").inc(3)
    labelled_counter.labels(AWKWARD, "ok").inc()
    gauge.labels("taken").set(123456789)
    gauge.labels("installed").set(0.5)
    for value in (0.0005, 0.001, 0.002, 0.5, 3.0, 11.0, 1e9):
        histogram.observe(value)
    labelled_histogram.labels("ok").observe(0.02)
    labelled_histogram.labels("error").observe(20.0)


def test_the_text_is_prometheus_clients_own() -> None:
    theirs = CollectorRegistry()
    _fill(
        PromCounter("x_leader_changes", "New leaders\nseen \\ here", registry=theirs),
        PromCounter("x_requests", "Requests", ["request", "code"], registry=theirs),
        PromGauge("x_snapshot_bytes", "Size", ["kind"], registry=theirs),
        PromHistogram("x_seconds", "Latency", buckets=BUCKETS, registry=theirs),
        PromHistogram("x_proposal_seconds", "By outcome", ["outcome"], buckets=BUCKETS, registry=theirs),
    )
    PromCounter("x_unused", "Labelled, never counted", ["kind"], registry=theirs)
    theirs.register(_Source())

    ours = Registry()
    _fill(
        Counter("x_leader_changes", "New leaders\nseen \\ here", registry=ours),
        Counter("x_requests", "Requests", ["request", "code"], registry=ours),
        Gauge("x_snapshot_bytes", "Size", ["kind"], registry=ours),
        Histogram("x_seconds", "Latency", buckets=BUCKETS, registry=ours),
        Histogram("x_proposal_seconds", "By outcome", ["outcome"], buckets=BUCKETS, registry=ours),
    )
    Counter("x_unused", "Labelled, never counted", ["kind"], registry=ours)
    ours.add_source(_ours_source)

    expected = generate_latest(theirs).decode()
    written = ours.text().decode()
    assert _mask_created(written) == _mask_created(expected)
    families = {f.name: f for f in text_string_to_metric_families(written)}
    requests = {tuple(sorted(s.labels.items())): s.value for s in families["x_requests"].samples}
    assert requests[(("code", "ok"), ("request", AWKWARD))] == 1.0  # escaped and read back intact
    inf_bucket = [s for s in families["x_seconds"].samples if s.labels.get("le") == "+Inf"]
    assert inf_bucket[0].value == 7.0


@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1.0, 0.001, 2.5, 123456.0, 1234567.0, 1e9, 1.5e300, -3e12, 1e-7, math.inf, -math.inf]
)
def test_numbers_in_go_notation(value: float) -> None:
    assert go_float(value) == floatToGoString(value)
    assert go_float(math.nan) == "NaN"


def test_counts_from_many_threads_add_up() -> None:
    registry = Registry()
    counter = Counter("x_hits", "Hits", ["kind"], registry=registry)
    histogram = Histogram("x_wait", "Waits", buckets=BUCKETS, registry=registry)

    def hit() -> None:
        for _ in range(2000):
            counter.labels("a").inc()
            histogram.observe(0.05)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(registry.text().decode())
        for s in family.samples
    }
    assert samples[("x_hits_total", (("kind", "a"),))] == 8000
    assert samples[("x_wait_count", ())] == 8000
    assert samples[("x_wait_bucket", (("le", "0.01"),))] == 0
    assert samples[("x_wait_bucket", (("le", "0.1"),))] == 8000


def test_bad_definitions_and_uses_name_the_metric() -> None:
    registry = Registry()
    Counter("x_one", "One", registry=registry)
    with pytest.raises(ValueError, match="x_one is already"):
        Gauge("x_one", "Again", registry=registry)
    with pytest.raises(ValueError, match="metric name '1x'"):
        Counter("1x", "Bad name")
    with pytest.raises(ValueError, match="label name '__x'"):
        Gauge("x_g", "Bad label", ["__x"])
    with pytest.raises(ValueError, match="'le' is reserved"):
        Histogram("x_h", "Bad label", ["le"], buckets=BUCKETS)
    with pytest.raises(ValueError, match="increasing order"):
        Histogram("x_h", "Bad buckets", buckets=(1.0, 0.5))
    labelled = Counter("x_two", "Two", ["kind"])
    with pytest.raises(ValueError, match=r"x_two: expected 1 label values \['kind'\]"):
        labelled.labels("a", "b")
    with pytest.raises(ValueError, match="only goes up"):
        labelled.labels("a").inc(-1)


def test_a_handle_given_again_counts_with_the_one_given_first() -> None:
    registry = Registry()
    counter = Counter("x_calls", "Calls", ["request", "code"], registry=registry)
    histogram = Histogram("x_took", "Took", ["request"], buckets=BUCKETS, registry=registry)
    gauge = Gauge("x_size", "Size", ["kind"], registry=registry)
    first = counter.labels("Submit", "ok")
    assert counter.labels("Submit", "ok") is first
    first.inc()
    counter.labels("Submit", "ok").inc(2)
    counter.labels("Submit", "error").inc()
    histogram.labels("Submit").observe(0.05)
    histogram.labels("Submit").observe(0.5)
    gauge.labels("taken").set(3)
    gauge.labels("taken").set(7)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(registry.text().decode())
        for s in family.samples
    }
    assert samples[("x_calls_total", (("code", "ok"), ("request", "Submit")))] == 3
    assert samples[("x_calls_total", (("code", "error"), ("request", "Submit")))] == 1
    assert samples[("x_took_count", (("request", "Submit"),))] == 2
    assert samples[("x_size", (("kind", "taken"),))] == 7
    with pytest.raises(ValueError, match="expected 2 label values"):
        counter.labels("Submit")  # a wrong count is refused every time, never cached
    with pytest.raises(ValueError, match="expected 2 label values"):
        counter.labels("Submit")
