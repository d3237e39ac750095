"""Counters, gauges and histograms written in the Prometheus text exposition format (0.0.4).

What ``GET /metrics`` needs and no more, so that a node does not import prometheus_client (19
modules, ~4 MB of an idle node's RSS, issue 16 item 5). The output is the one
prometheus_client's ``generate_latest`` writes for the same metrics: a counter ``x`` is exposed
as ``x_total``, a histogram as cumulative ``x_bucket{le=...}``, ``x_count`` and ``x_sum``, each
counter and histogram with a ``x_created`` gauge (its start, Unix seconds); labels sorted by
name, values in Go's float notation, label values and help texts escaped. The tests parse it
with prometheus_client's own parser (tests/api/test_metrics.py).

Thread-safe: a metric's children and values are guarded by one lock per metric, as the Raft
actor, the API threads and the scrape all touch them.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_RESERVED_LABELS = {"le"}  # histograms add it themselves

LabelValues = tuple[str, ...]


def go_float(value: float) -> str:
    """``value`` as Go's strconv writes it (Prometheus' notation): 1.0, 1.5e+06, +Inf, NaN."""
    value = float(value)
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    # Go switches to exponents sooner than Python (from 1e21 on): seven or more digits before
    # the dot become a mantissa and an exponent, as prometheus_client writes them.
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _check_metric_name(name: str) -> None:
    if not _METRIC_NAME.match(name):
        raise ValueError(f"metric name {name!r}: expected letters, digits, '_' or ':', not a digit first")


def _check_label_names(metric: str, names: Sequence[str], reserved: Iterable[str] = ()) -> tuple[str, ...]:
    for name in names:
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(
                f"metric {metric}: label name {name!r}: expected letters, digits or '_', "
                "not a digit first nor a leading '__'"
            )
        if name in reserved:
            raise ValueError(f"metric {metric}: label name {name!r} is reserved")
    if len(set(names)) != len(names):
        raise ValueError(f"metric {metric}: label names repeat: {list(names)}")
    return tuple(names)


def _sample(name: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    pairs = sorted(labels)
    if not pairs:
        return f"{name} {go_float(value)}\n"
    inside = ",".join(f'{key}="{_escape_label_value(text)}"' for key, text in pairs)
    return f"{name}{{{inside}}} {go_float(value)}\n"


def _header(name: str, documentation: str, kind: str) -> str:
    return f"# HELP {name} {_escape_help(documentation)}\n# TYPE {name} {kind}\n"


class GaugeFamily:
    """Gauges read at scrape time (a ``Registry`` source): one value, or one per label set."""

    __slots__ = ("documentation", "labelnames", "name", "values")

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str] = (), value: float | None = None
    ) -> None:
        _check_metric_name(name)
        self.name = name
        self.documentation = documentation
        self.labelnames = _check_label_names(name, labelnames)
        self.values: list[tuple[LabelValues, float]] = []
        if value is not None:
            if self.labelnames:
                raise ValueError(f"metric {name}: a single value needs no label names")
            self.values.append(((), float(value)))

    def add(self, label_values: Sequence[str], value: float) -> None:
        if len(label_values) != len(self.labelnames):
            raise ValueError(
                f"metric {self.name}: expected {len(self.labelnames)} label values "
                f"{list(self.labelnames)}, got {list(label_values)}"
            )
        self.values.append((tuple(str(v) for v in label_values), float(value)))

    def text(self) -> str:
        lines = [_header(self.name, self.documentation, "gauge")]
        for label_values, value in self.values:
            lines.append(_sample(self.name, zip(self.labelnames, label_values, strict=True), value))
        return "".join(lines)


class _Metric:
    """A metric counted as things happen: its children by label values, under one lock."""

    kind = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: Registry | None = None,
        reserved: Iterable[str] = (),
    ) -> None:
        _check_metric_name(name)
        self.name = name
        self.documentation = documentation
        self.labelnames = _check_label_names(name, labelnames, reserved)
        self._lock = threading.Lock()
        self._children: dict[LabelValues, list[float]] = {}
        # The handle ``labels()`` gave for the same values, as they were passed: a submit's
        # answer counts three labelled metrics on the leader's Raft thread, and building and
        # checking a key and a handle each time was ~4 us of each (issue 16). Races only
        # build a second handle on the same child.
        self._handles: dict[tuple[object, ...], Any] = {}
        if not self.labelnames:  # an unlabelled metric shows from the start, at zero
            self._children[()] = self._new_child()
        if registry is not None:
            registry.add(self)

    def _new_child(self) -> list[float]:
        raise NotImplementedError

    def _child(self, label_values: Sequence[str]) -> list[float]:
        key = tuple(str(v) for v in label_values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(
                    f"metric {self.name}: expected {len(self.labelnames)} label values "
                    f"{list(self.labelnames)}, got {list(key)}"
                )
            with self._lock:
                child = self._children.setdefault(key, self._new_child())
        return child

    def _snapshot(self) -> list[tuple[LabelValues, list[float]]]:
        with self._lock:
            return [(key, list(child)) for key, child in self._children.items()]

    def _created_text(self, children: list[tuple[LabelValues, list[float]]]) -> str:
        if not children:  # a labelled metric before its first use: no samples, no family
            return ""
        name = f"{self.name}_created"
        lines = [_header(name, self.documentation, "gauge")]
        for key, child in children:
            lines.append(_sample(name, zip(self.labelnames, key, strict=True), child[0]))
        return "".join(lines)

    def text(self) -> str:
        raise NotImplementedError


class Counter(_Metric):
    """Exposed as ``NAME_total``; child layout: [created, value]."""

    kind = "counter"

    def _new_child(self) -> list[float]:
        return [time.time(), 0.0]

    def labels(self, *label_values: str) -> _CounterChild:
        handle = self._handles.get(label_values)
        if handle is None:
            handle = self._handles[label_values] = _CounterChild(self, self._child(label_values))
        return handle

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def text(self) -> str:
        children = self._snapshot()
        total = f"{self.name}_total"
        lines = [_header(total, self.documentation, "counter")]
        for key, child in children:
            lines.append(_sample(total, zip(self.labelnames, key, strict=True), child[1]))
        return "".join(lines) + self._created_text(children)


class _CounterChild:
    __slots__ = ("_child", "_metric")

    def __init__(self, metric: Counter, child: list[float]) -> None:
        self._metric = metric
        self._child = child

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"metric {self._metric.name}: a counter only goes up (got {amount})")
        with self._metric._lock:
            self._child[1] += amount


class Gauge(_Metric):
    """A value set as things happen; child layout: [value]."""

    kind = "gauge"

    def _new_child(self) -> list[float]:
        return [0.0]

    def labels(self, *label_values: str) -> _GaugeChild:
        handle = self._handles.get(label_values)
        if handle is None:
            handle = self._handles[label_values] = _GaugeChild(self, self._child(label_values))
        return handle

    def set(self, value: float) -> None:
        self.labels().set(value)

    def text(self) -> str:
        lines = [_header(self.name, self.documentation, "gauge")]
        for key, child in self._snapshot():
            lines.append(_sample(self.name, zip(self.labelnames, key, strict=True), child[0]))
        return "".join(lines)


class _GaugeChild:
    __slots__ = ("_child", "_metric")

    def __init__(self, metric: Gauge, child: list[float]) -> None:
        self._metric = metric
        self._child = child

    def set(self, value: float) -> None:
        with self._metric._lock:
            self._child[0] = float(value)


class Histogram(_Metric):
    """Observations counted in buckets (each bucket's own count; exposed cumulative, with
    ``+Inf`` last); child layout: [created, sum, count in bucket 0, 1, ...]."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: Registry | None = None,
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds != [float(b) for b in buckets] or len(set(bounds)) != len(bounds):
            raise ValueError(f"metric {name}: buckets must be given in increasing order, got {list(buckets)}")
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.bounds = tuple(bounds)
        self._les = tuple(go_float(b) for b in bounds)
        super().__init__(name, documentation, labelnames, registry=registry, reserved=_RESERVED_LABELS)

    def _new_child(self) -> list[float]:
        return [time.time(), 0.0] + [0.0] * len(self.bounds)

    def labels(self, *label_values: str) -> _HistogramChild:
        handle = self._handles.get(label_values)
        if handle is None:
            handle = self._handles[label_values] = _HistogramChild(self, self._child(label_values))
        return handle

    def observe(self, amount: float) -> None:
        self.labels().observe(amount)

    def text(self) -> str:
        children = self._snapshot()
        lines = [_header(self.name, self.documentation, "histogram")]
        for key, child in children:
            labels = list(zip(self.labelnames, key, strict=True))
            cumulative = 0.0
            for le, count in zip(self._les, child[2:], strict=True):
                cumulative += count
                lines.append(_sample(f"{self.name}_bucket", [*labels, ("le", le)], cumulative))
            lines.append(_sample(f"{self.name}_count", labels, cumulative))
            lines.append(_sample(f"{self.name}_sum", labels, child[1]))
        return "".join(lines) + self._created_text(children)


class _HistogramChild:
    __slots__ = ("_child", "_metric")

    def __init__(self, metric: Histogram, child: list[float]) -> None:
        self._metric = metric
        self._child = child

    def observe(self, amount: float) -> None:
        bucket = bisect.bisect_left(self._metric.bounds, amount)  # the first bound >= amount
        with self._metric._lock:
            self._child[1] += amount
            self._child[2 + bucket] += 1


class Registry:
    """One node's metrics, written in the order they were added; sources are read at scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[_Metric | Callable[[], Iterable[GaugeFamily]]] = []
        self._names: set[str] = set()

    def add(self, metric: _Metric) -> None:
        with self._lock:
            if metric.name in self._names:
                raise ValueError(f"metric {metric.name} is already in this registry")
            self._names.add(metric.name)
            self._parts.append(metric)

    def add_source(self, collect: Callable[[], Iterable[GaugeFamily]]) -> None:
        with self._lock:
            self._parts.append(collect)

    def text(self) -> bytes:
        with self._lock:
            parts = list(self._parts)
        chunks: list[str] = []
        for part in parts:
            if isinstance(part, _Metric):
                chunks.append(part.text())
            else:
                chunks.extend(family.text() for family in part())
        return "".join(chunks).encode()
