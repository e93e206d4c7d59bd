"""The simulator's HTTP server: Web Scraper Cloud API v1 as docs/webscraper-api.md describes it.

API calls live under ``/api/v1/`` and count against the quota. The inspection and
fault endpoints live under ``/__sim/`` and count against nothing:

- ``GET /__sim/state``: every call received (time, method, path, kind, status), every
  webhook attempt, the faults in force and every job with its start URLs;
- ``POST /__sim/faults``: a JSON object of :class:`~webscraper_sim.state.Faults` fields;
- ``POST /__sim/reset``: forget jobs, calls, quota and faults.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from webscraper_sim.state import SimConfig, SimState
from webscraper_sim.webhooks import Clock

API_PREFIX = "/api/v1/"
#: the service's documented limit of start URLs in one job
MAX_START_URLS = 20_000
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"scraping-job/?"), "create"),
    ("GET", re.compile(r"scraping-jobs/?"), "list"),
    ("GET", re.compile(r"scraping-job/(\d+)/?"), "get"),
    ("DELETE", re.compile(r"scraping-job/(\d+)/?"), "delete"),
    ("GET", re.compile(r"scraping-job/(\d+)/json/?"), "json"),
    ("GET", re.compile(r"scraping-job/(\d+)/csv/?"), "csv"),
    ("GET", re.compile(r"scraping-job/(\d+)/problematic-urls/?"), "problematic"),
    ("GET", re.compile(r"account/?"), "account"),
]


class Answer(Exception):
    """Raised by a route to answer at once (errors included)."""

    def __init__(self, status: int, body: Any, content_type: str = "application/json"):
        self.status, self.body, self.content_type = status, body, content_type


def _validation(errors: dict[str, list[str]]) -> Answer:
    return Answer(422, {"success": False, "validationErrors": errors})


def _data(data: Any) -> Answer:
    return Answer(200, {"success": True, "data": data})


class Api:
    """The routes, each a method taking (query, body, job id) and raising an Answer."""

    def __init__(self, state: SimState):
        self.state = state

    def route(self, method: str, path: str) -> tuple[str, str | None]:
        for verb, pattern, kind in ROUTES:
            match = pattern.fullmatch(path)
            if match and verb == method:
                return kind, (match.group(1) if match.groups() else None)
        return "unknown", None

    def job(self, scraping_job_id: str | None):
        job = self.state.jobs.get(int(scraping_job_id or 0))
        if job is None:
            raise Answer(404, {"success": False, "message": "Scraping job not found"})
        return job

    def create(self, query, body, scraping_job_id):
        errors = self._validate_create(body)
        if errors:
            raise _validation(errors)
        job = self.state.create_job(body)
        raise _data({"id": job.id, "custom_id": job.custom_id})

    def _validate_create(self, body: Any) -> dict[str, list[str]]:
        if not isinstance(body, dict):
            return {"sitemap_id": ["The sitemap id field is required."]}
        errors: dict[str, list[str]] = {}
        sitemap = body.get("sitemap_id")
        if sitemap is None:
            errors["sitemap_id"] = ["The sitemap id field is required."]
        elif not isinstance(sitemap, int) or sitemap not in self.state.config.sitemaps:
            errors["sitemap_id"] = ["The selected sitemap id is invalid."]
        if body.get("driver", "fast") not in ("fast", "fulljs"):
            errors["driver"] = ["The selected driver is invalid."]
        for name in ("page_load_delay", "request_interval"):
            value = body.get(name, 2000)
            if not isinstance(value, int) or value < 2000:
                errors[name] = [f"The {name.replace('_', ' ')} must be at least 2000."]
        urls = body.get("start_urls", [])
        if not isinstance(urls, list) or not all(_is_url(u) for u in urls):
            errors["start_urls"] = ["The start urls must be an array of valid URLs."]
        elif len(urls) > MAX_START_URLS:
            errors["start_urls"] = [
                f"The start urls may not have more than {MAX_START_URLS} items."
            ]
        custom_id = body.get("custom_id")
        if custom_id is not None and (not isinstance(custom_id, str) or len(custom_id) > 255):
            errors["custom_id"] = ["The custom id may not be greater than 255 characters."]
        return errors

    def get(self, query, body, scraping_job_id):
        raise _data(self.state.job_object(self.job(scraping_job_id), time.monotonic()))

    def delete(self, query, body, scraping_job_id):
        del self.state.jobs[self.job(scraping_job_id).id]
        raise _data("ok")

    def list(self, query, body, scraping_job_id):
        newest_first = self.state.config.list_newest_first
        jobs = sorted(self.state.jobs.values(), key=lambda j: -j.id if newest_first else j.id)
        sitemap = query.get("sitemap_id")
        if sitemap:
            jobs = [j for j in jobs if str(j.sitemap_id) == sitemap]
        now = time.monotonic()
        raise Answer(200, self._page(query, [self.state.job_object(j, now) for j in jobs]))

    def _page(self, query: dict[str, str], items: list[Any]) -> dict[str, Any]:
        per_page = self.state.config.per_page
        page = int(query["page"]) if query.get("page", "").isdigit() else 1
        page = max(page, 1)
        return {
            "success": True,
            "data": items[(page - 1) * per_page : page * per_page],
            "current_page": page,
            "last_page": max(1, math.ceil(len(items) / per_page)),
            "total": len(items),
            "per_page": per_page,
        }

    def json(self, query, body, scraping_job_id):
        job = self.job(scraping_job_id)
        if not self.state.data_ready(job, time.monotonic()):
            raise Answer(200, b"", "application/json")
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in job.records]
        raise Answer(200, "".join(lines).encode(), "application/json")

    def csv(self, query, body, scraping_job_id):
        job = self.job(scraping_job_id)
        if not self.state.data_ready(job, time.monotonic()):
            raise Answer(200, b"", "text/csv")
        raise Answer(200, _csv(job.records), "text/csv; charset=UTF-8")

    def problematic(self, query, body, scraping_job_id):
        job = self.job(scraping_job_id)
        raise Answer(200, self._page(query, self.state.problematic_urls(job)))

    def account(self, query, body, scraping_job_id):
        config = self.state.config
        raise _data(
            {
                "email": config.account_email,
                "firstname": "Sim",
                "lastname": "Ulator",
                "page_credits": max(self.state.page_credits, 0),
            }
        )


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and urlsplit(value).scheme in ("http", "https")


def _csv(records: list[dict[str, Any]]) -> bytes:
    """BOM, CRLF, an unquoted header, every cell quoted, '' for a missing value."""
    if not records:
        return b""
    columns = list(records[0])
    out = io.StringIO()
    out.write("\ufeff" + ",".join(columns) + "\r\n")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    for record in records:
        writer.writerow(["" if record.get(c) is None else record[c] for c in columns])
    return out.getvalue().encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: with Nagle's algorithm on, the body
    # waits for the client's delayed ACK (40 ms a call), which the real API does not cost
    disable_nagle_algorithm = True
    server: SimHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: calls are in /__sim/state
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self._read_body()
        if url.path.startswith("/__sim/"):
            self._admin(method, url.path, body)
        elif url.path.startswith(API_PREFIX):
            self._api(method, url.path[len(API_PREFIX) :], query, body)
        else:
            self._send(404, {"success": False, "message": "Not Found"})

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""  # whole, whatever its size

    def _api(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        state = self.server.state
        api = self.server.api
        kind, scraping_job_id = api.route(method, path)
        entry: dict[str, Any] = {"method": method, "path": API_PREFIX + path, "kind": kind}
        with state.lock:
            allowed, headers = state.take_quota(time.monotonic())
            faults = state.faults
            if faults.rate_limit_storm > 0:
                faults.rate_limit_storm -= 1
                allowed = False
                headers.update(state._retry_headers(faults.storm_retry_after_s))
            burst = faults.error_burst > 0 and allowed
            burst = burst and (not faults.error_kinds or kind in faults.error_kinds)
            if burst:
                faults.error_burst -= 1
            slow_s = faults.slow_s if faults.slow > 0 and allowed else 0.0
            if slow_s:
                faults.slow -= 1
        if not allowed:
            return self._finish(entry, 429, {"message": "Too Many Attempts."}, headers)
        if burst:
            return self._finish(entry, faults.error_status, {"message": "Server Error"}, headers)
        if query.get("api_token") != state.config.api_token:
            return self._finish(
                entry, 401, {"success": False, "message": "Unauthenticated."}, headers
            )
        if slow_s or state.config.latency_s:
            time.sleep(slow_s + state.config.latency_s)
        if kind == "unknown":
            return self._finish(entry, 404, {"success": False, "message": "Not Found"}, headers)
        body = _json_or_none(raw)
        with state.lock:
            try:
                getattr(api, kind)(query, body, scraping_job_id)
            except Answer as answer:
                result = answer
            if kind == "create" and result.status == 200:
                entry["job_id"] = result.body["data"]["id"]
                entry["custom_id"] = result.body["data"]["custom_id"]
                if faults.lose_create_answer > 0:
                    faults.lose_create_answer -= 1
                    entry["lost"] = True
                    self._finish(entry, 0, None, headers, drop=True)
                    return
            if scraping_job_id:
                entry["job_id"] = int(scraping_job_id)
        self._finish(entry, result.status, result.body, headers, result.content_type)

    def _finish(self, entry, status, body, headers, content_type="application/json", drop=False):
        self.server.state.record_call(**entry, status=status)
        if drop:
            self.close_connection = True  # the job exists; its answer is lost
            return
        self._send(status, body, headers, content_type)

    def _admin(self, method: str, path: str, raw: bytes) -> None:
        state = self.server.state
        if method == "GET" and path == "/__sim/state":
            return self._send(200, state.snapshot())
        if method == "POST" and path == "/__sim/reset":
            state.reset()
            return self._send(200, {"ok": True})
        if method == "POST" and path == "/__sim/faults":
            body = _json_or_none(raw)
            try:
                with state.lock:
                    state.faults.update(body if isinstance(body, dict) else {})
            except (ValueError, TypeError) as error:
                return self._send(400, {"error": str(error)})
            return self._send(200, state.snapshot()["faults"])
        self._send(404, {"error": "unknown simulator endpoint"})

    def _send(self, status, body, headers=None, content_type="application/json") -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SimState):
        super().__init__(address, _Handler)
        self.state = state
        self.api = Api(state)


class Simulator:
    """A running simulator: ``start()`` serves in a background thread."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0):
        self.state = SimState(config)
        self.httpd = SimHTTPServer((host, port), self.state)
        self.clock = Clock(self.state)
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    def start(self) -> Simulator:
        self.clock.start()
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.clock.start()
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.clock.stop()
