"""API keys: where they come from, and the constant-time check of a request's key.

Keys come from ``MLPLUG_API_KEYS`` (comma-separated) and from ``MLPLUG_API_KEYS_FILE``, a
file or a directory such as a mounted Kubernetes Secret (one key per file; ``..data`` and
other dot entries that the kubelet creates are skipped). A request presents its key as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Keys are never logged, and the
check compares the presented key with every configured key, so its timing says nothing
about which key, or which prefix, was close.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from mlplug.errors import MlplugError
from mlplug.serving.config import ServeSettings

log = logging.getLogger(__name__)

#: Shorter keys are refused: they can be guessed.
MIN_KEY_LENGTH = 16
#: Values that appear in examples and templates; a server must not run with them.
PLACEHOLDER_KEYS = frozenset({"changeme", "change-me", "replace-me", "replaceme", "secret", "example"})

BEARER = b"bearer "
AUTHORIZATION = b"authorization"
X_API_KEY = b"x-api-key"

#: OpenAPI security schemes, so that /docs offers "Authorize" and clients see both forms.
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
SECURITY_REQUIREMENT = [{"bearer": []}, {"apiKey": []}]


class AuthConfigError(MlplugError):
    """No usable API keys and no ``--insecure``, or a key that must not be used."""


def read_key_source(path: Path) -> list[str]:
    """Keys in a file (one per line or comma-separated) or in a directory's files."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise AuthConfigError(f"MLPLUG_API_KEYS_FILE {path} is neither a file nor a directory")
    keys: list[str] = []
    for file in files:
        keys.extend(_split(file.read_text(encoding="utf-8")))
    return keys


def _split(text: str) -> list[str]:
    return [k.strip() for line in text.splitlines() for k in line.split(",") if k.strip()]


def _check(keys: Iterable[str]) -> list[bytes]:
    checked = []
    for i, key in enumerate(keys, 1):
        # Name the key by position only: the key itself must not reach a log.
        if key.lower() in PLACEHOLDER_KEYS:
            raise AuthConfigError(f"API key #{i} is a placeholder value; generate a random key")
        if len(key) < MIN_KEY_LENGTH:
            raise AuthConfigError(f"API key #{i} is shorter than {MIN_KEY_LENGTH} characters")
        checked.append(key.encode())
    return checked


class ApiKeys:
    """The configured keys. ``enabled`` is False only when running with ``--insecure``."""

    def __init__(self, keys: Sequence[bytes], *, enabled: bool, source: Path | None = None) -> None:
        self._keys = tuple(keys)
        self.enabled = enabled
        self._source = source
        self._inline: tuple[bytes, ...] = ()
        self._lock = threading.Lock()
        #: When the keys were last read successfully from their source.
        self.loaded_at = time.time()
        #: Why the last re-read failed (None after a successful one).
        self.last_error: str | None = None

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> ApiKeys:
        inline = _check(_split(settings.api_keys.get_secret_value()))
        from_file = _check(read_key_source(settings.api_keys_file)) if settings.api_keys_file else []
        keys = [*inline, *from_file]
        if not keys:
            if not settings.insecure:
                raise AuthConfigError(
                    "no API keys: set MLPLUG_API_KEYS or MLPLUG_API_KEYS_FILE (a mounted Secret), "
                    "or pass --insecure to serve without authentication"
                )
            log.warning(
                "serving WITHOUT authentication (--insecure): anyone who can reach the port can predict"
            )
            return cls([], enabled=False)
        if settings.insecure:
            log.info("--insecure ignored: API keys are configured, so authentication stays on")
        log.info("authentication on: %d API key(s) configured", len(keys))
        api_keys = cls(keys, enabled=True, source=settings.api_keys_file)
        api_keys._inline = tuple(inline)
        return api_keys

    def __len__(self) -> int:
        return len(self._keys)

    def reload(self) -> None:
        """Re-read the key file (a rotated Secret). A broken file keeps the current keys.

        The keys then grow stale (:meth:`stale_for`): readiness turns false once they are
        older than the staleness limit, since a revoked key may still be among them.
        """
        if self._source is None or not self.enabled:
            return
        try:
            keys = [*self._inline, *_check(read_key_source(self._source))]
        except Exception as exc:  # OSError, a key file that is not text, a refused key: keep going
            detail = str(exc) if isinstance(exc, MlplugError) else f"{type(exc).__name__}: {exc}"
            self.last_error = f"API keys not reloaded from {self._source}: {detail}"
            log.warning("%s", self.last_error)
            return
        if not keys:
            self.last_error = f"API key source {self._source} is empty; keeping the current keys"
            log.warning("%s", self.last_error)
            return
        with self._lock:
            changed = set(keys) != set(self._keys)
            self._keys = tuple(keys)
        self.loaded_at = time.time()
        self.last_error = None
        if changed:
            log.info("API keys reloaded: %d key(s)", len(keys))

    def stale_for(self, now: float | None = None) -> float:
        """Seconds since the key source was last read (0 when the keys come from no file)."""
        if self._source is None or not self.enabled:
            return 0.0
        return max(0.0, (now or time.time()) - self.loaded_at)

    def allows(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """True when auth is off or the ASGI ``headers`` carry a configured key."""
        if not self.enabled:
            return True
        presented = presented_key(headers)
        if presented is None:
            return False
        match = False
        for key in self._keys:  # no early exit: every key is compared every time
            match |= hmac.compare_digest(key, presented)
        return match


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer``, from raw ASGI headers."""
    for name, value in headers:
        if name == X_API_KEY:
            return value.strip()
        if name == AUTHORIZATION and value[:7].lower() == BEARER:
            return value[7:].strip()
    return None
