"""The data plane: measure every request cheaply and serve ``/health/alerts``.

    from alertengine import instrument
    engine = instrument(app, service="checkout")            # in-memory
    engine = instrument(app, service="checkout", store="redis", redis_url="redis://…")

The pure scoring functions used by the dashboards live in :mod:`alertengine.sdk.scoring`.
"""

from alertengine.sdk.config import SDKConfig
from alertengine.sdk.handle import AlertEngine, instrument
from alertengine.sdk.middleware import AlertEngineMiddleware
from alertengine.sdk.scoring import Baseline, HealthScore, Thresholds, score_health
from alertengine.sdk.stores import MemoryStore, MetricsStore, RedisStore, StoreUnavailable

__all__ = [
    "AlertEngine",
    "AlertEngineMiddleware",
    "Baseline",
    "HealthScore",
    "MemoryStore",
    "MetricsStore",
    "RedisStore",
    "SDKConfig",
    "StoreUnavailable",
    "Thresholds",
    "instrument",
    "score_health",
]
