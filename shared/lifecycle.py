"""Process start-up helpers shared by every service's ``__main__``."""

from __future__ import annotations

import signal
import sys
import threading

from shared.logs import setup_logging
from shared.settings import Settings, SettingsError, load_settings


def stop_on_signals(*signals: signal.Signals) -> threading.Event:
    """An event set by SIGTERM and SIGINT (or ``signals``): the service's loops watch it,
    finish or return the message in hand, and the process exits 0."""
    stop = threading.Event()
    for sig in signals or (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def service_settings(name: str, require: tuple[str, ...] = ()) -> Settings:
    """A service's settings, with logging set up as they say; a missing or malformed
    one stops the process with status 2 and one line naming the variable."""
    try:
        settings = load_settings(require=require)
    except SettingsError as error:
        print(f"{name}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(settings.log_format)
    return settings


def first_line(error: BaseException) -> str:
    """The first line of an error as an operator reads it (a database driver's own
    message, not SQLAlchemy's wrapping with the statement)."""
    return (str(getattr(error, "orig", None) or error).strip().splitlines() or [""])[0]
