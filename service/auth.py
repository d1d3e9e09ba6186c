"""API keys: stored as SHA-256 hashes, each mapped to a tenant; compared in constant time.

Keys are 256-bit random tokens, so a fast hash is enough (no password stretching needed), and
a leaked hash file does not reveal a usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from pathlib import Path

LOCAL_TENANT = "local"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "ld_" + secrets.token_urlsafe(32)


def add_key(path: Path, tenant: str) -> str:
    """Create a key for `tenant`, store its hash in `path` (JSON {hash: tenant}), return it."""
    key = new_key()
    keys = json.loads(path.read_text()) if path.exists() else {}
    keys[hash_key(key)] = tenant
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(keys, indent=1))
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


class KeyRing:
    """Hash → tenant, from settings and a keys file (re-read when it changes)."""

    def __init__(self, hashes: dict[str, str], path: Path | None) -> None:
        self._static = {h.lower(): t for h, t in hashes.items()}
        self._path = path
        self._from_file: dict[str, str] = {}
        self._mtime = 0.0
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._entries())

    def tenant_for(self, key: str) -> str | None:
        wanted = hash_key(key)
        found = None
        # Every entry is compared, matched or not: the time taken does not depend on which.
        for stored, tenant in self._entries().items():
            if hmac.compare_digest(stored, wanted):
                found = tenant
        return found

    def _entries(self) -> dict[str, str]:
        now = time.monotonic()
        if self._path is not None and now - self._checked > 2.0:
            with self._lock:
                self._checked = now
                mtime = self._path.stat().st_mtime if self._path.exists() else 0.0
                if mtime != self._mtime:
                    self._mtime = mtime
                    self._from_file = json.loads(self._path.read_text()) if mtime else {}
        return self._static | self._from_file
