"""The webhook gateway under load, next to a bare Flask app on the same server settings.

Both run as their own processes on waitress with GATEWAY_THREADS threads on 127.0.0.1:
the gateway (``python -m webhook_gateway``, publishing a confirmed job.completed per
request into a scratch vhost) and a Flask app that answers 200 to the same POST. The load
generator (separate processes, keep-alive connections, form bodies as the service sends):

1. open loop at ``--rate`` requests/s for ``--seconds``, after ``--warmup`` seconds of
   the same load (its p99 printed apart: a server's first second pays its connections
   and imports): p50/p99 latency, measured from when each request was due (goal: the
   gateway's p99 < 25 ms at 300 req/s);
2. closed loop: ``--clients`` connections sending back to back for ``--seconds``:
   requests/s of each, and the ratio gateway / bare (its old goal of 0.7 is retired);
   and the CPU time per request of the server process, of RabbitMQ and of the load generator (which
   share the machine's cores), and what the ratio would be if the gateway cost only
   bare Flask's CPU plus RabbitMQ's.
The queue the gateway fills is purged after each phase.

    .venv/bin/python bench/gateway.py [--rate 300] [--seconds 5] [--clients 8] [--threads 8]

Bounded: at most rate x seconds requests per open-loop run; every process is stopped at
the end; the scratch database and vhost are dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_services  # noqa: E402
from demo.stack import free_port  # noqa: E402
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK  # noqa: E402

TOKEN = "bench-webhook-token-0123456789abcdef"
PATH = f"/api/acquisition/webscraper/webscraper-tracking/?token={TOKEN}"
HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def body(n: int) -> bytes:
    return urlencode(
        {
            "scrapingjob_id": str(1_000_000 + n),
            "status": "finished",
            "sitemap_id": "1421177",
            "sitemap_name": "apple-order-tracking",
            "custom_id": TASK.custom_id("be0c0000", n % 10000),
        }
    ).encode()


def serve_bare(port: int, threads: int) -> None:
    """A Flask app that answers the webhook path with 200 and does nothing else."""
    from flask import Flask, jsonify
    from waitress.server import create_server

    app = Flask("bare")

    @app.post("/api/acquisition/webscraper/webscraper-tracking/")
    def receive():
        return jsonify(status="queued"), 200

    server = create_server(app, host="127.0.0.1", port=port, threads=threads)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        server.run()
    except KeyboardInterrupt:
        server.close()


def wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def closed_loop(port: int, seconds: float, start: float, results) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done, errors, n = 0, 0, os.getpid() * 1000
    while time.monotonic() < start:
        time.sleep(0.001)
    end = start + seconds
    cpu = time.process_time()
    while time.monotonic() < end:
        n += 1
        connection.request("POST", PATH, body(n), HEADERS)
        answer = connection.getresponse()
        answer.read()
        done += 1
        errors += answer.status != 200
    results.put((done, errors, time.process_time() - cpu))


def open_loop(port: int, rate: float, seconds: float, start: float, results) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies, errors = [], 0
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        connection.request("POST", PATH, body(i), HEADERS)
        answer = connection.getresponse()
        answer.read()
        # from when it was due: a send delayed by a slow answer counts against the server
        latencies.append((time.monotonic() - due) * 1000)
        errors += answer.status != 200
    results.put((latencies, errors))


def run_clients(target, port: int, count: int, *args) -> list:
    results: multiprocessing.Queue = multiprocessing.Queue()
    start = time.monotonic() + 0.5
    workers = [
        multiprocessing.Process(target=target, args=(port, *args, start, results))
        for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    collected = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(10)
    return collected


def cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (0 if unknown or
    already ended)."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # it ended meanwhile (a database backend, say)
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    """RabbitMQ's Erlang VM on this machine, if it can be found."""
    found = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True)
    return int(found.stdout.split()[0]) if found.stdout.strip() else None


def measure(port: int, options, reset, server_pid: int) -> dict[str, float]:
    # open loop first: the rate spread over a few senders, each keeping its own schedule;
    # its first --warmup seconds (connections, the broker channel, first imports) apart
    senders = 4
    cold = run_clients(open_loop, port, senders, options.rate / senders, options.warmup)
    reset()
    opened = run_clients(open_loop, port, senders, options.rate / senders, options.seconds)
    reset()  # each phase starts from an empty queue
    broker = broker_pid()
    before = cpu_s(server_pid), cpu_s(broker)
    closed = run_clients(closed_loop, port, options.clients, options.seconds)
    server_cpu, broker_cpu = cpu_s(server_pid) - before[0], cpu_s(broker) - before[1]
    reset()
    done = sum(d for d, _, _ in closed)
    latencies = sorted(ms for samples, _ in opened for ms in samples)
    first = sorted(ms for samples, _ in cold for ms in samples)
    return {
        "cold_p99": first[int(len(first) * 0.99) - 1],
        "rps": done / options.seconds,
        "errors": sum(e for _, e, _ in closed) + sum(e for _, e in opened),
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "sent": len(latencies),
        # CPU per request in the closed loop: where the machine's cores go
        "server_ms": server_cpu / done * 1000,
        "broker_ms": broker_cpu / done * 1000,
        "client_ms": sum(c for _, _, c in closed) / done * 1000,
    }


def purge(amqp_url: str) -> None:
    """Empty the queue the gateway fills (nothing consumes it here)."""
    from shared.messaging.publishing import connect
    from shared.messaging.topology import INGESTOR_COMPLETIONS

    # the queue is not declared yet while the bare app runs (it never declares it)
    with (
        connect(amqp_url) as connection,
        connection.channel() as channel,
        contextlib.suppress(Exception),
    ):
        channel.queue_purge(INGESTOR_COMPLETIONS)


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return process


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of load before the measured open loop"
    )
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_bare:
        serve_bare(options.serve_bare, options.threads)
        return 0
    with scratch_services() as (database_url, amqp_url):
        env = {**os.environ, "AMQP_URL": amqp_url, "DATABASE_URL": database_url}
        env.update(WEBHOOK_TOKEN=TOKEN, GATEWAY_THREADS=str(options.threads))
        figures = {}
        for name in ("bare Flask", "gateway"):
            port = free_port()
            if name == "gateway":
                env["GATEWAY_BIND"] = f"127.0.0.1:{port}"
                command = [sys.executable, "-m", "webhook_gateway"]
            else:
                command = [sys.executable, __file__, "--serve-bare", str(port)]
                command += ["--threads", str(options.threads)]
            process = start(command, env, port)
            try:
                figures[name] = measure(port, options, lambda: purge(amqp_url), process.pid)
            finally:
                stop(process)
    print(
        f"waitress, {options.threads} threads; closed loop: {options.clients} clients for "
        f"{options.seconds:g}s; open loop: {options.rate:g} req/s for {options.seconds:g}s, "
        f"after {options.warmup:g}s of the same load (its p99: bare Flask "
        f"{figures['bare Flask']['cold_p99']:.2f} ms, "
        f"gateway {figures['gateway']['cold_p99']:.2f} ms)"
    )
    print(
        f"{'':12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'sent':>6} {'errors':>6}"
        f" {'CPU ms/req: server':>19} {'RabbitMQ':>8} {'load gen.':>9}"
    )
    for name, f in figures.items():
        print(
            f"{name:12} {f['rps']:8.0f} {f['p50']:8.2f} {f['p99']:8.2f} "
            f"{f['sent']:6d} {f['errors']:6d} {f['server_ms']:19.3f} {f['broker_ms']:8.3f}"
            f" {f['client_ms']:9.3f}"
        )
    bare, gateway = figures["bare Flask"], figures["gateway"]
    ratio = gateway["rps"] / bare["rps"]
    print(f"throughput ratio gateway / bare Flask: {ratio:.2f} (no goal: see bench/README.md)")
    # where the cores are the limit, requests/s go as 1 / (CPU per request of all parts)
    per_request = {
        name: f["server_ms"] + f["broker_ms"] + f["client_ms"] for name, f in figures.items()
    }
    bound = (bare["server_ms"] + bare["client_ms"]) / (
        bare["server_ms"] + bare["client_ms"] + gateway["broker_ms"]
    )
    print(
        "CPU per request, server + RabbitMQ + load generator: "
        f"bare {per_request['bare Flask']:.3f} ms, gateway {per_request['gateway']:.3f} ms "
        f"(their ratio {per_request['bare Flask'] / per_request['gateway']:.2f}); bare Flask "
        f"with only RabbitMQ's share added: {bound:.2f}"
    )
    print(f"gateway p99 at {options.rate:g} req/s: {figures['gateway']['p99']:.2f} ms (goal < 25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
