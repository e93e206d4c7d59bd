"""Start the simulator and the four services as separate processes, as a supervisor
would, each logging to its own file; stop them all. The demo and the end-to-end tests
use this same module."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests

from shared.settings import DEFAULTS

ROOT_DIR = Path(__file__).resolve().parent.parent
GATEWAY_PATH = "/api/acquisition/webscraper/webscraper-tracking/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Timings:
    """Time compressed by ``factor``: 200 calls per 900 s become 200 per 900/factor s."""

    factor: float = 30.0
    sim_run_s: float = 2.0  # how long a scraping job runs in the simulator
    ingest_retry_s: float = 1.0

    def settings(self) -> dict[str, str]:
        f = self.factor
        return {
            "API_QUOTA_CALLS": "200",
            "API_QUOTA_WINDOW_S": f"{900 / f:g}",
            "PUBLISH_MIN_INTERVAL_S": f"{6 / f:g}",
            "RECHECK_BASE_S": f"{1800 / f:g}",
            "RECHECK_MAX_S": f"{86400 / f:g}",
            **{
                name: f"{float(DEFAULTS[name]) / f:g}"
                for name in DEFAULTS
                if name.startswith("SCHEDULE_")
            },
            "SELECTOR_MAX_RECORDS": "100",
            "SELECTOR_REPUBLISH_GRACE_S": f"{120 / f:g}",
            "RECONCILE_AFTER_S": f"{1800 / f:g}",
            "PUBLISH_RETRY_BASE_S": f"{max(2 / f, 0.05):g}",
            "INGEST_RETRY_S": f"{self.ingest_retry_s:g}",
            "HTTP_TIMEOUT_S": "5",
            "AMQP_HEARTBEAT_S": "10",
            "GATEWAY_THREADS": "8",
        }


@dataclass
class Stack:
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: where each process serves its Prometheus metrics
    metrics_urls: dict[str, str] = field(default_factory=dict)
    #: how each process was started (for restarts)
    launches: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.env["WEBSCRAPER_API_URL"]

    def sim_state(self) -> dict:
        base = self.api_url.removesuffix("api/v1/")
        return requests.get(f"{base}__sim/state", timeout=5).json()

    def start(
        self,
        name: str,
        command: list[str],
        ready: str | None = None,
        metrics: bool = False,
        own_env: dict[str, str] | None = None,
    ) -> None:
        """Start ``name`` with the stack's settings (and ``own_env``: its own, such as a
        broker node of its own to connect to first)."""
        env = {**self.env, **(own_env or {})}
        if metrics:
            port = free_port()
            env["METRICS_PORT"] = str(port)
            self.metrics_urls[name] = f"http://127.0.0.1:{port}/metrics"
        self.launches[name] = (command, env)
        self._launch(name)
        if ready:
            self.wait_for_line(name, ready)

    def _launch(self, name: str) -> None:
        command, env = self.launches[name]
        log = (self.logs / f"{name}.log").open("a")
        self.processes[name] = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, name: str) -> None:
        """``kill -9``: no chance to finish anything."""
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(10)

    def restart(self, name: str) -> None:
        """Start ``name`` again as it was started, as a supervisor would."""
        self._launch(name)

    def wait_for_line(self, name: str, text: str, timeout: float = 30) -> None:
        path = self.logs / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in path.read_text(errors="replace"):
                return
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited; see {path}")
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not log {text!r} within {timeout:g}s; see {path}")

    def stop(self, timeout: float = 10) -> dict[str, int | None]:
        """SIGTERM to every process, then SIGKILL to what is left; their exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                codes[name] = None
        return codes


def start_stack(
    database_url: str,
    amqp_url: str,
    logs: Path,
    timings: Timings,
    api_token: str = "demo-api-token",
    webhook_token: str = "demo-webhook-token-change-me",
    extra_env: dict[str, str] | None = None,
    webhook_retry_delays: str = "0.5,1",
    sim_args: list[str] | None = None,
    service_env: dict[str, dict[str, str]] | None = None,
) -> Stack:
    """The simulator, the gateway, the publisher and the ingestor, each ready
    (``service_env``: settings of one service's own, by its name)."""
    logs.mkdir(parents=True, exist_ok=True)
    sim_port, gateway_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "WEBSCRAPER_API_URL": f"http://127.0.0.1:{sim_port}/api/v1/",
        "WEBSCRAPER_API_TOKEN": api_token,
        "WEBHOOK_TOKEN": webhook_token,
        "GATEWAY_BIND": f"127.0.0.1:{gateway_port}",
        **timings.settings(),
        **(extra_env or {}),
    }
    stack = Stack(env, logs)
    webhook = f"http://127.0.0.1:{gateway_port}{GATEWAY_PATH}?token={quote(webhook_token)}"
    python = sys.executable
    try:
        stack.start(
            "webscraper-sim",
            [
                python, "-m", "webscraper_sim", "--port", str(sim_port), "--token", api_token,
                "--webhook-url", webhook, "--quota-calls", "200",
                "--quota-window-s", env["API_QUOTA_WINDOW_S"],
                "--schedule-delay-s", f"{timings.sim_run_s / 4:g}",
                "--start-delay-s", f"{timings.sim_run_s / 4:g}",
                "--run-s", f"{timings.sim_run_s / 2:g}",
                "--webhook-timeout-s", "2", "--webhook-retry-delays", webhook_retry_delays,
                *(sim_args or []),
            ],
            ready="listening on",
        )  # fmt: skip
        own = service_env or {}
        for name, ready in (
            ("webhook_gateway", "listening on"),
            ("publisher", "consuming"),
            ("ingestor", "consuming"),
        ):
            stack.start(name, [python, "-m", name], ready, metrics=True, own_env=own.get(name))
    except BaseException:
        stack.stop()
        raise
    return stack


def select_candidates(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    """One selection pass by the operator's command, ``run_tracking_number_empty``
    (``args``: its options, ``--task ...`` for another task)."""
    command = [str(Path(sys.executable).parent / "run_tracking_number_empty"), *args]
    done = subprocess.run(command, env=stack.env, capture_output=True, text=True, timeout=60)
    with (stack.logs / "selector.log").open("a") as log:
        log.write(done.stderr + done.stdout)
    return done
