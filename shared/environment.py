"""Typed reads of trackfill's environment variables, one variable each; every error
names the variable (shared/settings.py builds the one Settings from them)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Env:
    """Typed reads of one variable each; every error names the variable."""

    def __init__(self, environ: Mapping[str, str], defaults: Mapping[str, str]):
        self._environ = environ
        self._defaults = defaults

    def raw(self, name: str) -> str:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return self._defaults[name]
        return value.strip()

    def optional(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(f"{name} is required but not set")
        return value

    def count(self, name: str, minimum: int = 1, maximum: int | None = None) -> int:
        text = self.raw(name)
        if not re.fullmatch(r"[0-9]+", text) or int(text) < minimum:
            raise SettingsError(
                f"{name} must be a whole number of at least {minimum}, got {text!r}"
            )
        if maximum is not None and int(text) > maximum:
            raise SettingsError(f"{name} must be at most {maximum}, got {text!r}")
        return int(text)

    def optional_id(self, name: str) -> int | None:
        """A positive whole number, or None when the variable is unset."""
        text = self.optional(name)
        if text is None:
            return None
        if not re.fullmatch(r"[0-9]{1,18}", text) or int(text) == 0:
            raise SettingsError(f"{name} must be a positive whole number (an id), got {text!r}")
        return int(text)

    def fraction(self, name: str) -> float:
        """A share: a number from 0 to 1."""
        text = self.raw(name)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 1:  # NaN fails too
            raise SettingsError(f"{name} must be a number from 0 to 1, got {text!r}")
        return value

    def duration(self, name: str, allow_zero: bool = False) -> float:
        text = self.raw(name)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            least = "0 or more" if allow_zero else "more than 0"
            raise SettingsError(f"{name} must be a number of seconds, {least}, got {text!r}")
        return value

    def url(self, name: str, schemes: tuple[str, ...]) -> str:
        text = self.raw(name)
        parts = urlsplit(text)
        if parts.scheme not in schemes or not parts.hostname:
            raise SettingsError(
                f"{name} must be a {'/'.join(schemes)} URL with a host, got {redact(text)!r}"
            )
        return text

    def urls(self, name: str, schemes: tuple[str, ...]) -> str:
        """One URL or several separated by ``;`` (a cluster's nodes, tried in turn),
        each a :meth:`url`; returned as given."""
        text = self.raw(name)
        parts = text.split(";")
        for part in parts:
            found = urlsplit(part.strip())
            if found.scheme not in schemes or not found.hostname:
                raise SettingsError(
                    f"{name} must be one {'/'.join(schemes)} URL with a host, or several "
                    f"separated by ';', got {redact(text)!r}"
                )
        return ";".join(part.strip() for part in parts)

    def database_url(self, name: str) -> str:
        text = self.raw(name)
        try:
            url = make_url(text)
        except ArgumentError:
            raise SettingsError(f"{name} is not a database URL: {redact(text)!r}") from None
        if url.get_backend_name() != "postgresql":
            raise SettingsError(f"{name} must point at PostgreSQL, got {url.get_backend_name()!r}")
        return text

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        text = self.raw(name).lower()
        if text not in allowed:
            raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {text!r}")
        return text

    def bind(self, name: str) -> str:
        text = self.raw(name)
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{name} must be HOST:PORT, got {text!r}")
        return text


def redact(url: str) -> str:
    """Hide a password in a URL before it goes into an error message."""
    return re.sub(r"(//[^:/@;]*:)[^@/;]*@", r"\1***@", url)
