"""A Prometheus histogram fed a batch of observations at once.

``prometheus_client.Histogram.observe`` takes one value (a lock and a Python loop over the
buckets: about a microsecond), and the worker observes one end-to-end latency per event.
:meth:`BatchHistogram.observe_many` sorts the batch and counts each bucket with one
bisection; the exposition is the same (``_bucket{le=...}`` cumulative, ``_count``,
``_sum``), so queries and dashboards do not change. Single-threaded use (the worker's
event loop observes and serves the scrape).

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> r = CollectorRegistry()
>>> h = BatchHistogram("demo_seconds", "Demo.", (0.01, 0.1), r)
>>> h.observe_many([0.005, 0.01, 0.05, 3.0])
>>> [line for line in generate_latest(r).decode().splitlines() if line.startswith("demo")]
... # doctest: +NORMALIZE_WHITESPACE
['demo_seconds_bucket{le="0.01"} 2.0', 'demo_seconds_bucket{le="0.1"} 3.0',
 'demo_seconds_bucket{le="+Inf"} 4.0', 'demo_seconds_count 4.0', 'demo_seconds_sum 3.065']
"""

import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class BatchHistogram(Collector):
    """A histogram without labels; ``buckets`` are upper bounds (``le``), +Inf added."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = sorted(set(buckets) | {math.inf})
        self._counts = [0] * len(self._bounds)  # per bucket, not cumulative
        self._sum = 0.0
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        """Count every value of ``values`` (a value equal to a bound falls in its bucket)."""
        ordered = sorted(values)
        if not ordered:
            return
        below = 0
        counts = self._counts
        for i, bound in enumerate(self._bounds):
            upto = bisect_right(ordered, bound)
            counts[i] += upto - below
            below = upto
        self._sum += math.fsum(ordered)

    def _family(self) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip(self._bounds, self._counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), float(cumulative)))
        return HistogramMetricFamily(self.name, self.documentation, buckets=buckets,
                                     sum_value=self._sum)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The histogram as it stands (called by the registry at scrape time)."""
        yield self._family()

    def describe(self) -> Iterator[HistogramMetricFamily]:
        """The metric's name and type, for the registry's duplicate check."""
        yield self._family()
