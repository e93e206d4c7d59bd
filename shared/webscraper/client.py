"""The Web Scraper Cloud API v1 client (docs/webscraper-api.md), shared by every caller.

Every call goes through the quota ledger first. The token travels only as the
``api_token`` query parameter and never appears in a log line or an exception's text.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from shared.faults import crash_point
from shared.metrics import API_CALLS
from shared.quota import CREATE, QuotaLedger, Reservation

log = logging.getLogger("trackfill.webscraper")


class ApiError(Exception):
    """A call failed; ``status`` is the HTTP status (None: no answer)."""

    retryable = False

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Retryable(ApiError):
    """5xx, a timeout or a connection error: the same call may work later."""

    retryable = True


class AnswerLost(Retryable):
    """No answer came (timeout, dropped connection): the call may have taken effect."""


class ValidationFailed(ApiError):
    """4xx with the API's validation errors: the same call will fail again."""

    def __init__(self, message: str, status: int, errors: dict[str, Any]):
        super().__init__(message, status)
        self.errors = errors


class NotFound(ApiError):
    pass


class QuotaWait(Exception):
    """The ledger has no call to spare now; ask again in ``wait_s``."""

    def __init__(self, wait_s: float, message: str = ""):
        super().__init__(message or f"quota: next call in {wait_s:.3f}s")
        self.wait_s = wait_s


class RateLimited(QuotaWait):
    """429: the API itself says wait ``Retry-After``. A wait like the ledger's, not a
    failure of the call: whoever gets it parks until then (the ledger already blocks
    every caller until that time), whatever the call was."""

    status = 429

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(retry_after_s, message)

    @property
    def retry_after_s(self) -> float:
        return self.wait_s


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    current_page: int
    last_page: int
    total: int


class WebScraperClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        ledger: QuotaLedger,
        timeout_s: float = 30.0,
        session: requests.Session | None = None,
    ):
        self._base = base_url if base_url.endswith("/") else base_url + "/"
        self._token = token
        self._ledger = ledger
        self._timeout = (min(5.0, timeout_s), timeout_s)
        self._http = session or _session_for(self._base)

    def outcomes_together(self) -> AbstractContextManager[None]:
        """Calls made within it record their answers together at its end (see
        :meth:`Answers.outcomes_together`)."""
        return self._ledger.answers.outcomes_together()

    # -- the endpoints ---------------------------------------------------------------------
    def create_job(self, body: dict[str, Any], reservation: Reservation) -> dict[str, Any]:
        """POST scraping-job on a reservation already claimed; ``{"id", "custom_id"}``.
        The job id is written to the ledger as soon as the answer is read."""
        created = self._call("POST", "scraping-job", CREATE, reservation, json=body)
        if not isinstance(created, dict) or not str(created.get("id", "")).isdigit():
            raise ApiError(f"POST scraping-job: no job id in {_excerpt(created)}", 200)
        self._ledger.answers.record_job(reservation, int(created["id"]))
        return created

    def get_job(self, scraping_job_id: int) -> dict[str, Any]:
        return self._call(
            "GET",
            f"scraping-job/{int(scraping_job_id)}",
            "get",
            scraping_job_id=int(scraping_job_id),
        )

    def list_jobs(self, page: int, sitemap_id: int | None = None) -> Page:
        params: dict[str, Any] = {"page": page}
        if sitemap_id is not None:
            params["sitemap_id"] = sitemap_id
        answer = self._call("GET", "scraping-jobs", "list", params=params, envelope=False)
        return Page(
            answer.get("data") or [],
            int(answer.get("current_page", page)),
            int(answer.get("last_page", 1)),
            int(answer.get("total", 0)),
        )

    def problematic_urls(self, scraping_job_id: int) -> list[dict[str, Any]]:
        """Every ``{"url", "type"}`` the job lists as empty or failed, page after page
        (one call each, 100 a page)."""
        found: list[dict[str, Any]] = []
        page, last = 1, 1
        while page <= last:
            answer = self._call(
                "GET",
                f"scraping-job/{int(scraping_job_id)}/problematic-urls",
                "problematic",
                params={"page": page},
                envelope=False,
                scraping_job_id=int(scraping_job_id),
            )
            found += [p for p in answer.get("data") or [] if isinstance(p, dict)]
            page, last = page + 1, int(answer.get("last_page", 1))
        return found

    def download_json(self, scraping_job_id: int) -> list[dict[str, Any]]:
        """The records of a job; [] while there is none (a zero-byte answer)."""
        return self._call(
            "GET",
            f"scraping-job/{int(scraping_job_id)}/json",
            "json",
            parse=_json_lines,
            scraping_job_id=int(scraping_job_id),
        )

    def page_credits(self) -> int:
        """The account's page credits left (``GET account``)."""
        account = self._call("GET", "account", "account")
        credits = account.get("page_credits") if isinstance(account, dict) else None
        if isinstance(credits, bool) or not isinstance(credits, int):
            raise ApiError(f"GET account: no page_credits in {_excerpt(account)}", 200)
        return credits

    # -- one call ------------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        kind: str,
        reservation: Reservation | None = None,
        envelope: bool = True,
        parse: Callable[[bytes], Any] | None = None,
        scraping_job_id: int | None = None,
        **kwargs: Any,
    ) -> Any:
        if reservation is None:
            reservation = self._ledger.reserve(kind, use=True, scraping_job_id=scraping_job_id)
            if not reservation.ready:
                raise QuotaWait(reservation.wait_s)
        elif not self._ledger.mark_used(reservation, kind):
            raise QuotaWait(0.0)  # too late for its slot: reserve again
        params = {**kwargs.pop("params", {}), "api_token": self._token}
        try:
            answer = self._http.request(
                method, urljoin(self._base, path), params=params, timeout=self._timeout, **kwargs
            )
        except requests.Timeout as error:
            API_CALLS.labels(kind, "timeout").inc()
            self._ledger.answers.record_outcome(reservation, None, "timeout")
            raise AnswerLost(f"{method} {path}: no answer within the timeout") from _clean(error)
        except requests.RequestException as error:
            API_CALLS.labels(kind, "error").inc()
            self._ledger.answers.record_outcome(reservation, None, f"{type(error).__name__}")
            raise AnswerLost(f"{method} {path}: {type(error).__name__}") from _clean(error)
        crash_point(f"api:answered:{kind}")  # the call took effect; nothing knows it yet
        API_CALLS.labels(kind, str(answer.status_code)).inc()
        remaining = _int_header(answer, "X-RateLimit-Remaining")
        retry_after = _int_header(answer, "Retry-After") if answer.status_code == 429 else None
        self._ledger.answers.record_outcome(
            reservation, answer.status_code, answer.reason or "", remaining, retry_after
        )
        self._raise_for(method, path, answer)
        if parse is not None:
            return parse(answer.content)
        body = _json(answer, method, path)
        if envelope:
            if not isinstance(body, dict) or body.get("success") is not True or "data" not in body:
                raise ApiError(
                    f"{method} {path}: unexpected answer {_excerpt(body)}", answer.status_code
                )
            return body["data"]
        return body

    def _raise_for(self, method: str, path: str, answer: requests.Response) -> None:
        status = answer.status_code
        where = f"{method} {path}"
        if status < 400:
            return
        if status == 429:
            retry = _int_header(answer, "Retry-After") or 60
            raise RateLimited(f"{where}: rate limited, retry after {retry}s", retry)
        if status >= 500:
            raise Retryable(f"{where}: server error {status}", status)
        if status == 404:
            raise NotFound(f"{where}: not found", status)
        if status in (401, 403):
            raise ApiError(f"{where}: the API token was refused ({status})", status)
        body = _json_or_none(answer)
        errors = body.get("validationErrors", {}) if isinstance(body, dict) else {}
        raise ValidationFailed(
            f"{where}: refused ({status}) {_excerpt(errors or body)}", status, errors
        )


def _session_for(base_url: str) -> requests.Session:
    """A session that reads the environment (proxies, a CA bundle) once, for the one host
    it talks to, instead of on every call: requests does that per request by default,
    and it was a fifth of the ingestor's time. The same settings apply (``NO_PROXY``
    included); only ``~/.netrc`` is not read (the API authenticates by its token)."""
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


def _json_lines(raw: bytes) -> list[dict[str, Any]]:
    """JSON Lines, line by line, blank lines skipped; a bad line is an ApiError."""
    records = []
    for number, line in enumerate(raw.decode("utf-8-sig", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ApiError(f"download: line {number} is not JSON: {line[:80]!r}") from None
        if isinstance(record, dict):
            records.append(record)
    return records


def _json(answer: requests.Response, method: str, path: str) -> Any:
    body = _json_or_none(answer)
    if body is None:
        raise ApiError(f"{method} {path}: the answer is not JSON", answer.status_code)
    return body


def _json_or_none(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _int_header(answer: requests.Response, name: str) -> int | None:
    value = answer.headers.get(name, "")
    return int(value) if value.strip().isdigit() else None


def _excerpt(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)[:300]


def _clean(error: Exception) -> Exception:
    """The cause without the URL (it carries the token)."""
    return ApiError(re.sub(r"api_token=[^&\s'\"]+", "api_token=***", str(error)))
