"""The app the multi-worker tests serve with ``uvicorn --workers`` and gunicorn.

Configured only by the environment (``ALERTENGINE_MULTIPROC_DIR`` and friends), as a user's app
would be under a process manager.
"""

from __future__ import annotations

from fastapi import FastAPI

from alertengine import instrument

app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


engine = instrument(app)
