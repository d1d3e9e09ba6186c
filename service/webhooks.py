"""Completion webhooks, signed the Standard Webhooks way, and kept off private networks.

One POST per call: retries belong to the Celery task that calls it (workers/tasks.py,
`deliver_webhook`), whose message survives an API or worker restart — never sleeps in a
request handler or a probe worker's training slot. Receivers dedupe on `webhook-id`, which is
the same for every try of one event.

Signature: `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, with
`webhook-id` and `webhook-timestamp` headers, as https://www.standardwebhooks.com describes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from service.errors import InvalidCallbackUrl
from service.settings import Settings

log = logging.getLogger(__name__)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = (
        base64.b64decode(secret.removeprefix("whsec_"))
        if secret.startswith("whsec_")
        else secret.encode()
    )
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def check_target(url: str, settings: Settings) -> None:
    """Refuse URLs that would make this service reach into private networks (SSRF)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCallbackUrl("callback_url must be an http(s) URL with a host")
    host = parts.hostname
    allowed = settings.webhook_allow_hosts
    if allowed and host not in allowed:
        raise InvalidCallbackUrl(
            f"callback_url host {host!r} is not in LOSSDOCTOR_WEBHOOK_ALLOW_HOSTS"
        )
    if settings.webhook_allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise InvalidCallbackUrl(f"callback_url host {host!r} does not resolve") from exc
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not ip.is_global:
            raise InvalidCallbackUrl(
                f"callback_url resolves to {ip}, a private, loopback or reserved address; "
                "set LOSSDOCTOR_WEBHOOK_ALLOW_PRIVATE=true to allow it"
            )


Delivery = Literal["delivered", "refused", "retry"]


def deliver(url: str, event: dict[str, Any], settings: Settings) -> Delivery:
    """POST the event once: "delivered" on 2xx, "refused" on a 4xx that a retry will not change,
    "retry" on network errors, 408, 429 and 5xx."""
    body = json.dumps(event).encode()
    msg_id = f"msg_{event['data']['id']}_{event['type']}"
    try:
        check_target(url, settings)  # again at delivery: DNS may have changed since
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        if settings.webhook_secret:
            headers["webhook-signature"] = sign(settings.webhook_secret, msg_id, timestamp, body)
        r = httpx.post(url, content=body, headers=headers, timeout=10, follow_redirects=False)
    except (httpx.HTTPError, InvalidCallbackUrl) as exc:
        log.warning("webhook %s failed: %s", url, exc)
        return "retry"
    if 200 <= r.status_code < 300:
        return "delivered"
    if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
        log.warning("webhook %s refused with %s; not retrying", url, r.status_code)
        return "refused"
    log.warning("webhook %s answered %s", url, r.status_code)
    return "retry"


def backoff(tries_done: int) -> float:
    """Seconds before the next try: 2, 4, 8, … capped at 10 minutes."""
    return float(min(600, 2 ** (tries_done + 1)))


def completion_event(doc: dict[str, Any]) -> dict[str, Any]:
    public = {k: v for k, v in doc.items() if not k.startswith("_")}
    return {"type": f"diagnosis.{doc['status']}", "timestamp": doc["updated_at"], "data": public}
