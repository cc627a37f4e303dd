"""SDK configuration: keyword arguments, or ``ALERTENGINE_*`` environment variables.

Thresholds nest with ``__``: ``ALERTENGINE_THRESHOLDS__P95_WARNING_MS=800``. ``REDIS_URL`` is
honoured too (the name users of the original already set).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alertengine.sdk.scoring import Thresholds


class SDKConfig(BaseSettings):
    """Everything the SDK can be told. Invalid values fail at ``instrument()``, loudly."""

    model_config = SettingsConfigDict(
        env_prefix="ALERTENGINE_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    service: str = Field("default", min_length=1, max_length=200)
    window_s: int = Field(60, ge=5, le=3600, description="rolling window of 1 s buckets")
    max_routes: int = Field(1000, ge=1, le=100_000, description="route templates tracked")
    route_detail_limit: int = Field(50, ge=0, description="routes listed in /health/alerts")
    history_minutes: int = Field(60, ge=1, le=1440, description="per-minute aggregates kept")
    store: Literal["memory", "redis", "multiprocess"] = "memory"
    multiproc_dir: str | None = Field(
        None,
        description="worker processes of one host merge their windows through this directory",
    )
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("ALERTENGINE_REDIS_URL", "REDIS_URL", "redis_url")
    )
    redis_prefix: str = Field("alertengine", min_length=1)
    redis_timeout_s: float = Field(0.5, gt=0, le=30)
    publish_interval_s: float = Field(1.0, gt=0, le=60, description="batch publish period")
    buffer_max_buckets: int = Field(
        600, ge=1, description="closed seconds buffered while the store is down"
    )
    breaker_failures: int = Field(3, ge=1, description="consecutive failures that open it")
    breaker_reset_s: float = Field(5.0, gt=0, description="open this long before a retry")
    prometheus: bool = False
    enable_simulation: bool = False
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @model_validator(mode="after")
    def _redis_needs_url(self) -> SDKConfig:
        if self.store == "redis" and not self.redis_url:
            raise ValueError("store='redis' needs redis_url (or REDIS_URL)")
        if self.store == "multiprocess" and not self.multiproc_dir:
            raise ValueError("store='multiprocess' needs multiproc_dir (ALERTENGINE_MULTIPROC_DIR)")
        return self

    @property
    def effective_store(self) -> Literal["memory", "redis", "multiprocess"]:
        """A multiprocess directory alone switches the default in-memory store to it."""
        if self.store == "memory" and self.multiproc_dir:
            return "multiprocess"
        return self.store
