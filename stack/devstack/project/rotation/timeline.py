"""What Stripe said about an account's endpoints over time, seen by polling from a thread.

The rotation's claims are about moments (no signature refused once the new endpoint is
enabled), and neither Stripe nor the operator's status stamps those moments exactly, so the
test watches the endpoints itself. A poll sees a change up to one interval late; the
moments derived here lean to the early side, so they never hide a refusal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class EndpointTimeline:
    """Polls `GET /v1/webhook_endpoints` every `interval` and keeps, per endpoint, each change
    of status as (time, status), with status 'deleted' once it is no longer listed."""

    base_url: str
    api_key: str
    interval: float = 0.05
    max_seconds: float = 300.0
    changes: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    last_not_enabled: dict[str, float] = field(default_factory=dict)
    _previous_poll: float | None = None
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5))
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> EndpointTimeline:
        self._http.auth = (self.api_key, "")
        self._poll_once()
        self._thread = threading.Thread(target=self._run, name="endpoint-timeline", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def enabled_since(self, endpoint_id: str) -> float:
        """Return a moment before which `endpoint_id` was last seen not enabled (or did not
        exist yet): its final enable came after it."""
        changes = self.changes.get(endpoint_id) or []
        if not changes or changes[-1][1] != "enabled":
            raise AssertionError(f"endpoint {endpoint_id} is not enabled at the end: {changes}")
        return self.last_not_enabled[endpoint_id]

    def gone_since(self, endpoint_id: str) -> float | None:
        """Return when a poll first found `endpoint_id` no longer listed, or None."""
        for at, status in self.changes.get(endpoint_id) or []:
            if status == "deleted":
                return at
        return None

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            self._poll_once()
        self._http.close()

    def _poll_once(self) -> None:
        # Stamped before asking: whatever the answer shows was true at this moment or later.
        asked = time.time()
        try:
            answer = self._http.get(f"{self.base_url}/v1/webhook_endpoints", params={"limit": 100})
            answer.raise_for_status()
        except httpx.HTTPError:
            return  # a missed poll only makes the moments coarser
        listed = {item["id"]: str(item["status"]) for item in answer.json()["data"]}
        for endpoint_id in set(listed) | set(self.changes):
            status = listed.get(endpoint_id, "deleted")
            history = self.changes.setdefault(endpoint_id, [])
            if not history:
                # New since the previous poll, which is the last moment it surely did not exist.
                self.last_not_enabled[endpoint_id] = self._previous_poll or asked
            if status != "enabled":
                self.last_not_enabled[endpoint_id] = asked
            if not history or history[-1][1] != status:
                history.append((asked, status))
        self._previous_poll = asked
