"""OpenAPI operations of the on-call routes (merged into ``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
JSON = "application/json"
AUTH: list[dict[str, list[str]]] = [{"tenantKey": []}, {"tenantKeyHeader": []}, {"adminKey": []}]
TENANT = {
    "name": "tenant",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "Which tenant (required with the admin key).",
}
ERROR: Schema = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    "required": ["error"],
}
OBJECT: Schema = {"type": "object", "additionalProperties": True}
MATCHER: Schema = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "op": {"enum": ["=", "!=", "=~", "!~"]},
                "value": {"type": "string"},
            },
            "required": ["name", "value"],
        },
        {"type": "string", "description": "name=value, name!=value, name=~re, name!~re"},
    ]
}
TIME: Schema = {"oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
SILENCE_BODY: Schema = {
    "type": "object",
    "properties": {
        "matchers": {"type": "array", "items": MATCHER, "minItems": 1},
        "starts_at": TIME,
        "ends_at": TIME,
        "duration_s": {"type": "number", "exclusiveMinimum": 0},
        "created_by": {"type": "string"},
        "comment": {"type": "string"},
    },
    "required": ["matchers", "created_by", "comment"],
}
SCHEDULE_BODY: Schema = {
    "type": "object",
    "description": "A schedule: {name, timezone, layers: [{name, people, every, start}], "
    "overrides: [{who, covers, start, end}]} (docs/oncall.md).",
    "properties": {
        "name": {"type": "string"},
        "timezone": {"type": "string"},
        "layers": {"type": "array", "items": OBJECT},
        "overrides": {"type": "array", "items": OBJECT},
    },
    "required": ["layers"],
}


def _json(schema: Schema, doc: str) -> Schema:
    return {"description": doc, "content": {JSON: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Schema]:
    return {str(c): _json(ERROR, "Refused: the reason is in `error`.") for c in codes}


def _op(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {
        "summary": summary,
        "responses": responses,
        "security": AUTH,
        "tags": ["oncall"],
        **extra,
    }


def _path(name: str, doc: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": doc,
    }


def _page(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    """A dashboard page: the session cookie's security is filled in by openapi.py."""
    return {"summary": summary, "responses": responses, **extra}


HTML_PAGE: dict[str, Schema] = {
    "200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
    "303": {"description": "Not signed in: redirect to /dashboard/signin."},
}
FORM_POST: dict[str, Schema] = {
    "303": {"description": "Done: back to the silences page."},
    **_errors(403, 413, 415),
}
SILENCE_FORM: Schema = {
    "type": "object",
    "properties": {
        "csrf": {"type": "string"},
        "matchers": {"type": "string", "description": "One matcher per line."},
        "hours": {"type": "number"},
        "created_by": {"type": "string"},
        "comment": {"type": "string"},
    },
    "required": ["csrf", "matchers", "hours", "created_by", "comment"],
}
FORM = "application/x-www-form-urlencoded"
OVERRIDE_FORM: Schema = {
    "type": "object",
    "properties": {
        k: {"type": "string"} for k in ("csrf", "schedule", "who", "covers", "start", "end")
    },
    "required": ["csrf", "schedule", "who", "start", "end"],
}


def oncall_operations() -> dict[str, dict[str, Schema]]:
    errors = _errors(400, 401, 403, 503)
    return {
        "/dashboard/oncall": {"get": _page("Who is on call, and the next 14 days", HTML_PAGE)},
        "/dashboard/oncall/overrides": {
            "post": _page(
                "Add an override to a schedule (form with the page's CSRF token; ledgered)",
                {
                    "303": {"description": "Done: back to the on-call page."},
                    "400": {"description": "Bad input: the page says why."},
                    **_errors(403, 413, 415),
                },
                requestBody={"required": True, "content": {FORM: {"schema": OVERRIDE_FORM}}},
            )
        },
        "/dashboard/silences": {
            "get": _page("Silences and the form to create one", HTML_PAGE),
            "post": _page(
                "Create a silence (form with the page's CSRF token; ledgered)",
                {**FORM_POST, "400": {"description": "Bad input: the page says why."}},
                requestBody={"required": True, "content": {FORM: {"schema": SILENCE_FORM}}},
            ),
        },
        "/dashboard/silences/{silence_id}/expire": {
            "post": _page(
                "Expire a silence now (form with the page's CSRF token; ledgered)",
                {**FORM_POST, **_errors(404)},
                parameters=[_path("silence_id", "Silence id.")],
                requestBody={
                    "required": True,
                    "content": {
                        FORM: {
                            "schema": {"type": "object", "properties": {"csrf": {"type": "string"}}}
                        }
                    },
                },
            )
        },
        "/oncall": {
            "get": _op(
                "Who is on call (at ?at=, default now) and the next 14 days of shifts",
                {"200": _json(OBJECT, "`{tenant_id, at, on_call, schedules, shifts}`."), **errors},
                parameters=[
                    TENANT,
                    {
                        "name": "at",
                        "in": "query",
                        "required": False,
                        "schema": TIME,
                        "description": "ISO 8601 or epoch seconds.",
                    },
                ],
            )
        },
        "/oncall/schedules/{name}": {
            "put": _op(
                "Add or replace a schedule (ledgered, kind=schedule)",
                {
                    "200": _json(OBJECT, "`{changed, schedule}`."),
                    **_errors(400, 401, 403, 413, 415, 503),
                },
                parameters=[_path("name", "Schedule name."), TENANT],
                requestBody={"required": True, "content": {JSON: {"schema": SCHEDULE_BODY}}},
            ),
            "delete": _op(
                "Remove a schedule (ledgered)",
                {"200": _json(OBJECT, "`{removed}`."), **_errors(400, 401, 403, 404, 503)},
                parameters=[_path("name", "Schedule name."), TENANT],
            ),
        },
        "/silences": {
            "get": _op(
                "The tenant's silences with their state (pending, active, expired)",
                {"200": _json(OBJECT, "`{tenant_id, silences}`."), **errors},
                parameters=[TENANT],
            ),
            "post": _op(
                "Create a silence (ledgered, kind=silence)",
                {"201": _json(OBJECT, "The silence."), **_errors(400, 401, 403, 413, 415, 503)},
                parameters=[TENANT],
                requestBody={"required": True, "content": {JSON: {"schema": SILENCE_BODY}}},
            ),
        },
        "/silences/{silence_id}": {
            "get": _op(
                "One silence",
                {"200": _json(OBJECT, "The silence."), **_errors(400, 401, 403, 404, 503)},
                parameters=[_path("silence_id", "Silence id."), TENANT],
            ),
            "delete": _op(
                "Expire a silence now (?purge=true also removes its record); ledgered",
                {
                    "200": _json(OBJECT, "The expired silence, or `{deleted}`."),
                    **_errors(400, 401, 403, 404, 503),
                },
                parameters=[
                    _path("silence_id", "Silence id."),
                    TENANT,
                    {
                        "name": "purge",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean"},
                        "description": "Remove the record too.",
                    },
                ],
            ),
        },
    }
