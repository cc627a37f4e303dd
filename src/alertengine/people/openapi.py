"""OpenAPI operations of the dashboard's People page (mounted by people/dashboard.py)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
FORM = "application/x-www-form-urlencoded"

_HTML_PAGE: dict[str, Schema] = {
    "200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
    "303": {"description": "Not signed in: redirect to /dashboard/signin."},
}
_FORM_ANSWERS: dict[str, Schema] = {
    "303": {"description": "Done: back to the People page."},
    "400": {"description": "Bad input: the page says why, with the CLI's words."},
    "403": {"description": "Another tenant, a missing CSRF token or a cross-site form."},
    "404": {"description": "No such person in this tenant."},
    "413": {"description": "Form too large."},
    "415": {"description": "Not a form."},
}


def _form(summary: str, fields: dict[str, str], required: list[str]) -> Schema:
    schema: Schema = {
        "type": "object",
        "properties": {
            "csrf": {"type": "string", "description": "The page's CSRF token."},
            **{k: {"type": "string", "description": d} for k, d in fields.items()},
        },
        "required": ["csrf", *required],
    }
    return {
        "summary": summary,
        "responses": _FORM_ANSWERS,
        "requestBody": {"required": True, "content": {FORM: {"schema": schema}}},
    }


def people_operations() -> dict[str, dict[str, Schema]]:
    channel = {
        "person": "Person id.",
        "kind": "telegram | whatsapp | slack | web | webhook | voice",
        "address": "Where messages go (chat id, E.164 number, Slack user, e-mail, URL).",
        "user_id": "How the channel names the person when they act, if not the address.",
    }
    return {
        "/dashboard/people": {
            "get": {
                "summary": "The tenant's people, their channels (masked) and reachability",
                "responses": _HTML_PAGE,
            },
            "post": _form(
                "Add a person (ledgered with the session's actor)",
                {
                    "person": "Person id.",
                    "name": "Display name.",
                    "github": "GitHub logins, comma-separated.",
                    "kind": "Optional first channel's kind.",
                    "address": "Optional first channel's address.",
                    "user_id": "Optional first channel's user id.",
                },
                ["person"],
            ),
        },
        "/dashboard/people/remove": {
            "post": _form("Remove a person (ledgered)", {"person": "Person id."}, ["person"])
        },
        "/dashboard/people/channels": {
            "post": _form("Add a channel to a person (ledgered)", channel, ["person", "kind"])
        },
        "/dashboard/people/channels/remove": {
            "post": _form(
                "Remove a channel from a person (ledgered)",
                {
                    "person": "Person id.",
                    "kind": "Channel kind.",
                    "ref": "The page's keyed reference to the channel.",
                    "address": "Or the address, typed.",
                },
                ["person", "kind"],
            )
        },
    }
