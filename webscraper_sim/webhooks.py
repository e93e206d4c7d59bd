"""The simulator's clock: ends jobs when their time comes and sends the webhooks.

A notification is POSTed form-encoded (``scrapingjob_id``, ``status``, ``sitemap_id``,
``sitemap_name``, ``custom_id``); a timeout, a connection error or a status >= 300 is
retried after each of ``webhook_retry_delays_s`` (5 s and 10 s by default: three
attempts in all), as the real service does.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from webscraper_sim.state import ScrapingJob, SimState

TICK_S = 0.02


@dataclass(frozen=True)
class Notification:
    scraping_job_id: int
    form: dict[str, str]
    copy: int
    generation: int
    attempt: int = 1


class Clock:
    """A background thread ticking every 20 ms."""

    def __init__(self, state: SimState):
        self._state = state
        self._queue: list[tuple[float, int, Notification]] = []
        self._held: list[tuple[float, Notification]] = []
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-clock", daemon=True)
        self._senders = ThreadPoolExecutor(8, thread_name_prefix="sim-webhook")
        self._http = requests.Session()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._senders.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            with self._state.lock:
                for job in list(self._state.jobs.values()):
                    if self._state.due_to_end(job, now):
                        self._state.end_job(job, now)
                        self._notify(job, now)
                self._release_held(now)
                due = self._pop_due(now)
            for notification in due:
                self._senders.submit(self._send, notification)

    def _notify(self, job: ScrapingJob, now: float) -> None:
        faults = self._state.faults
        if faults.webhook_drop > 0:
            faults.webhook_drop -= 1
            self._log(job.id, 0, 1, "dropped (fault switch)")
            return
        form = {
            "scrapingjob_id": str(job.id),
            "status": job.end_status,
            "sitemap_id": str(job.sitemap_id),
            "sitemap_name": job.sitemap_name,
            "custom_id": job.custom_id or "",
        }
        for copy in range(1, max(1, faults.webhook_duplicates) + 1):
            notification = Notification(job.id, form, copy, self._state.generation)
            if faults.webhook_out_of_order:
                self._held.append((now, notification))
            else:
                self._push(now, notification)

    def _release_held(self, now: float) -> None:
        """Held notifications go out together, newest first, once the oldest is due."""
        if self._held and now - self._held[0][0] >= self._state.faults.webhook_hold_s:
            for n, (_, notification) in enumerate(reversed(self._held)):
                self._push(now + n * 0.05, notification)  # staggered: senders run in parallel
            self._held.clear()

    def _push(self, due: float, notification: Notification) -> None:
        heapq.heappush(self._queue, (due, next(self._seq), notification))

    def _pop_due(self, now: float) -> list[Notification]:
        due = []
        while self._queue and self._queue[0][0] <= now:
            due.append(heapq.heappop(self._queue)[2])
        return due

    def _send(self, notification: Notification) -> None:
        config = self._state.config
        if notification.generation != self._state.generation:
            return
        if not config.webhook_url:
            self._log(
                notification.scraping_job_id, notification.copy, notification.attempt, "no url"
            )
            return
        try:
            answer = self._http.post(
                config.webhook_url, data=notification.form, timeout=config.webhook_timeout_s
            )
            outcome: str | int = answer.status_code
            failed = answer.status_code >= 300
        except requests.RequestException as error:
            outcome, failed = f"error: {type(error).__name__}", True
        self._log(notification.scraping_job_id, notification.copy, notification.attempt, outcome)
        delays = config.webhook_retry_delays_s
        if failed and notification.attempt <= len(delays):
            retry = dataclasses.replace(notification, attempt=notification.attempt + 1)
            with self._state.lock:
                self._push(time.monotonic() + delays[notification.attempt - 1], retry)

    def _log(self, scraping_job_id: int, copy: int, attempt: int, outcome: str | int) -> None:
        with self._state.lock:
            self._state.webhooks.append(
                {
                    "t": time.time(),
                    "job_id": scraping_job_id,
                    "copy": copy,
                    "attempt": attempt,
                    "outcome": outcome,
                }
            )
