"""The orchestrator's HTTP API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written out by hand, operation by operation, because the routes are plain Starlette handlers
with no models to introspect; ``openapi_document`` keeps only the paths the running app really
mounts (Telegram's webhook exists only when configured), and a test fails when a mounted route
has no operation here, so the document cannot silently fall behind the code.

Auth schemes are the ones the handlers check: a tenant API key (``Authorization: Bearer`` or
``X-API-Key``), the admin key (same headers, plus ``?tenant=``), an approval-link token,
Telegram's secret-token header, Twilio's and Slack's request signatures, GitHub's body
signature, and the dashboard's session cookie.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from alertengine.oncall.openapi import oncall_operations
from alertengine.orchestrator.http import BODY_LIMITS, DEFAULT_BODY_LIMIT
from alertengine.people.openapi import people_operations
from alertengine.people.signin_openapi import SIGNIN_SCHEMES, signin_operations

JSON = "application/json"
HTML = "text/html"
FORM = "application/x-www-form-urlencoded"

Schema = dict[str, Any]

ERROR: Schema = {
    "type": "object",
    "description": "Every refusal says why.",
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    "required": ["error"],
}
OBJECT: Schema = {"type": "object", "additionalProperties": True}

SECURITY_SCHEMES: dict[str, Schema] = {
    "tenantKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The tenant's API key (`alertengine tenant rotate-key T`). Acts for its "
        "own tenant only; another tenant's resource answers 403 and is ledgered.",
    },
    "tenantKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The tenant's API key, as a header instead of Authorization.",
    },
    "adminKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "ALERTENGINE_ADMIN_KEY. On tenant routes it must name the tenant with "
        "`?tenant=`.",
    },
    "twilioSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Twilio-Signature",
        "description": "Base64 HMAC-SHA1 with TWILIO_AUTH_TOKEN over the public URL "
        "(orchestrator.base_url + path + query) and the POST parameters sorted by name "
        "(name then value). Anything else: 403, ledgered.",
    },
    "slackSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Slack-Signature",
        "description": "`v0=` + hex HMAC-SHA256 with SLACK_SIGNING_SECRET of "
        '`"v0:" + X-Slack-Request-Timestamp + ":" + raw body` (the timestamp header, Unix '
        "seconds, must be within 300 s of now). Anything else: 401, ledgered.",
    },
    "approvalToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "A single-use signed approval link (JWT HS256) bound to one approver. "
        "GET only previews; POST /action/recover/confirm redeems it.",
    },
    "telegramSecret": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Telegram-Bot-Api-Secret-Token",
        "description": "The secret given to Telegram's setWebhook (TELEGRAM_WEBHOOK_SECRET).",
    },
    "githubSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Hub-Signature-256",
        "description": "`sha256=` + hex HMAC-SHA256 of the raw body with the tenant's GitHub "
        "webhook secret (the tenant's `github_secret_env`).",
    },
    "enrollmentToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "A single-use, short-lived passkey enrollment link "
        "(`alertengine person enroll`); in the JSON body on POST.",
    },
    "dashboardSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "ae_dashboard",
        "description": "Signed session cookie set by POST /dashboard/signin.",
    },
    **SIGNIN_SCHEMES,
}

TENANT_AUTH: list[dict[str, list[str]]] = [
    {"tenantKey": []},
    {"tenantKeyHeader": []},
    {"adminKey": []},
]


def _param(name: str, where: str, schema: Schema, doc: str, required: bool = False) -> Schema:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": doc}


TENANT_PARAM = _param(
    "tenant", "query", {"type": "string"}, "Which tenant (required with the admin key)."
)


def _json(schema: Schema, doc: str) -> Schema:
    return {"description": doc, "content": {JSON: {"schema": schema}}}


def _html(doc: str) -> Schema:
    return {"description": doc, "content": {HTML: {"schema": {"type": "string"}}}}


def _errors(*codes: int) -> dict[str, Schema]:
    reasons = {
        400: "Malformed input: the reason is in `error`.",
        401: "No valid credential.",
        403: "The credential may not touch this tenant's resource (ledgered).",
        404: "No such resource.",
        405: "Method not allowed.",
        409: "Verification failed.",
        410: "The link is expired or used.",
        413: "Body larger than this route's limit.",
        415: "Wrong Content-Type.",
        503: "Ledger or state store unavailable; nothing was changed (see Retry-After).",
    }
    return {str(c): _json(ERROR, reasons[c]) for c in codes}


def _limit(path: str) -> str:
    return f" Body limit: {BODY_LIMITS.get(path, DEFAULT_BODY_LIMIT)} bytes (413 past it)."


INCIDENT: Schema = {
    "type": "object",
    "properties": {
        "tenant_id": {"type": "string"},
        "incident_id": {"type": "string"},
        "service": {"type": "string"},
        "stage": {"type": "string"},
        "open": {"type": "boolean"},
        "opened_at": {"type": "number"},
        "updated_at": {"type": "number"},
        "history": {"type": "array", "items": OBJECT},
    },
    "additionalProperties": True,
}
ALERTMANAGER: Schema = {
    "type": "object",
    "description": "Alertmanager's webhook payload (version 4).",
    "properties": {
        "version": {"type": "string"},
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupKey": {"type": "string"},
        "alerts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "status": {"type": "string", "enum": ["firing", "resolved"]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                    "startsAt": {"type": "string"},
                    "endsAt": {"type": "string"},
                    "generatorURL": {"type": "string"},
                    "fingerprint": {"type": "string"},
                },
                "required": ["labels"],
            },
        },
    },
    "required": ["alerts"],
}
HEALTH: Schema = {
    "type": "object",
    "description": "An SDK `GET /health/alerts` answer (fastapi-alertengine compatible).",
    "properties": {
        "service": {"type": "string"},
        "status": {"type": "string"},
        "health_score": OBJECT,
        "metrics": OBJECT,
        "alerts": {"type": "array", "items": OBJECT},
    },
    "additionalProperties": True,
}
TOKEN_BODY: Schema = {
    "type": "object",
    "properties": {"token": {"type": "string", "description": "The link's token."}},
    "required": ["token"],
}
CONFIRM_RESULT: Schema = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "status": {"type": "integer"},
        "message": {"type": "string"},
        "problem": {"type": ["string", "null"]},
        "authorized": {"type": "boolean"},
    },
    "additionalProperties": True,
}
PAGE_RESULT = {
    "description": "The outcome (HTML page, or JSON with `Accept: application/json`).",
    "content": {HTML: {"schema": {"type": "string"}}, JSON: {"schema": CONFIRM_RESULT}},
}
TELEGRAM_UPDATE: Schema = {
    "type": "object",
    "description": "A Telegram Update; only `callback_query` (a button press) is acted on.",
    "properties": {
        "update_id": {"type": "integer"},
        "callback_query": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "from": {"type": "object", "properties": {"id": {"type": "integer"}}},
                "data": {"type": "string"},
            },
        },
    },
}
SIGNIN_FORM: Schema = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string", "description": "A tenant API key, or the admin key."},
        "tenant": {"type": "string", "description": "With the admin key: which tenant."},
    },
    "required": ["api_key"],
}
SIM_PARAMS = [
    _param("p95_ms", "query", {"type": "number"}, "Latency P95 to simulate (ms)."),
    _param("error_rate", "query", {"type": "number"}, "Error rate to simulate."),
    _param("sample_size", "query", {"type": "integer"}, "Requests in the window."),
]
DASHBOARD_PAGE = {
    "200": _html("The page."),
    "303": {"description": "Not signed in: redirect to /dashboard/signin."},
}


def _op(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {"summary": summary, "responses": responses, **extra}


def _operations() -> dict[str, dict[str, Schema]]:
    """Every operation the orchestrator can mount, by path then method."""
    read_errors = _errors(400, 401, 403, 503)
    return {
        "/healthz": {
            "get": _op(
                "Liveness and the orchestrator's mode",
                {
                    "200": _json(OBJECT, "`{ok, mode}`."),
                    "503": _json(OBJECT, "Not able to do its job (e.g. the ledger is down)."),
                },
                security=[],
                tags=["ops"],
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document", {"200": _json(OBJECT, "OpenAPI 3.1.")}, security=[], tags=["ops"]
            )
        },
        "/incidents": {
            "get": _op(
                "The tenant's incidents, newest first",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "tenant_id": {"type": "string"},
                                "incidents": {"type": "array", "items": INCIDENT},
                            },
                        },
                        "Incidents.",
                    ),
                    **read_errors,
                },
                parameters=[
                    TENANT_PARAM,
                    _param("open", "query", {"type": "boolean"}, "Only open incidents."),
                    _param(
                        "limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "Max."
                    ),
                ],
                security=TENANT_AUTH,
                tags=["tenant"],
            )
        },
        "/incidents/{incident_id}": {
            "get": _op(
                "One incident with its ledger timeline",
                {"200": _json(INCIDENT, "The incident."), **_errors(400, 401, 403, 404, 503)},
                parameters=[
                    _param("incident_id", "path", {"type": "string"}, "Incident id.", True),
                    TENANT_PARAM,
                ],
                security=TENANT_AUTH,
                tags=["tenant"],
            )
        },
        "/ledger": {
            "get": _op(
                "A page of the tenant's ledger entries",
                {"200": _json(OBJECT, "`{tenant_id, entries, next_after_seq}`."), **read_errors},
                parameters=[
                    TENANT_PARAM,
                    _param("after_seq", "query", {"type": "integer", "minimum": 0}, "Cursor."),
                    _param(
                        "limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "Max."
                    ),
                    _param("incident", "query", {"type": "string"}, "One incident's entries."),
                    _param("since", "query", {"type": "number"}, "Unix time, inclusive."),
                    _param("until", "query", {"type": "number"}, "Unix time."),
                ],
                security=TENANT_AUTH,
                tags=["tenant"],
            )
        },
        "/ledger/public-key": {
            "get": _op(
                "The verifier key the ledger's checkpoints are signed with (C2SP note vkey)",
                {"200": _json(OBJECT, "`{public_key, origin_prefix}`.")},
                security=[{}],
                tags=["ledger"],
            )
        },
        "/ledger/checkpoint": {
            "get": _op(
                "The tenant's tree head as a signed C2SP tlog-checkpoint note",
                {
                    "200": {
                        "description": "The signed note.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **read_errors,
                },
                parameters=[TENANT_PARAM],
                security=TENANT_AUTH,
                tags=["ledger"],
            )
        },
        "/ledger/proof/inclusion": {
            "get": _op(
                "RFC 9162 inclusion proof of one entry, with the entry and the checkpoint",
                {
                    "200": _json(OBJECT, "`{proof, entry, checkpoint}`."),
                    **_errors(400, 401, 403, 404, 503),
                },
                parameters=[
                    TENANT_PARAM,
                    _param("seq", "query", {"type": "integer", "minimum": 1}, "The entry.", True),
                    _param(
                        "tree_size",
                        "query",
                        {"type": "integer", "minimum": 1},
                        "Prove against this tree size (default: the current one).",
                    ),
                ],
                security=TENANT_AUTH,
                tags=["ledger"],
            )
        },
        "/ledger/proof/consistency": {
            "get": _op(
                "RFC 9162 consistency proof between two tree sizes, with both checkpoints",
                {
                    "200": _json(OBJECT, "`{proof, old_checkpoint, checkpoint}`."),
                    **_errors(400, 401, 403, 404, 503),
                },
                parameters=[
                    TENANT_PARAM,
                    _param(
                        "from_size", "query", {"type": "integer", "minimum": 0}, "Older size.", True
                    ),
                    _param(
                        "to_size",
                        "query",
                        {"type": "integer", "minimum": 0},
                        "Newer size (default: the current one).",
                    ),
                ],
                security=TENANT_AUTH,
                tags=["ledger"],
            )
        },
        "/ledger/verify": {
            "get": _op(
                "Verify the tenant's hash chain and signed head",
                {
                    "200": _json(OBJECT, "Intact."),
                    **_errors(400, 401, 403, 409, 503),
                },
                parameters=[TENANT_PARAM],
                security=TENANT_AUTH,
                tags=["tenant"],
            )
        },
        "/__alertengine/status": {
            "get": _op(
                "The orchestrator's mode, components, leases and loop stats (admin)",
                {"200": _json(OBJECT, "Status."), **_errors(401, 403, 503)},
                security=[{"adminKey": []}, {"tenantKey": []}],
                tags=["admin"],
            )
        },
        "/metrics": {
            "get": _op(
                "The orchestrator's counters for Prometheus (admin): refusals by route and reason",
                {
                    "200": {
                        "description": "Prometheus text exposition 0.0.4, or OpenMetrics when "
                        "the scrape's `Accept` asks for it.",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(401, 403),
                },
                description="`alertengine_refusals_total{tenant,route,reason,outcome}`: "
                "refusals that named nobody, `ledgered` (an entry each) or `coalesced` "
                "(counted into one summary entry per key and window); "
                "`alertengine_refusal_summaries_total`, `alertengine_refusals_pending`. "
                "This process's own counts.",
                security=[{"adminKey": []}, {"tenantKey": []}],
                tags=["admin"],
            )
        },
        "/intake/health": {
            "post": _op(
                "Push one /health/alerts answer for a target",
                {
                    "202": _json(OBJECT, "`{accepted, incident}`."),
                    **_errors(400, 401, 403, 404, 413, 415, 503),
                },
                description="The service comes from `?service=` or the body's `service`."
                + _limit("/intake/health"),
                parameters=[
                    TENANT_PARAM,
                    _param("service", "query", {"type": "string"}, "The target's service."),
                ],
                requestBody={"required": True, "content": {JSON: {"schema": HEALTH}}},
                security=TENANT_AUTH,
                tags=["intake"],
            )
        },
        "/intake/alertmanager": {
            "post": _op(
                "Alertmanager webhook receiver",
                {
                    "202": _json(OBJECT, "`{accepted, ignored}`."),
                    **_errors(400, 401, 403, 413, 415, 503),
                },
                description="Point an Alertmanager `webhook_config` here with bearer auth."
                + _limit("/intake/alertmanager"),
                parameters=[TENANT_PARAM],
                requestBody={"required": True, "content": {JSON: {"schema": ALERTMANAGER}}},
                security=TENANT_AUTH,
                tags=["intake"],
            )
        },
        "/action/recover": {
            "get": _op(
                "Preview an approval link (never changes anything)",
                {"200": _html("What approving would do."), **_errors(400, 401, 403, 410, 503)},
                parameters=[
                    _param("token", "query", {"type": "string"}, "The link's token.", True)
                ],
                security=[{"approvalToken": []}],
                tags=["approval"],
            )
        },
        "/action/recover/confirm": {
            "post": _op(
                "Redeem an approval link (once)",
                {
                    "200": PAGE_RESULT,
                    **_errors(400, 401, 403, 409, 410, 413),
                    "503": {
                        "description": "Approvals paused (EMERGENCY): nothing was changed; retry "
                        "after `Retry-After` seconds.",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {HTML: {"schema": {"type": "string"}}, JSON: {"schema": OBJECT}},
                    },
                },
                description="With an API key as well, the link must belong to that key's "
                "tenant." + _limit("/action/recover/confirm"),
                requestBody={
                    "required": True,
                    "content": {FORM: {"schema": TOKEN_BODY}, JSON: {"schema": TOKEN_BODY}},
                },
                security=[{}, {"tenantKey": []}],
                tags=["approval"],
            )
        },
        "/action/recover/passkey-options": {
            "post": _op(
                "WebAuthn request options bound to this approval (no side effects)",
                {
                    "200": _json(OBJECT, "PublicKeyCredentialRequestOptions JSON."),
                    **_errors(400, 401, 403, 410, 413),
                },
                description="The challenge is SHA-256 over (tenant, incident, action, the "
                "token's jti, policy version, approver)."
                + _limit("/action/recover/passkey-options"),
                requestBody={"required": True, "content": {JSON: {"schema": TOKEN_BODY}}},
                security=[{"approvalToken": []}],
                tags=["passkeys"],
            )
        },
        "/passkeys/enroll": {
            "get": _op(
                "Passkey enrollment page (shows whom the link enrolls; changes nothing)",
                {"200": _html("The enrollment page."), **_errors(400, 410)},
                parameters=[
                    _param("token", "query", {"type": "string"}, "The enrollment link's token.")
                ],
                security=[{"enrollmentToken": []}],
                tags=["passkeys"],
            )
        },
        "/passkeys/enroll/options": {
            "post": _op(
                "WebAuthn creation options for an enrollment link",
                {
                    "200": _json(OBJECT, "PublicKeyCredentialCreationOptions JSON."),
                    **_errors(400, 410, 413),
                },
                requestBody={"required": True, "content": {JSON: {"schema": TOKEN_BODY}}},
                security=[{"enrollmentToken": []}],
                tags=["passkeys"],
            )
        },
        "/passkeys/enroll/finish": {
            "post": _op(
                "Register the credential the browser created (the link is then used up)",
                {
                    "200": _json(OBJECT, "Enrolled (ledgered with the public key)."),
                    **_errors(400, 409, 410, 413),
                },
                requestBody={"required": True, "content": {JSON: {"schema": OBJECT}}},
                security=[{"enrollmentToken": []}],
                tags=["passkeys"],
            )
        },
        "/passkeys/passkeys.js": {
            "get": _op(
                "The passkey pages' script",
                {
                    "200": {
                        "description": "JavaScript.",
                        "content": {"text/javascript": {"schema": {"type": "string"}}},
                    }
                },
                security=[{}],
                tags=["passkeys"],
            )
        },
        "/telegram/webhook": {
            "post": _op(
                "Telegram Bot API webhook (in-chat Approve buttons)",
                {"200": _json(OBJECT, "Handled or ignored."), **_errors(400, 401, 413)},
                description=_limit("/telegram/webhook").strip(),
                requestBody={"required": True, "content": {JSON: {"schema": TELEGRAM_UPDATE}}},
                security=[{"telegramSecret": []}],
                tags=["webhooks"],
            )
        },
        "/twilio/whatsapp": {
            "post": _op(
                "Twilio WhatsApp webhook: a quick-reply press (Approve / Acknowledge / Details) "
                "or a typed reply",
                {
                    "200": {
                        "description": "TwiML `<Response><Message>` telling the sender what "
                        "happened.",
                        "content": {"application/xml": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 403, 409, 413, 415),
                },
                description="Twilio's form parameters (`MessageSid`, `From`, `Body`, "
                "`ButtonPayload`, `ButtonText`, …). A MessageSid seen before is a replay: 409, "
                "ledgered, no reply. Approve runs the same path as the Telegram button."
                + _limit("/twilio/whatsapp"),
                requestBody={"required": True, "content": {FORM: {"schema": OBJECT}}},
                security=[{"twilioSignature": []}],
                tags=["webhooks"],
            )
        },
        "/twilio/voice/gather": {
            "post": _op(
                "Twilio voice `<Gather>` action: pressing 1 acknowledges (never approves)",
                {
                    "200": {
                        "description": "TwiML `<Response><Say>`.",
                        "content": {"application/xml": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 403, 413, 415),
                },
                parameters=[_param("ref", "query", {"type": "string"}, "The call's link id.")],
                requestBody={"required": True, "content": {FORM: {"schema": OBJECT}}},
                security=[{"twilioSignature": []}],
                tags=["webhooks"],
            )
        },
        "/twilio/voice/status": {
            "post": _op(
                "Twilio call StatusCallback: the call's outcome is ledgered (`kind=call`)",
                {
                    "200": {
                        "description": "Empty TwiML.",
                        "content": {"application/xml": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 403, 413, 415),
                },
                parameters=[_param("ref", "query", {"type": "string"}, "The call's link id.")],
                requestBody={"required": True, "content": {FORM: {"schema": OBJECT}}},
                security=[{"twilioSignature": []}],
                tags=["webhooks"],
            )
        },
        "/slack/interactions": {
            "post": _op(
                "Slack Interactivity Request URL: an Approve / I'm on it button press",
                {
                    "200": {
                        "description": "Received; the presser is told what happened through "
                        "the press's `response_url` (an ephemeral message)."
                    },
                    **_errors(400, 401, 409, 413, 415),
                },
                description="Form field `payload`: Slack's `block_actions` JSON (`user.id`, "
                "`actions[0].action_id` `ae_approve` / `ae_ack`, `value` = the link id, "
                "`action_ts`, `response_url`). The presser must be a person of the link's "
                "tenant by Slack member id. A press seen before is a replay: 409, ledgered, no "
                "reply. Approve runs the same path as the Telegram button."
                + _limit("/slack/interactions"),
                requestBody={
                    "required": True,
                    "content": {
                        FORM: {
                            "schema": {
                                "type": "object",
                                "properties": {"payload": {"type": "string"}},
                                "required": ["payload"],
                            }
                        }
                    },
                },
                security=[{"slackSignature": []}],
                tags=["webhooks"],
            )
        },
        "/action/ack": {
            "get": _op(
                "The acknowledge page: one button (changes nothing)",
                {"200": _html("A form that POSTs the token.")},
                parameters=[
                    _param("token", "query", {"type": "string"}, "The link's token.", True)
                ],
                security=[{"approvalToken": []}],
                tags=["approval"],
            ),
            "post": _op(
                'Acknowledge ("I\'m on it"): escalation waits; nothing is authorized',
                {
                    "200": PAGE_RESULT,
                    **_errors(400, 401, 404, 409, 410, 413, 503),
                },
                description="The token names the person; it is not redeemed."
                + _limit("/action/ack"),
                requestBody={
                    "required": True,
                    "content": {FORM: {"schema": TOKEN_BODY}, JSON: {"schema": TOKEN_BODY}},
                },
                security=[{"approvalToken": []}],
                tags=["approval"],
            ),
        },
        "/commits/webhook": {
            "post": _op(
                "GitHub push webhook: recent commits for diagnosis",
                {
                    "200": _json(OBJECT, "`{stored}`."),
                    "202": _json(OBJECT, "Not a push: ignored."),
                    **_errors(400, 401, 413),
                },
                description="The signature is checked over the raw body before anything is "
                "parsed." + _limit("/commits/webhook"),
                parameters=[
                    _param("tenant", "query", {"type": "string"}, "Tenant.", True),
                    _param("service", "query", {"type": "string"}, "Service.", True),
                    _param("X-GitHub-Event", "header", {"type": "string"}, "push, ping, …"),
                ],
                requestBody={
                    "required": True,
                    "content": {
                        JSON: {"schema": OBJECT},
                        FORM: {
                            "schema": {
                                "type": "object",
                                "properties": {"payload": {"type": "string"}},
                            }
                        },
                    },
                },
                security=[{"githubSignature": []}],
                tags=["webhooks"],
            )
        },
        "/dashboard": {
            "get": _op("Redirect to /dashboard/", {"307": {"description": "Redirect."}})
        },
        "/dashboard/": {"get": _op("Incidents page", DASHBOARD_PAGE)},
        "/dashboard/signin": {
            "get": _op("Sign-in form", {"200": _html("The form.")}, security=[]),
            "post": _op(
                "Sign in with an API key; sets the session cookie",
                {
                    "303": {"description": "Signed in: redirect to /dashboard/."},
                    "401": _html("Key not accepted."),
                    **_errors(400, 403, 413, 415),
                },
                requestBody={"required": True, "content": {FORM: {"schema": SIGNIN_FORM}}},
                security=[],
            ),
        },
        "/dashboard/signout": {
            "post": _op("End the session", {"303": {"description": "Signed out."}}, security=[])
        },
        "/dashboard/incidents/{incident_id}": {
            "get": _op(
                "One incident's page",
                {**DASHBOARD_PAGE, **_errors(403, 404)},
                parameters=[
                    _param("incident_id", "path", {"type": "string"}, "Incident id.", True)
                ],
            )
        },
        "/dashboard/ledger": {"get": _op("Ledger status page", DASHBOARD_PAGE)},
        "/dashboard/simulator": {
            "get": _op(
                "Policy simulator page",
                {**DASHBOARD_PAGE, "400": _html("Bad input.")},
                parameters=SIM_PARAMS,
            )
        },
        "/dashboard/api/simulate": {
            "get": _op(
                "Policy simulator (JSON): what policy would decide for these numbers",
                {"200": _json(OBJECT, "Decision."), **_errors(400, 401)},
                parameters=SIM_PARAMS,
            )
        },
        **oncall_operations(),
        **people_operations(),
        **signin_operations(),
    }


def _dashboard_defaults(path: str, op: Schema) -> None:
    if path.startswith("/dashboard"):
        op.setdefault("security", [{"dashboardSession": []}])
        op.setdefault("tags", ["dashboard"])


def documented_paths() -> set[str]:
    return set(_operations())


def openapi_document(mounted: Iterable[str], *, version: str = "0.1.0") -> dict[str, Any]:
    """The document for the paths in ``mounted`` (the app's route paths)."""
    mounted = set(mounted)
    paths: dict[str, Any] = {}
    for path, ops in _operations().items():
        if path not in mounted:
            continue
        for method, op in ops.items():
            _dashboard_defaults(path, op)
            op["operationId"] = f"{method}_{_slug(path)}"
        paths[path] = ops
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AlertEngine orchestrator",
            "version": version,
            "description": "Tenant-scoped reads, health and Alertmanager intake, approval "
            "links, and provider webhooks. Errors are JSON `{error, status}` with a reason.",
        },
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES},
    }


def _slug(path: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "_", path).strip("_") or "root"
