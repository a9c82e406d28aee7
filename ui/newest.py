"""Let only the newest of a session's answers to one event land in the page.

A restore (a history entry, an example) writes many fields at once, and each write sets off
the same change event. The browser stamps every call with the moment it was triggered; calls
overtake each other on the way, and an answer computed from a half-written form can arrive
last. `NewestOnly` remembers each session's newest stamp so that older calls are skipped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

#: Browser-side: replace the last input (the stamp field) with the moment of the trigger.
STAMP_JS = "(...values) => [...values.slice(0, -1), performance.now()]"


class NewestOnly:
    """Per browser session, the newest stamp seen; at most `sessions` sessions are kept."""

    def __init__(self, sessions: int = 1024) -> None:
        self._stamps: OrderedDict[str, float] = OrderedDict()
        self._sessions = sessions
        self._lock = threading.Lock()

    def is_newest(self, session: str, stamp: float | None) -> bool:
        """Record `stamp` for `session`; False when a newer one was already seen.

        A call without a stamp (an API client, the page's first load) always counts as newest.
        """
        if stamp is None:
            return True
        with self._lock:
            if stamp < self._stamps.get(session, float("-inf")):
                return False
            self._stamps[session] = stamp
            self._stamps.move_to_end(session)
            while len(self._stamps) > self._sessions:
                self._stamps.popitem(last=False)
            return True
