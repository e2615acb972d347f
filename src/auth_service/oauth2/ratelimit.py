"""Per-process fixed-window limits for the OAuth endpoints.

The shared limiter (core.ratelimit) costs a Redis round trip per request, as much CPU as the
rest of the token path. Client secrets have 256 bits of entropy, so there is no password to
guess: this limit is abuse and load protection, which is per replica anyway. With N replicas
the effective limit is N x RATE_LIMIT_TOKEN (see docs/performance.md).
"""

from __future__ import annotations

import math
import time

from limits import parse

from auth_service.core.errors import RateLimited

_MAX_KEYS = 100_000


class LocalRateLimiter:
    def __init__(self, limit: str, enabled: bool = True) -> None:
        item = parse(limit)
        self.amount = item.amount
        self.window = float(item.get_expiry())
        self.enabled = enabled
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> None:
        """Count one request for `key`; raise RateLimited (with Retry-After) past the limit."""
        if not self.enabled:
            return
        now = time.monotonic()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= self.amount:
            retry_after = max(1, math.ceil(start + self.window - now))
            raise RateLimited(headers={"Retry-After": str(retry_after)})
        if len(self._windows) >= _MAX_KEYS and key not in self._windows:
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < self.window}
        self._windows[key] = (start, count + 1)
