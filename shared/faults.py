"""Deterministic crash points for the fault tests: a process started with
``TRACKFILL_CRASH_AT=<name>`` dies (like ``kill -9``) when it reaches that point.
Unset, each point costs one dictionary lookup."""

from __future__ import annotations

import os


def crash_point(name: str) -> None:
    if os.environ.get("TRACKFILL_CRASH_AT") == name:
        os._exit(137)
