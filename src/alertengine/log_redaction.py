"""Keep secrets that travel in URLs out of the process log.

httpx logs every request at INFO as ``HTTP Request: POST https://host/path?query "HTTP/1.1
200 OK"``. Recovery webhooks, Slack incoming webhooks and the Telegram Bot API all carry
credentials in the path or the query string, so a filter on httpx's logger rewrites every URL
in those records to its scheme and host (and port): enough to see which service answered
what, never the secret. The executor and the ledger already name only the host.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

import httpx

#: The loggers that print request URLs (httpcore logs hosts and ports only, but is cheap to cover).
LOGGERS = ("httpx", "httpcore")
_URL_IN_TEXT = re.compile(r"\bhttps?://[^\s\"'<>]+", re.IGNORECASE)


def host_only(url: str | httpx.URL) -> str:
    """``https://hooks.example.com:8443/x?token=s`` -> ``https://hooks.example.com:8443``."""
    try:
        parts = urlsplit(str(url))
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # an unparsable port: say nothing rather than too much
        return "<url>"
    host = parts.hostname or "?"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}" if parts.scheme else host


def _scrub(value: object) -> object:
    if isinstance(value, httpx.URL):
        return host_only(value)
    if isinstance(value, str) and "://" in value:
        return _URL_IN_TEXT.sub(lambda m: host_only(m.group(0)), value)
    return value


class HostOnlyURLs(logging.Filter):
    """Rewrites URLs in a record's message and arguments to scheme://host[:port]."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _scrub(v) for k, v in record.args.items()}
        return True


_FILTER = HostOnlyURLs()


def install_url_redaction() -> None:
    """Idempotent; called wherever the orchestrator builds its HTTP client or its logging."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
