"""The dashboard's state-changing forms: one guard for every POST that is not sign-in.

A form is accepted only when it comes from our own pages: a cross-site request is refused by
``Sec-Fetch-Site``/``Origin`` (as sign-in does), and the form must carry a token bound to the
session cookie (HMAC with a key derived from the session key), so a request without the
page's token is refused (403). The session cookie is ``SameSite=Strict`` on top of that.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request

SESSION_COOKIE = "ae_dashboard"
CSRF_LABEL = b"alertengine/dashboard-csrf/v1"


def _same_origin(request: Request) -> bool:
    from alertengine.orchestrator.dashboard import _same_origin as same  # one rule for all forms

    return same(request)


class FormGuard:
    """Issues the page's CSRF token and reads a form only when it passes every check."""

    def __init__(self, session_key: bytes, *, max_bytes: int, max_fields: int) -> None:
        self._key = hmac.new(session_key, CSRF_LABEL, "sha256").digest()
        self.max_bytes = max_bytes
        self.max_fields = max_fields

    def token(self, request: Request) -> str:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    async def read(self, request: Request) -> dict[str, str]:
        """The form's fields (first value of each), or HTTP 403/413/415 saying why not."""
        if not _same_origin(request):
            raise HTTPException(403, "cross-site form refused")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise HTTPException(413, "form too large")
        if "form" not in request.headers.get("content-type", ""):
            raise HTTPException(415, "send the form (application/x-www-form-urlencoded)")
        form = await request.form(max_files=0, max_fields=self.max_fields)
        given = str(form.get("csrf") or "")
        if not hmac.compare_digest(given.encode(), self.token(request).encode()):
            raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page")
        return {k: str(v) for k, v in form.items()}
