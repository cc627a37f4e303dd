"""One instrumented app replica in its own process: ``python -m tests.scale.app_worker``.

The demo shop (``/checkout/{id}``) measured by the SDK with the Redis store, plus a chaos
switch (``POST /chaos {"latency_s": …}``) so a test can slow every replica down at once.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from starlette.requests import Request

from alertengine import instrument
from alertengine.demo_parts import Chaos, shop_app
from alertengine.sdk.config import SDKConfig


def build(redis_url: str | None, service: str = "shop", window_s: int = 5) -> Any:
    chaos = Chaos()
    app = shop_app(chaos)

    @app.post("/chaos")
    async def set_chaos(request: Request) -> dict[str, float]:
        body = await request.json()
        chaos.latency_s = float(body.get("latency_s", 0.0))
        return {"latency_s": chaos.latency_s}

    if redis_url:
        cfg = SDKConfig(
            service=service,
            window_s=window_s,
            store="redis",
            redis_url=redis_url,
            breaker_reset_s=1.0,
        )
        instrument(app, service=service, config=cfg)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--window-s", type=int, default=5)
    a = ap.parse_args()
    app = build(a.redis_url or None, window_s=a.window_s)
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
