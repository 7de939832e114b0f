"""Client of the endpoint rotation hook: the Supabase Edge Function that points
``MODEL_ENDPOINT`` at the new prod adapter (``supabase/functions/rotate-model-endpoint``).

Called after a change of prod has committed. The body is JSON; the request carries
``X-Pria-Timestamp`` and ``X-Pria-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``
so the function can refuse forged or replayed calls. Server errors, 429 and network failures are
retried with exponential backoff; any other answer, or running out of attempts, raises
``EndpointRotationFailed``: the registry stays as committed, and the error says so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pria_ml import clock
from pria_ml.errors import ConfigError, EndpointRotationFailed

if TYPE_CHECKING:
    from pria_ml.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Pria-Signature"
TIMESTAMP_HEADER = "X-Pria-Timestamp"
_RETRIED_STATUSES = {429, 500, 502, 503, 504}


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


@dataclass(frozen=True)
class RotationResult:
    """The hook's acknowledgement: HTTP status, attempts it took, and its JSON answer
    (``rotated``: true when it applied this change now, false when it already serves it)."""

    status: int
    attempts: int
    response: str
    answer: dict[str, Any]


def acknowledgement(text: str) -> dict[str, Any] | None:
    """The hook's answer when it acknowledges the change: a JSON object with a boolean
    ``rotated`` (the Edge Function's answer); None for anything else (a proxy's page, an
    empty body), which is not taken as a rotation."""
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("rotated"), bool):
        return None
    return answer


@dataclass(frozen=True)
class EndpointHook:
    """Where the rotation hook lives, its shared secret, and how hard to try."""

    url: str
    secret: bytes
    attempts: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointHook | None:
        """The hook ``settings`` configure, or None when no rotation URL is set."""
        if not settings.endpoint_rotation_url:
            return None
        if settings.endpoint_rotation_secret is None:
            raise ConfigError(
                "PRIA_ENDPOINT_ROTATION_URL is set but PRIA_ENDPOINT_ROTATION_SECRET is not; "
                "set the shared HMAC secret the Edge Function verifies"
            )
        return cls(
            url=settings.endpoint_rotation_url,
            secret=settings.endpoint_rotation_secret.get_secret_value().encode(),
        )

    def rotate(self, payload: dict[str, Any]) -> RotationResult:
        """POST ``payload`` signed; retry transient failures; raise EndpointRotationFailed."""
        import urllib.error
        import urllib.request

        body = json.dumps(payload, sort_keys=True, default=str).encode()
        last = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            # The receiver checks it against its own clock: always the real one.
            timestamp = str(int(clock.system().timestamp()))
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: timestamp,
                    SIGNATURE_HEADER: sign(self.secret, timestamp, body),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    text = response.read(4096).decode(errors="replace")
                    status = response.status
                answer = acknowledgement(text)
                if answer is None:
                    raise EndpointRotationFailed(
                        f"endpoint rotation hook {self.url} answered HTTP {status} without "
                        f"acknowledging the change ({text[:200]!r}; expected JSON with "
                        '"rotated": true/false); is PRIA_ENDPOINT_ROTATION_URL the function?'
                    )
                return RotationResult(status, attempt, text, answer)
            except urllib.error.HTTPError as exc:
                detail = exc.read(512).decode(errors="replace").strip()
                last = f"HTTP {exc.code} {detail}".strip()
                if exc.code not in _RETRIED_STATUSES:
                    raise EndpointRotationFailed(
                        f"endpoint rotation hook {self.url} refused the call: {last} "
                        "(not retried; check PRIA_ENDPOINT_ROTATION_SECRET and the function)"
                    ) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt < self.attempts:
                delay = self.backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "endpoint rotation attempt %d/%d failed (%s); retrying in %.1f s",
                    attempt,
                    self.attempts,
                    last,
                    delay,
                )
                time.sleep(delay)
        raise EndpointRotationFailed(
            f"endpoint rotation hook {self.url} failed after {self.attempts} attempts: {last}"
        )
