"""The SDK handle: one rolling window, its listeners, an optional shared store, and the reads.

:func:`instrument` wires it into an app. Everything time-dependent reads ``clock`` (wall seconds,
for the 1 s buckets) and ``timer`` (a monotonic clock, for latencies), both injectable, so tests
and simulators run on virtual time without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from alertengine.sdk.config import SDKConfig
from alertengine.sdk.endpoints import Handler, build_endpoints
from alertengine.sdk.health_alerts import Coverage, build_report, find_gaps, unavailable_report
from alertengine.sdk.history import MinuteHistory
from alertengine.sdk.learner import BaselineLearner
from alertengine.sdk.middleware import AlertEngineMiddleware, ASGIApp
from alertengine.sdk.multiproc import DirectoryStore
from alertengine.sdk.prometheus import Snapshot, exposition
from alertengine.sdk.publisher import CircuitBreaker, Publisher, decode_bucket
from alertengine.sdk.stores import MetricsStore, RedisStore
from alertengine.sdk.window import Bucket, RollingWindow

SIMULATED_ROUTE = "<simulated>"
#: A failure on the request path is logged at most this often (it may repeat per request).
LOG_EVERY_S = 60.0

log = logging.getLogger("alertengine.sdk")


def _replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _redact(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class AlertEngine:
    """Measures requests and answers health. Create it with :func:`instrument`."""

    def __init__(
        self,
        config: SDKConfig,
        *,
        store: MetricsStore | None = None,
        clock: Callable[[], float] | None = None,
        timer: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.clock: Callable[[], float] = clock or time.time
        self.timer: Callable[[], float] = timer or time.perf_counter
        self._pid = os.getpid()
        self.replica = _replica_id()
        self.learner = BaselineLearner(config.thresholds, config.window_s)
        self.minutes = MinuteHistory(config.history_minutes)
        self.window = RollingWindow(
            config.window_s,
            max_routes=config.max_routes,
            on_close=(self.learner.observe, self.minutes.observe),
        )
        if store is None and config.effective_store == "redis":
            assert config.redis_url is not None  # checked by SDKConfig
            store = RedisStore(
                config.redis_url, prefix=config.redis_prefix, timeout_s=config.redis_timeout_s
            )
        elif store is None and config.effective_store == "multiprocess":
            assert config.multiproc_dir is not None  # checked by SDKConfig
            store = DirectoryStore(config.multiproc_dir)
            store.ensure_directory()  # a directory that cannot be used fails at instrument()
        self.store = store
        self.breaker = CircuitBreaker(
            config.breaker_failures, config.breaker_reset_s, clock=time.monotonic
        )
        self.publisher: Publisher | None = None
        if store is not None:
            self.publisher = Publisher(
                store,
                service=config.service,
                replica=self.replica,
                ttl_s=config.window_s + 60,
                buffer_max=config.buffer_max_buckets,
                breaker=self.breaker,
            )
            self.window.add_on_close(self.publisher.on_close)
        self.started = False
        self.internal_errors = 0
        self.read_errors = 0
        self.last_internal_error: str | None = None
        self._last_logged: tuple[str, float] | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._cached: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        self._decoded: dict[tuple[str, int], tuple[bytes, Bucket]] = {}

    # -- wiring -----------------------------------------------------------------------------
    def endpoints(self) -> dict[str, Handler]:
        return build_endpoints(self)

    def wrap(self, app: ASGIApp) -> AlertEngineMiddleware:
        """Wrap any ASGI app (for frameworks without ``add_middleware``)."""
        return AlertEngineMiddleware(app, self)

    def note_internal_error(self, exc: BaseException) -> None:
        """Count (and log, rate-limited) a failure of ours; the host app never sees it."""
        self.internal_errors += 1
        cause = f"{type(exc).__name__}: {exc}"[:300]
        self.last_internal_error = cause
        now = time.monotonic()
        last = self._last_logged
        if last is None or last[0] != cause or now - last[1] >= LOG_EVERY_S:
            self._last_logged = (cause, now)
            log.warning(
                "alertengine SDK internal error (%s); the app's requests are unaffected; "
                "%d so far (see /metrics/ingestion)",
                cause,
                self.internal_errors,
            )

    def _adopt_process(self) -> None:
        """After a fork (gunicorn ``--preload``) this is a new process: a new replica id, so
        workers created from one parent never write over each other's data."""
        if os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        self.replica = _replica_id()
        if self.publisher is not None:
            self.publisher.replica = self.replica
        self._task = None
        self._lock = None

    def start_background(self) -> None:
        """Start the publishing task in the running loop (idempotent; no-op without a store)."""
        self._adopt_process()
        self.started = True
        if self.publisher is None or (self._task is not None and not self._task.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.started = False
            return
        self._task = loop.create_task(self._run(), name="alertengine-publisher")

    async def _run(self) -> None:
        if isinstance(self.store, DirectoryStore):
            # Counted among the workers from the start, not only after its first request.
            try:
                await self.store.register(
                    self.config.service, self.replica, self.config.window_s + 60
                )
            except Exception as exc:
                self.note_internal_error(exc)
        while True:
            await asyncio.sleep(self.config.publish_interval_s)
            try:
                await self.flush()
            except Exception as exc:  # the loop must survive anything
                self.note_internal_error(exc)

    async def flush(self) -> bool:
        """Publish what is pending now. True when nothing is left pending. Never raises."""
        if self.publisher is None:
            return True
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = self.clock()
            self.window.catch_up(now)
            return await self.publisher.tick(self.window.current, now)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.publisher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), timeout=self.config.redis_timeout_s * 4)
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.aclose()
        self.started = False

    # -- recording (beyond the middleware) --------------------------------------------------
    def simulate(self, *, count: int, latency_ms: float, status: int = 200) -> None:
        """Record synthetic requests (the opt-in simulation endpoints use this)."""
        now = self.clock()
        for _ in range(count):
            self.window.record(SIMULATED_ROUTE, latency_ms, status, now)

    # -- reads: none of them changes what is learned ----------------------------------------
    async def health(self) -> dict[str, Any]:
        """The ``/health/alerts`` document. Fails closed (``"unknown"``), never raises."""
        c = self.config
        now = self.clock()
        try:
            # Closing a finished second here gives the same result as the next request would.
            self.window.catch_up(now)
            # Within one second and without new requests the answer cannot change: merge once.
            key = (int(now), self.window.recorded, self.learner.observed_seconds)
            if self.store is None and self._cached is not None and self._cached[0] == key:
                doc = copy.deepcopy(self._cached[1])
                doc["generated_at"] = round(now, 3)
                return doc
            buckets: list[Bucket] = self.window.buckets(now)
            coverage = Coverage()
            per_replica: dict[str, list[Bucket]] = {}
            if self.store is not None:
                if not self.breaker.allow():
                    return unavailable_report(
                        now=now,
                        service=c.service,
                        window_s=c.window_s,
                        instance_id=self.replica,
                        reason=f"{self.store.name} circuit breaker open",
                    )
                sec = int(now)
                try:
                    rows = await asyncio.wait_for(
                        self.store.fetch(c.service, sec - c.window_s, sec),
                        timeout=c.redis_timeout_s * 2,
                    )
                except Exception as exc:
                    self.read_errors += 1
                    self.breaker.failure()
                    return unavailable_report(
                        now=now,
                        service=c.service,
                        window_s=c.window_s,
                        instance_id=self.replica,
                        reason=f"{self.store.name}: {type(exc).__name__}",
                    )
                self.breaker.success()
                decoded: dict[tuple[str, int], tuple[bytes, Bucket]] = {}
                for replica, sec_, payload in rows:
                    if replica == self.replica:
                        continue  # our own data is fresher in the local window
                    # A closed second's payload never changes: decode it once, not every read.
                    hit = self._decoded.get((replica, sec_))
                    try:
                        bucket = hit[1] if hit and hit[0] == payload else decode_bucket(payload)
                    except Exception as exc:
                        self.note_internal_error(exc)
                        continue
                    decoded[(replica, sec_)] = (payload, bucket)
                    buckets.append(bucket)
                    per_replica.setdefault(replica, []).append(bucket)
                self._decoded = decoded
                coverage = self._coverage(per_replica)
            doc = build_report(
                buckets,
                now=now,
                service=c.service,
                window_s=c.window_s,
                thresholds=c.thresholds,
                baseline=self.learner.baseline,
                route_limit=c.route_detail_limit,
                replicas=1 + sum(1 for b in per_replica.values() if b),
                coverage=coverage,
                instance_id=self.replica,
            )
            if self.store is None:
                self._cached = (key, copy.deepcopy(doc))
            return doc
        except Exception as exc:
            self.note_internal_error(exc)
            return unavailable_report(
                now=now,
                service=c.service,
                window_s=c.window_s,
                reason="internal error",
                instance_id=self.replica,
            )

    def _coverage(self, per_replica: dict[str, list[Bucket]]) -> Coverage:
        """Which processes this answer covers (ourselves included) and what it misses."""
        missing, spans = find_gaps(per_replica)
        with_data = {r for r, b in per_replica.items() if b}
        if isinstance(self.store, DirectoryStore):
            m = self.store.membership
            exited = (m.exited & with_data) - {self.replica}
            covered = (m.live | with_data | {self.replica}) - exited
            return Coverage(
                scope="host",
                processes=len(covered) + len(exited),
                processes_exited=len(exited),
                requests_missing=missing,
                gap_spans=spans,
            )
        return Coverage(
            scope="shared",
            processes=1 + len(with_data),
            requests_missing=missing,
            gap_spans=spans,
        )

    def history(self) -> dict[str, Any]:
        """Per-minute aggregates of this replica's closed seconds (the open one excluded)."""
        self.window.catch_up(self.clock())
        return {
            "service": self.config.service,
            "replica": self.replica,
            "scope": "replica",
            "minutes": self.minutes.rows(),
        }

    def ingestion(self) -> dict[str, Any]:
        p = self.publisher
        return {
            "service": self.config.service,
            "recorded": self.window.recorded,
            "buffered": p.buffered_requests if p else 0,
            "buffered_buckets": p.buffered_buckets if p else 0,
            "published_buckets": p.counters.published_buckets if p else 0,
            "dropped": p.counters.dropped if p else 0,
            "dropped_buckets": p.counters.dropped_buckets if p else 0,
            "store_errors": p.counters.store_errors if p else 0,
            "read_errors": self.read_errors,
            "internal_errors": self.internal_errors,
            "last_error": (p.counters.last_error if p else None) or self.last_internal_error,
            "routes_tracked": self.window.route_count,
        }

    def status(self) -> dict[str, Any]:
        c = self.config
        store = self.store.name if self.store else "memory"
        cfg = c.model_dump(mode="json")
        cfg["redis_url"] = _redact(c.redis_url)
        b = self.learner.baseline
        return {
            "service": c.service,
            "replica": self.replica,
            "store": store,
            "shared": self.store is not None,
            "breaker": self.breaker.as_dict(),
            "background_task": self._task is not None and not self._task.done(),
            "baseline": {
                "p95_ms": round(b.p95_ms, 2),
                "p95_dev_ms": round(b.p95_dev_ms, 2),
                "error_rate": round(b.error_rate, 4),
                "samples": b.samples,
                "warm": b.warm(c.thresholds),
            },
            "config": cfg,
        }

    async def prometheus_exposition(self, accept: str = "") -> tuple[bytes, str]:
        """``/metrics``: body and content type (text 0.0.4 or OpenMetrics, per ``accept``)."""
        p = self.publisher
        snapshot = Snapshot(
            report=await self.health(),
            recorded_total=self.window.recorded,
            dropped_total=p.counters.dropped if p else 0,
            instance_id=self.replica,
        )
        return exposition(snapshot, accept)


def instrument(
    app: Any,
    *,
    service: str | None = None,
    store: Literal["memory", "redis", "multiprocess"] | MetricsStore | None = None,
    redis_url: str | None = None,
    config: SDKConfig | None = None,
    prometheus: bool | None = None,
    enable_simulation: bool | None = None,
    clock: Callable[[], float] | None = None,
    timer: Callable[[], float] | None = None,
) -> AlertEngine:
    """Measure every request of ``app`` and serve ``/health/alerts`` (and friends) on it.

    Arguments left as ``None`` come from ``config`` (default: ``SDKConfig()``, i.e. the
    ``ALERTENGINE_*`` environment). ``store`` is ``"memory"`` (this process only), ``"redis"``
    (replicas share one view; needs ``redis_url`` or ``REDIS_URL``), ``"multiprocess"`` (worker
    processes of one host share one view through ``ALERTENGINE_MULTIPROC_DIR``) or any
    :class:`~alertengine.sdk.stores.MetricsStore`. Returns the :class:`AlertEngine` handle.
    Raises ``ValueError``/``TypeError`` on bad configuration; never raises at request time.
    """
    base = config or SDKConfig()
    overrides: dict[str, Any] = {}
    if service is not None:
        overrides["service"] = service
    if isinstance(store, str):
        overrides["store"] = store
    if redis_url is not None:
        overrides["redis_url"] = redis_url
    if prometheus is not None:
        overrides["prometheus"] = prometheus
    if enable_simulation is not None:
        overrides["enable_simulation"] = enable_simulation
    cfg = SDKConfig.model_validate({**base.model_dump(), **overrides}) if overrides else base
    store_obj = store if store is not None and not isinstance(store, str) else None
    if store_obj is not None and not isinstance(store_obj, MetricsStore):
        raise TypeError("store must be 'memory', 'redis' or a MetricsStore")
    engine = AlertEngine(cfg, store=store_obj, clock=clock, timer=timer)
    state = getattr(app, "state", None)
    if state is not None and getattr(state, "alertengine", None) is not None:
        raise ValueError("this app is already instrumented (app.state.alertengine)")
    add = getattr(app, "add_middleware", None)
    if add is None:
        raise TypeError(
            "instrument() needs a Starlette/FastAPI app; for another ASGI app use "
            "AlertEngine(SDKConfig(...)).wrap(app)"
        )
    add(AlertEngineMiddleware, engine=engine)
    if state is not None:
        state.alertengine = engine
    return engine
