"""Passkey approvals: confirm latency with WebAuthn verification, and the offline audit.

1. Confirm latency, one at a time. A uvicorn server (real approval + passkey routes, engine,
   ledger, state store) runs in a subprocess on localhost with two tenants: ``acme`` under
   ``require_passkey`` and ``plain`` without. For each of ``--confirms`` fresh incidents
   this process fetches the approval's request options (POST), signs the bound challenge
   with a software P-256 authenticator (tests/passkeys/softkey.py) and times the confirm
   POST; the same for bearer-link confirms on ``plain``, for the ratio.
2. ``alertengine ledger verify --approvals --file`` on an export holding ``--approvals``
   passkey approvals (each with its AUTHORIZED transition, one enrollment), timed as the
   auditor runs it (a subprocess, wall clock), plus the in-process cost per approval.

    .venv/bin/python bench/passkeys.py [--backend sqlite|memory] [--confirms 300]
                                       [--approvals 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.passkeys.softkey import SoftAuthenticator  # noqa: E402

LEDGER_KEY = b"bench-ledger-key-0123456789abcdef"


async def serve(backend: str, port: int, db: str, confirms: int, pem: str, cred: str) -> None:
    import uvicorn
    from cryptography.hazmat.primitives import serialization
    from starlette.applications import Starlette

    from alertengine.authorize import Authorizer, TokenSigner
    from alertengine.clock import SystemClock
    from alertengine.engine import Change, IncidentEngine
    from alertengine.incidents import Stage
    from alertengine.orchestrator.approval_routes import approval_routes
    from alertengine.passkeys.routes import passkey_routes
    from alertengine.passkeys.service import Passkeys
    from alertengine.policy import Policy
    from alertengine.stores.factory import open_stores
    from alertengine.tenants import TenantRegistry

    base = f"http://localhost:{port}"
    clock = SystemClock()
    url = "memory://" if backend == "memory" else f"sqlite:///{db}"
    ledger, store = open_stores(url, ledger_key=LEDGER_KEY, clock=clock)
    policies = {"acme": Policy(require_passkey=True), "plain": Policy()}
    engine = IncidentEngine(ledger, clock, lambda t: policies.get(t, Policy()))
    tenants = TenantRegistry(store, clock)
    auth = Authorizer(engine, store, TokenSigner(b"b" * 48, clock), tenants, clock, base)
    passkeys = Passkeys(engine, store, clock, base)
    auth.passkeys = passkeys
    device = SoftAuthenticator(origin=base, counter=1)
    key = serialization.load_pem_private_key(pem.encode(), None)
    device.key = key  # type: ignore[assignment]
    device.credential_id = bytes.fromhex(cred)
    links: dict[str, list[str]] = {}
    for tenant in ("acme", "plain"):
        await tenants.add(tenant, tenant)
        await tenants.set_approvers(tenant, "web", ["alice"])
        if tenant == "acme":
            enrollment = await passkeys.issue_enrollment(tenant, "alice")
            options = await passkeys.registration_options(enrollment.token)
            await passkeys.finish_enrollment(enrollment.token, device.create(options))
        links[tenant] = []
        for n in range(confirms):
            state, _ = await engine.open(tenant, f"svc-{n}", reason="bench", snapshot={"score": 9})
            i = state.incident_id
            await engine.transition(
                tenant, i, Change(Stage.PROPOSED, "policy", "x", data={"action": "restart"})
            )
            await engine.transition(tenant, i, Change(Stage.VALIDATED, "policy", "x"))
            links[tenant].append((await auth.issue(tenant, i, "engineer:web:alice")).token)
    app = Starlette(routes=[*approval_routes(auth), *passkey_routes(passkeys, auth)])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    print(json.dumps(links), flush=True)
    await task


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def confirm_latency(
    port: int, links: dict[str, list[str]], device: SoftAuthenticator
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"passkey": [], "options": [], "plain": []}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for token in links["acme"]:
            t0 = time.perf_counter()
            r = await client.post("/action/recover/passkey-options", json={"token": token})
            out["options"].append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
            assertion = device.get_for(r.text)
            t0 = time.perf_counter()
            r = await client.post(
                "/action/recover/confirm", json={"token": token, "assertion": assertion}
            )
            out["passkey"].append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
        for token in links["plain"]:
            t0 = time.perf_counter()
            r = await client.post("/action/recover/confirm", json={"token": token})
            out["plain"].append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
    return out


def audit_export(n: int, path: Path) -> None:
    """An export with one enrollment and ``n`` passkey approvals, each authorizing."""
    from webauthn.helpers import bytes_to_base64url

    from alertengine.ledger.chain import GENESIS_HASH, EntryDraft, seal_many
    from alertengine.passkeys.binding import approval_challenge
    from alertengine.policy import Policy

    origin = "https://ae.example.com"
    device = SoftAuthenticator(rp_id="ae.example.com", origin=origin, counter=1)
    cred = bytes_to_base64url(device.credential_id)
    version = Policy(require_passkey=True).version
    now = time.time()
    drafts = [
        EntryDraft(
            tenant_id="acme", kind="passkey", actor="person:alice", timestamp=now,
            decision="enrolled", policy_version=version,
            data={"person": "alice", "credential_id": cred,
                  "public_key_cose": bytes_to_base64url(device.cose_key()), "sign_count": 1,
                  "rp_id": "ae.example.com", "origin": origin},
        )
    ]  # fmt: skip
    for k in range(n):
        incident, jti = f"inc-{k}", f"jti-{k}"
        challenge = approval_challenge(tenant="acme", incident=incident, action="restart",
                                       jti=jti, policy_version=version, person="alice")  # fmt: skip
        a = device.get(challenge)
        proof = {"person": "alice", "action": "restart", "credential_id": cred,
                 "authenticator_data": a["response"]["authenticatorData"],
                 "client_data_json": a["response"]["clientDataJSON"],
                 "signature": a["response"]["signature"], "user_handle": None,
                 "sign_count": device.counter}  # fmt: skip
        drafts.append(EntryDraft(
            tenant_id="acme", kind="approval", actor="engineer:web:alice", timestamp=now,
            incident_id=incident, stage="VALIDATED", decision="approve", policy_version=version,
            data={"jti": jti, "via": "web", "recipient": "engineer:web:alice", "passkey": proof},
        ))  # fmt: skip
        drafts.append(EntryDraft(
            tenant_id="acme", kind="transition", actor="engineer:web:alice", timestamp=now,
            incident_id=incident, stage="AUTHORIZED", decision="approve",
            policy_version=version, data={"jti": jti, "action": "restart"},
        ))  # fmt: skip
    with open(path, "w", encoding="utf-8") as f:
        for e in seal_many(drafts, 0, GENESIS_HASH):
            f.write(e.to_json() + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["memory", "sqlite"], default="sqlite")
    ap.add_argument("--confirms", type=int, default=300)
    ap.add_argument("--approvals", type=int, default=10_000)
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--db", default="", help=argparse.SUPPRESS)
    ap.add_argument("--pem", default="", help=argparse.SUPPRESS)
    ap.add_argument("--cred", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.backend, args.serve, args.db, args.confirms, args.pem, args.cred))
        return
    import socket

    from cryptography.hazmat.primitives import serialization

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    device = SoftAuthenticator(origin=f"http://localhost:{port}", counter=1)
    pem = device.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--backend", args.backend, "--serve", str(port),
             "--db", str(Path(tmp) / "bench.db"), "--confirms", str(args.confirms),
             "--pem", pem, "--cred", device.credential_id.hex()],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            links = json.loads(proc.stdout.readline())
            lat = asyncio.run(confirm_latency(port, links, device))
        finally:
            proc.terminate()
            proc.wait(10)
        export = Path(tmp) / "export.jsonl"
        t0 = time.perf_counter()
        audit_export(args.approvals, export)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = subprocess.run(
            [str(Path(sys.executable).parent / "alertengine"), "ledger", "verify", "--approvals",
             "--file", str(export)],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        cli_wall = time.perf_counter() - t0
        if run.returncode != 0:
            raise SystemExit(f"FAILED: verify --approvals: {run.stdout}{run.stderr}")
        from alertengine.ledger.approvals import audit, read_export

        with open(export, encoding="utf-8") as f:
            entries = list(read_export(f))
        t0 = time.perf_counter()
        report = audit(entries)["acme"]
        core = time.perf_counter() - t0
        assert report.ok and report.proven == args.approvals, report
    ms = {k: [x * 1000 for x in v] for k, v in lat.items()}
    print(f"backend={args.backend} confirms={args.confirms} one at a time (each authorizes)")
    for name, label in (("passkey", "confirm with passkey"), ("plain", "confirm, bearer link"),
                        ("options", "passkey-options POST")):  # fmt: skip
        v = ms[name]
        print(f"  {label:22s} p50={pct(v, 0.5):.1f} ms  p99={pct(v, 0.99):.1f} ms")
    print(f"  passkey / bearer p50 ratio: {pct(ms['passkey'], 0.5) / pct(ms['plain'], 0.5):.2f}")
    print(f"ledger verify --approvals --file: {args.approvals:,} approvals "
          f"({report.entries:,} entries) in {cli_wall:.2f} s wall (CLI, incl. start-up); "
          f"in-process {core:.2f} s = {core / args.approvals * 1e3:.3f} ms per approval "
          f"(export built in {built:.1f} s)")  # fmt: skip
    print(run.stdout.strip())


if __name__ == "__main__":
    main()
