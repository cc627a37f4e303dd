"""The EMA baseline, learned on the window's own time base.

Each non-empty 1 s bucket is observed exactly once, in order, when it closes. The learner keeps
a running total of the last ``window_s`` closed seconds (add on close, subtract on expiry), judges
that window and the closed second with the current baseline, and only if both are healthy
(``ok``) lets the closed second move the baseline. Polling never calls
:meth:`BaselineLearner.observe`, so how often ``/health/alerts`` is read cannot change what is
learned.
"""

from __future__ import annotations

from collections import deque

from alertengine.sdk.scoring import Baseline, Thresholds, score_health, update_baseline
from alertengine.sdk.window import Bucket, Stats


def _subtract(into: Stats, other: Stats) -> None:
    into.count -= other.count
    into.c4xx -= other.c4xx
    into.c5xx -= other.c5xx
    into.sum_ms -= other.sum_ms
    bins = into.sketch.bins
    for k, c in other.sketch.bins.items():
        left = bins.get(k, 0) - c
        if left > 0:
            bins[k] = left
        else:
            bins.pop(k, None)
    into.sketch.count -= other.sketch.count


class BaselineLearner:
    def __init__(self, thresholds: Thresholds, window_s: int = 60) -> None:
        self.thresholds = thresholds
        self.window_s = window_s
        self.baseline = Baseline()
        self.observed_seconds = 0
        self.healthy_seconds = 0
        self.last_sec = -1
        self._closed: deque[tuple[int, Stats]] = deque()
        self._total = Stats()

    def observe(self, bucket: Bucket) -> None:
        """Feed one closed second (oldest first). Called by the window, never by a read."""
        if bucket.sec <= self.last_sec or bucket.total.count == 0:
            return
        self.last_sec = bucket.sec
        self.observed_seconds += 1
        while self._closed and self._closed[0][0] <= bucket.sec - self.window_s:
            _, old = self._closed.popleft()
            _subtract(self._total, old)
        second = bucket.total
        self._closed.append((bucket.sec, second))
        self._total.merge(second)

        t = self.thresholds
        window_p95 = self._total.sketch.quantile(0.95)
        verdict = score_health(
            window_p95,
            self._total.error_rate_5xx,
            sample_size=self._total.count,
            thresholds=t,
            baseline=self.baseline,
        )
        second_p95 = second.sketch.quantile(0.95)
        if second_p95 is None:
            return
        # The second itself must be healthy too: the first seconds of a spike barely move a
        # 60 s window, and must not teach the baseline that the spike is normal.
        own = score_health(second_p95, second.error_rate_5xx, thresholds=t, baseline=self.baseline)
        # "Healthy" needs enough traffic to judge: an unjudged window teaches nothing.
        if verdict.status == "ok" and own.status == "ok" and self._total.count >= t.min_samples:
            self.healthy_seconds += 1
            self.baseline = update_baseline(self.baseline, second_p95, second.error_rate_5xx, t)
