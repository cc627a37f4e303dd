"""After ``dlq replay`` (or a crash between VALIDATED and the links) someone must be asked:
the sweep's ``ask_unasked`` sends fresh links once, whichever replica gets there first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import tomllib

from alertengine.demo import _serve
from alertengine.engine import Change
from alertengine.execute import DLQ, dlq_replay
from alertengine.incidents import Stage
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores.factory import open_stores
from tests.scale.cluster import PUSHED, SECRETS, TENANT, Receiver, config_toml
from tests.support.redis_server import free_port


@contextlib.asynccontextmanager
async def replicas(db: Path, n: int, rx_port: int) -> AsyncIterator[list[Runtime]]:
    raw = config_toml(base_url="http://127.0.0.1:1", receiver=f"http://127.0.0.1:{rx_port}")
    config = parse_config(tomllib.loads(raw))
    rts: list[Runtime] = []
    try:
        for _ in range(n):
            ledger, store = open_stores(
                f"sqlite:///{db}", ledger_key=SECRETS["ALERTENGINE_LEDGER_KEY"].encode()
            )
            rts.append(
                await build_runtime(
                    config, ledger=ledger, store=store, settings=Settings.from_env(SECRETS)
                )
            )
        await sync_tenants(rts[0])
        yield rts
    finally:
        for rt in rts:
            await rt.drain()
            await rt.http.aclose()
            await rt.ledger.close()
            await rt.store.close()


async def dead_lettered(rt: Runtime) -> tuple[str, str]:
    """An incident that was approved and whose webhook failed: WEBHOOK_FAILED + a DLQ doc."""
    e = rt.engine
    state, _ = await e.open(TENANT, PUSHED, reason="errors", snapshot={"score": 10.0})
    i = state.incident_id
    await e.transition(TENANT, i, Change(Stage.PROPOSED, "orchestrator", "p", data={"action": "x"}))
    await e.transition(TENANT, i, Change(Stage.VALIDATED, "policy", "v"))
    await e.transition(TENANT, i, Change(Stage.AUTHORIZED, "engineer:webhook:alice", "ok"))
    dlq_id = "ae-test-dlq"
    await rt.store.put(DLQ, dlq_id, {"id": dlq_id, "tenant_id": TENANT, "incident_id": i})
    await e.transition(
        TENANT,
        i,
        Change(
            Stage.WEBHOOK_FAILED, "orchestrator", "failed",
            data={"dlq_id": dlq_id, "attempts": 3},
        ),
    )  # fmt: skip
    return i, dlq_id


async def test_replay_is_followed_by_one_round_of_fresh_links_across_replicas(
    tmp_path: Path,
) -> None:
    rx = Receiver()
    rx_port = free_port()
    async with _serve(rx.app(), rx_port), replicas(tmp_path / "ae.db", 3, rx_port) as rts:
        i, dlq_id = await dead_lettered(rts[0])
        await dlq_replay(rts[0].engine, rts[0].store, dlq_id)  # as the CLI does
        asked = await asyncio.gather(*(rt.orch.pipeline.ask_unasked([TENANT]) for rt in rts))
        assert sorted(len(a) for a in asked) == [0, 0, 1]  # one replica asked
        assert len(rx.messages) == 1 and rx.messages[0]["incident_id"] == i
        for rt in rts:  # and nobody asks twice, later
            assert await rt.orch.pipeline.ask_unasked([TENANT]) == []
        assert len(rx.messages) == 1
        log = [e async for e in rts[0].ledger.scan(TENANT)]
        (esc,) = [e for e in log if e.kind == "escalation"]
        assert esc.decision == "replayed" and f"dead-letter {dlq_id} was replayed" in esc.reason
        assert "failed 3 time(s)" in esc.reason
        tokens = [e for e in log if e.kind == "token" and e.decision == "issued"]
        assert len(tokens) == 1 and tokens[0].seq > esc.seq
        assert (await rts[0].ledger.verify(TENANT)).ok


async def test_validated_with_no_link_is_asked_after_the_grace_only(tmp_path: Path) -> None:
    """A crash between the policy's VALIDATED move and its links: nobody was asked. Within
    the grace the pipeline's own hook may still be sending them; after it, the sweep asks."""
    rx = Receiver()
    rx_port = free_port()
    async with _serve(rx.app(), rx_port), replicas(tmp_path / "ae.db", 1, rx_port) as (rt,):
        e = rt.engine
        state, _ = await e.open(TENANT, PUSHED, reason="errors", snapshot={"score": 10.0})
        i = state.incident_id
        await e.transition(TENANT, i, Change(Stage.PROPOSED, "orchestrator", "p"))
        await e.transition(TENANT, i, Change(Stage.VALIDATED, "policy", "v"))
        assert await rt.orch.pipeline.ask_unasked([TENANT], grace_s=60) == []
        assert rx.messages == []
        (asked,) = await rt.orch.pipeline.ask_unasked([TENANT], grace_s=0)
        assert asked.incident_id == i and len(rx.messages) == 1
        log = [x async for x in rt.ledger.scan(TENANT)]
        (esc,) = [x for x in log if x.kind == "escalation"]
        assert esc.decision == "unasked" and "no approval link was ever sent" in esc.reason
        assert await rt.orch.pipeline.ask_unasked([TENANT], grace_s=0) == []
