"""OpenAPI operations and auth schemes of person sign-in (merged into ``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
JSON = "application/json"
HTML = "text/html"
FORM = "application/x-www-form-urlencoded"
TENANT_AUTH: list[dict[str, list[str]]] = [
    {"tenantKey": []},
    {"tenantKeyHeader": []},
    {"adminKey": []},
]
PERSON_AUTH: list[dict[str, list[str]]] = [{"personToken": []}]
ERROR: Schema = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    "required": ["error"],
}
OBJECT: Schema = {"type": "object", "additionalProperties": True}

SIGNIN_SCHEMES: dict[str, Schema] = {
    "personToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A person token (`aep_…`) from `alertengine person login`: issued once "
        "after the person confirmed the sign-in from their own channel; stored only as a hash; "
        "expires (30 days) and is revocable. A tenant or admin key names no person: 403.",
    },
    "signinLink": {
        "type": "apiKey",
        "in": "query",
        "name": "c",
        "description": "The one-time code of a sign-in link sent to the person's channels. "
        "GET only shows the request; POST (form field `c`) confirms or denies it, once.",
    },
}

PENDING: Schema = {
    "type": "object",
    "properties": {
        "device_code": {"type": "string", "description": "Secret: poll with it."},
        "user_code": {"type": "string", "description": "Show it: the person's page shows it."},
        "person": {"type": "string"},
        "person_name": {"type": "string"},
        "sent_to": {"type": "array", "items": {"type": "string"}},
        "expires_at": {"type": "number"},
        "interval_s": {"type": "number"},
    },
    "required": ["device_code", "user_code", "person", "sent_to", "expires_at"],
}


def _json(schema: Schema, doc: str) -> Schema:
    return {"description": doc, "content": {JSON: {"schema": schema}}}


def _html(doc: str) -> Schema:
    return {"description": doc, "content": {HTML: {"schema": {"type": "string"}}}}


def _errors(**codes: str) -> dict[str, Schema]:
    return {c.removeprefix("e"): _json(ERROR, why) for c, why in codes.items()}


def _body(schema: Schema, media: str = JSON) -> Schema:
    return {"required": True, "content": {media: {"schema": schema}}}


def _op(summary: str, responses: dict[str, Schema], security: Any, **extra: Any) -> Schema:
    return {
        "summary": summary,
        "responses": responses,
        "security": security,
        "tags": ["people"],
        **extra,
    }


SESSION: list[dict[str, list[str]]] = [{"dashboardSession": []}]
PAGE: dict[str, Schema] = {
    "200": _html("The page."),
    "303": {"description": "Not signed in: redirect to /dashboard/signin (or done: onwards)."},
}
CSRF_ONLY: Schema = {"type": "object", "properties": {"csrf": {"type": "string"}}}
FORM_ERRORS = {
    "e403": "Cross-site, no CSRF token, or no person (ledgered).",
    "e413": "Form too large.",
    "e415": "Send the form.",
}


def _dashboard(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {**_op(summary, responses, SESSION, **extra), "tags": ["dashboard"]}


def _form(schema: Schema) -> Schema:
    return _body(schema, FORM)


def dashboard_operations() -> dict[str, dict[str, Schema]]:
    return {
        "/dashboard/person": {
            "get": _dashboard("Act as a person: choose one, or see the pending request", PAGE)
        },
        "/dashboard/person/signin": {
            "post": _dashboard(
                "Ask to act as a person: a one-time link goes to their channels (ledgered)",
                {
                    **PAGE,
                    "404": _html("No such person."),
                    "429": _html("Rate-limited."),
                    **_errors(**FORM_ERRORS),
                },
                requestBody=_form(
                    {
                        "type": "object",
                        "properties": {"csrf": {"type": "string"}, "person": {"type": "string"}},
                        "required": ["csrf", "person"],
                    }
                ),
            )
        },
        "/dashboard/person/poll": {
            "post": _dashboard(
                "Finish the sign-in once the person confirmed (JSON with Accept: "
                "application/json; the session then names the person)",
                {
                    **PAGE,
                    "202": _json(OBJECT, "`{status: pending}`."),
                    "409": _html("Nothing pending, or already issued."),
                    "410": _html("Expired."),
                    **_errors(**FORM_ERRORS),
                },
                requestBody=_form(CSRF_ONLY),
            )
        },
        "/dashboard/person/passkey/options": {
            "post": _dashboard(
                "WebAuthn request options for the chosen person's passkeys (a challenge bound "
                "to this sign-in)",
                {
                    "200": _json(OBJECT, "`{options: <JSON text>, nonce}`."),
                    "409": _json(ERROR, "The person has no passkey enrolled."),
                    **_errors(**FORM_ERRORS),
                },
                requestBody=_form(
                    {
                        "type": "object",
                        "properties": {"csrf": {"type": "string"}, "person": {"type": "string"}},
                        "required": ["csrf", "person"],
                    }
                ),
            )
        },
        "/dashboard/person/passkey/finish": {
            "post": _dashboard(
                "The person's passkey assertion: the session then names them (ledgered)",
                {
                    "200": _json(OBJECT, "`{status: confirmed, person, name}`."),
                    **_errors(
                        e400="Unknown or expired challenge (ledgered).",
                        e403="Wrong person's passkey, bad signature, no user verification, "
                        "cloned counter, or no CSRF token (ledgered).",
                        e409="Challenge already used (ledgered).",
                    ),
                },
                requestBody=_form(
                    {
                        "type": "object",
                        "properties": {
                            "csrf": {"type": "string"},
                            "nonce": {"type": "string"},
                            "assertion": {
                                "type": "string",
                                "description": "The PublicKeyCredential as JSON, binary "
                                "fields base64url.",
                            },
                        },
                        "required": ["csrf", "nonce", "assertion"],
                    }
                ),
            )
        },
        "/dashboard/person/stop": {
            "post": _dashboard(
                "Stop acting as the person (the tenant session stays)",
                {"303": {"description": "Done."}, **_errors(**FORM_ERRORS)},
                requestBody=_form(CSRF_ONLY),
            )
        },
        "/dashboard/incidents/{incident_id}/ack": {
            "post": _dashboard(
                "Acknowledge (\"I'm on it\") as the session's person; the page shows the result",
                {**PAGE, **_errors(**FORM_ERRORS, e503="Nothing can be recorded now.")},
                requestBody=_form(CSRF_ONLY),
                parameters=[
                    {
                        "name": "incident_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "Incident id.",
                    }
                ],
            )
        },
    }


def signin_operations() -> dict[str, dict[str, Schema]]:
    bad = {"e400": "Malformed input: the reason is in `error`.", "e401": "No valid key."}
    return {
        "/people/signin": {
            "post": _op(
                "Ask to sign in as a person: a one-time link goes to their channels",
                {
                    "201": _json(PENDING, "Pending: show `user_code`, poll with `device_code`."),
                    **_errors(
                        **bad,
                        e404="No such person in this tenant (ledgered).",
                        e409="The person has no channel a link can reach (ledgered).",
                        e429="One sign-in already waits for them, or too many (ledgered).",
                    ),
                },
                TENANT_AUTH,
                requestBody=_body(
                    {
                        "type": "object",
                        "properties": {
                            "person": {"type": "string"},
                            "client": {"enum": ["cli", "api"]},
                        },
                        "required": ["person"],
                        "additionalProperties": False,
                    }
                ),
            )
        },
        "/people/signin/poll": {
            "post": _op(
                "Poll a sign-in: pending, then the person token exactly once",
                {
                    "200": _json(OBJECT, "`{status: confirmed, token, person, expires_at}`."),
                    "202": _json(OBJECT, "`{status: pending}`: poll again."),
                    **_errors(
                        **bad,
                        e403="Denied by the person, or another tenant's code (ledgered).",
                        e404="Unknown device code (ledgered).",
                        e409="The token was already issued: device code reused (ledgered).",
                        e410="The request expired unanswered (ledgered).",
                    ),
                },
                TENANT_AUTH,
                requestBody=_body(
                    {
                        "type": "object",
                        "properties": {"device_code": {"type": "string"}},
                        "required": ["device_code"],
                    }
                ),
            )
        },
        "/people/signin/confirm": {
            "get": _op(
                "The person's page: who asks, and the code (changes nothing)",
                {"200": _html("The request and two buttons."), "404": _html("Unknown link.")},
                [{"signinLink": []}],
                parameters=[
                    {
                        "name": "c",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The link's one-time code.",
                    }
                ],
            ),
            "post": _op(
                "The person confirms (or denies) the sign-in, once",
                {
                    "200": _html("Confirmed or denied."),
                    "403": _html("The person was removed (ledgered)."),
                    "404": _html("Unknown or forged link (ledgered)."),
                    "409": _html("Already used (ledgered)."),
                    "410": _html("Expired (ledgered)."),
                    **_errors(e400="decision must be confirm or deny.", e415="Send the form."),
                    "503": _html("Nothing can be recorded now."),
                },
                [{"signinLink": []}],
                requestBody=_body(
                    {
                        "type": "object",
                        "properties": {
                            "c": {"type": "string"},
                            "decision": {"enum": ["confirm", "deny"]},
                        },
                        "required": ["c", "decision"],
                    },
                    FORM,
                ),
            ),
        },
        "/people/signin/token": {
            "delete": _op(
                "Log out: revoke the presented person token (ledgered)",
                {
                    "200": _json(OBJECT, "`{revoked, person, tenant_id}`."),
                    **_errors(e401="No valid person token.", e403="A key, not a person token."),
                },
                PERSON_AUTH,
            )
        },
        "/people/whoami": {
            "get": _op(
                "Who the person token names",
                {
                    "200": _json(OBJECT, "`{tenant_id, person, name, actor, expires_at}`."),
                    **_errors(e401="No valid person token.", e403="A key, not a person token."),
                },
                PERSON_AUTH,
            )
        },
        "/people/{person_id}/tokens": {
            "delete": _op(
                "Revoke every person token of a person (the tenant's operator; ledgered)",
                {"200": _json(OBJECT, "`{person, revoked: count}`."), **_errors(**bad)},
                TENANT_AUTH,
                parameters=[
                    {
                        "name": "person_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The person.",
                    }
                ],
            )
        },
        "/incidents/{incident_id}/ack": {
            "post": _op(
                'Acknowledge ("I\'m on it") as the signed-in person; never approves',
                {
                    "200": _json(OBJECT, "`{ok: true, message, actor}`."),
                    "409": _json(
                        OBJECT,
                        "`{ok: false, message}`: not asked this round, or "
                        "nothing to acknowledge (ledgered).",
                    ),
                    **_errors(
                        e401="No valid person token (ledgered).",
                        e403="A tenant/admin key (names no person), or another tenant's "
                        "incident (ledgered).",
                        e404="No such incident.",
                        e503="Nothing can be recorded now.",
                    ),
                },
                PERSON_AUTH,
                parameters=[
                    {
                        "name": "incident_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "Incident id.",
                    }
                ],
            )
        },
        **dashboard_operations(),
    }
