"""Process start-up helpers shared by every service's ``__main__``."""

from __future__ import annotations

import signal
import threading


def stop_on_signals(*signals: signal.Signals) -> threading.Event:
    """An event set by SIGTERM and SIGINT (or ``signals``): the service's loops watch it,
    finish or return the message in hand, and the process exits 0."""
    stop = threading.Event()
    for sig in signals or (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
