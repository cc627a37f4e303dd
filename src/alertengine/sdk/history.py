"""Per-minute aggregates for ``/metrics/history``, fed by closed seconds (bounded)."""

from __future__ import annotations

from collections import deque
from typing import Any

from alertengine.sdk.window import Bucket, Stats


class MinuteHistory:
    def __init__(self, minutes: int = 60) -> None:
        self._minutes: deque[tuple[int, Stats]] = deque(maxlen=minutes)

    def observe(self, bucket: Bucket) -> None:
        minute = bucket.sec // 60 * 60
        if not self._minutes or self._minutes[-1][0] < minute:
            self._minutes.append((minute, Stats()))
        elif self._minutes[-1][0] > minute:
            return  # a second older than the newest minute: closed seconds arrive in order
        self._minutes[-1][1].merge(bucket.total)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for minute, s in self._minutes:
            p50, p95, p99 = s.sketch.quantiles((0.5, 0.95, 0.99))
            out.append(
                {
                    "minute": minute,
                    "count": s.count,
                    "p50_ms": None if p50 is None else round(p50, 2),
                    "p95_ms": None if p95 is None else round(p95, 2),
                    "p99_ms": None if p99 is None else round(p99, 2),
                    "error_rate_5xx": round(s.error_rate_5xx, 4),
                    "error_rate_4xx": round(s.error_rate_4xx, 4),
                    "status_5xx_count": s.c5xx,
                    "status_4xx_count": s.c4xx,
                }
            )
        return out
