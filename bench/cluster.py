"""trackfill on a real three-node RabbitMQ cluster, with node loss (docs/scaling.md).

Three RabbitMQ nodes on this machine in a scratch directory, each with its own node
name, AMQP, distribution and management ports, sharing one Erlang cookie (its own, in the
scratch HOME: the machine's RabbitMQ on 5672/15672/25672 is never touched). The second and
third join the first; then per row the stack runs on the cluster on a scratch database:
the simulator, the gateway, two publishers and two ingestors, the selector as its daemon,
each service given the three nodes in AMQP_URL starting at a different one (spread
across the nodes). Each row seeds the purchases of bench/faults.py, packs of two start URLs
created at most every 0.5 s (a backlog of packed candidates in flight), strikes once the
first creation is made, and waits (bounded) until every purchase is filled:

- kill -9 of the node holding publisher.candidates' quorum leader;
- kill -9 of the node the active publisher is connected to;
- a node stopped and started again during the backlog;
- a rolling restart of all three, one after the other.

A network partition of one node is not made: on one machine the nodes meet on loopback,
and cutting one node off means filtering its distribution port with the kernel's packet
filter, which this machine's own RabbitMQ shares (docs/scaling.md says more).

Columns as bench/faults.py's (lost, duplicate scraping jobs, URLs in two jobs, 429s, dead
letters, leaked secrets), the seconds from the fault until creations resumed (the first
create call after it), and the quorum members of each queue before and after. A killed
node is started again before the next row, and the cluster is stopped and its directory
removed at the end, on Ctrl-C too.

    .venv/bin/python bench/cluster.py [--only leader-node,...] [--keep-logs DIR]

It needs RabbitMQ's own scripts (rabbitmq-server, rabbitmqctl) and PostgreSQL on
127.0.0.1:5432; it is too heavy for CI and is not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.faults import (  # noqa: E402
    TIMINGS,
    Outcome,
    ended,
    leaks,
    measure,
    seed,
    selector_daemon,
)
from bench.scratch import scratch_database  # noqa: E402
from demo.stack import Stack, free_port, start_stack  # noqa: E402
from shared.db.session import make_engine  # noqa: E402
from shared.messaging.topology import all_queues  # noqa: E402

ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
BASE_PORT = 5801  # AMQP 5801-5803, distribution 25801-25803, management 15801-15803
RUN_TIMEOUT_S = 120
#: RabbitMQ's own scripts: Debian's /usr/sbin wrappers run them as the rabbitmq user, in
#: its HOME with its cookie (the machine's node's), so the scripts are called directly
SCRIPTS = next(
    (p for p in (Path("/usr/lib/rabbitmq/bin"),) if (p / "rabbitmq-server").exists()), None
)


def script(name: str) -> str:
    return str(SCRIPTS / name) if SCRIPTS else name


PACKING = {"PUBLISH_MAX_URLS_PER_JOB": "2", "PUBLISH_MIN_INTERVAL_S": "0.5"}


@dataclass
class Node:
    index: int
    home: Path

    @property
    def name(self) -> str:
        return f"trackfill-bench-{self.index}@localhost"

    @property
    def amqp_port(self) -> int:
        return BASE_PORT + self.index - 1

    @property
    def dist_port(self) -> int:
        return 20000 + self.amqp_port

    @property
    def management_port(self) -> int:
        return 10000 + self.amqp_port

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def base(self) -> Path:
        return self.home / self.name.partition("@")[0]


@dataclass
class Cluster:
    """Three nodes in ``home`` (the scratch HOME, whose Erlang cookie they share)."""

    home: Path
    nodes: list[Node] = field(default_factory=list)
    processes: dict[int, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = [Node(i, self.home) for i in (1, 2, 3)]
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)

    def env(self, node: Node) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(node.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.base / "log"),
            "RABBITMQ_CONF_ENV_FILE": str(node.base / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(node.base / "pid"),
        }

    def ctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [script("rabbitmqctl"), "-n", node.name, *args],
            env=self.env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {node.name}: {done.stderr}")
        return done.stdout

    def launch(self, node: Node) -> None:
        node.base.mkdir(parents=True, exist_ok=True)
        (node.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n"
            f"management.tcp.port = {node.management_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            "cluster_partition_handling = pause_minority\n"
        )
        (node.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (node.base / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's
        log = (node.base / "server.log").open("a")
        self.processes[node.index] = subprocess.Popen(
            [script("rabbitmq-server")],
            env=self.env(node),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120  # until the node has registered, then booted
        while True:
            try:
                self.ctl(node, "await_startup", timeout=120)
                return
            except RuntimeError:
                if time.monotonic() > deadline or not self.running(node):
                    tail = (node.base / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{node.name} did not start:\n{tail}") from None
                time.sleep(1)

    def start(self) -> None:
        for node in self.nodes:
            self.launch(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")

    def kill(self, node: Node) -> None:
        """``kill -9`` of the node (its whole process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.processes[node.index].pid, signal.SIGKILL)
        self.processes[node.index].wait(30)

    def stop_node(self, node: Node) -> None:
        self.ctl(node, "stop", timeout=120)
        self.processes[node.index].wait(60)

    def running(self, node: Node) -> bool:
        return self.processes[node.index].poll() is None

    def ensure_all(self) -> None:
        """Every node up again (after a row that left one down)."""
        for node in self.nodes:
            if not self.running(node):
                self.launch(node)

    def stop(self) -> None:
        for node in self.nodes:
            if node.index in self.processes and self.running(node):
                with contextlib.suppress(Exception):
                    self.stop_node(node)
            if node.index in self.processes and self.running(node):
                self.kill(node)

    def urls_from(self, index: int) -> str:
        """The three nodes' URLs, starting at node ``index`` (1-3)."""
        order = self.nodes[index - 1 :] + self.nodes[: index - 1]
        return ";".join(node.url for node in order)

    def api(self, path: str) -> object:
        """The management API of the first node that answers."""
        for node in self.nodes:
            if not self.running(node):
                continue
            with contextlib.suppress(requests.RequestException):
                answer = requests.get(
                    f"http://127.0.0.1:{node.management_port}/api/{path}",
                    auth=("guest", "guest"),
                    timeout=5,
                )
                if answer.ok:
                    return answer.json()
        raise RuntimeError(f"no node's management API answered {path}")

    def node_named(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def members(self) -> dict[str, str]:
        """Each quorum queue's members online / members (e.g. ``3/3``)."""
        names = {queue.name for queue in all_queues()}
        found = {}
        for queue in self.api("queues/%2F"):  # type: ignore[union-attr]
            if queue["name"] in names and queue.get("type") == "quorum":
                online, members = len(queue.get("online", [])), len(queue.get("members", []))
                found[queue["name"]] = f"{online}/{members}"
        return found


# -- the faults ----------------------------------------------------------------------------
Strike = Callable[[Cluster], str]


def leader_node(cluster: Cluster) -> str:
    queue = cluster.api("queues/%2F/publisher.candidates")
    node = cluster.node_named(queue["leader"])  # type: ignore[index]
    cluster.kill(node)
    return f"kill -9 {node.name} (publisher.candidates' leader)"


def active_publisher_node(cluster: Cluster) -> str:
    queue = cluster.api("queues/%2F/publisher.candidates")
    active = next(
        c
        for c in queue["consumer_details"]  # type: ignore[index]
        if c["consumer_tag"] == queue.get("single_active_consumer_tag")  # type: ignore[union-attr]
    )
    connection = cluster.api(f"connections/{active['channel_details']['connection_name']}")
    node = cluster.node_named(connection["node"])  # type: ignore[index]
    cluster.kill(node)
    return f"kill -9 {node.name} (the active publisher's)"


def stop_and_start(cluster: Cluster) -> str:
    node = cluster.nodes[1]
    cluster.stop_node(node)
    time.sleep(2)
    cluster.launch(node)
    return f"{node.name} stopped, started 2 s later"


def rolling_restart(cluster: Cluster) -> str:
    for node in cluster.nodes:
        cluster.stop_node(node)
        cluster.launch(node)
        deadline = time.monotonic() + 60  # its queues have their members back
        while time.monotonic() < deadline and any(
            m.split("/")[0] != m.split("/")[1] for m in cluster.members().values()
        ):
            time.sleep(0.5)
    return "each node stopped and started again, one after the other"


ROWS: dict[str, Strike] = {
    "leader-node": leader_node,
    "active-publisher-node": active_publisher_node,
    "stop-start": stop_and_start,
    "rolling-restart": rolling_restart,
}


@dataclass
class Row:
    outcome: Outcome
    note: str = ""
    resumed_s: float | None = None
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)


def spread(cluster: Cluster, stack: Stack) -> None:
    """A second publisher and a second ingestor, each starting at another node."""
    for name, node in (("publisher", 2), ("ingestor", 3)):
        command, env = stack.launches[name]
        replica = f"{name}-2"
        stack.launches[replica] = (
            command,
            {**env, "AMQP_URL": cluster.urls_from(node), "METRICS_PORT": str(free_port())},
        )
        stack.restart(replica)
        stack.wait_for_line(replica, "consuming")


def first_create_after(stack: Stack, at: float) -> float | None:
    times = [c["t"] for c in stack.sim_state()["calls"] if c["kind"] == "create"]
    later = [t for t in times if t > at]
    return min(later) - at if later else None


def one_row(cluster: Cluster, name: str, logs: Path) -> Row:
    cluster.ensure_all()
    row = Row(Outcome(), before=cluster.members())
    with scratch_database() as database_url:
        engine = make_engine(database_url)
        seed(engine)
        stack = start_stack(
            database_url,
            cluster.urls_from(1),
            logs,
            TIMINGS,
            api_token=f"bench-token-{uuid.uuid4().hex[:12]}",
            webhook_token=f"bench-webhook-{uuid.uuid4().hex}",
            webhook_retry_delays="5,10",
            sim_args=["--latency-s", "0.2"],
            extra_env=PACKING,
            service_env={
                "webhook_gateway": {"AMQP_URL": cluster.urls_from(3)},
                "ingestor": {"AMQP_URL": cluster.urls_from(2)},
            },
        )
        started = time.monotonic()
        try:
            spread(cluster, stack)
            selector_daemon(stack)
            deadline = time.monotonic() + 30  # the backlog is being created
            while time.monotonic() < deadline and first_create_after(stack, 0) is None:
                time.sleep(0.1)
            struck_at = time.time()
            row.note = ROWS[name](cluster)
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while not ended(engine) and time.monotonic() < deadline:
                time.sleep(0.2)
            row.outcome.seconds = time.monotonic() - started
            row.resumed_s = first_create_after(stack, struck_at)
            measure(row.outcome, engine, stack, cluster.urls_from(1))
            row.after = cluster.members()
        finally:
            stack.stop()
            engine.dispose()
        row.outcome.leaks = leaks(logs, stack)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="rows, comma-separated: " + ", ".join(ROWS))
    parser.add_argument("--keep-logs", type=Path, help="keep the logs here")
    args = parser.parse_args()
    if SCRIPTS is None and not shutil.which("rabbitmq-server"):
        print("rabbitmq-server is not installed here", file=sys.stderr)
        return 2
    rows = args.only.split(",") if args.only else list(ROWS)
    home = Path(tempfile.mkdtemp(prefix="trackfill-cluster-"))
    cluster = Cluster(home)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        cluster.start()
        names = ", ".join(n.name for n in cluster.nodes)
        print(f"cluster: {names} (AMQP {BASE_PORT}-{BASE_PORT + 2})", flush=True)
        print(
            f"{'row':<22} {'filled':>6} {'lost':>4} {'dup':>4} {'URLs2':>5} {'429':>4} "
            f"{'dead':>4} {'leaks':>5} {'resumed':>8} {'run s':>6}  quorum members before -> after"
        )
        for name in rows:
            logs = (args.keep_logs or home / "logs") / name
            row = one_row(cluster, name, logs)
            o = row.outcome
            resumed = f"{row.resumed_s:.1f}s" if row.resumed_s is not None else "-"
            members = "; ".join(
                f"{q} {row.before.get(q, '?')}->{row.after.get(q, '?')}" for q in sorted(row.after)
            )
            print(
                f"{name:<22} {o.filled:>6} {o.lost:>4} {o.duplicates:>4} {o.urls_twice:>5} "
                f"{o.rate_limited:>4} {o.dead_letters:>4} {o.leaks:>5} {resumed:>8} "
                f"{o.seconds:>6.1f}  {members}",
                flush=True,
            )
            print(f"{'':<22} {row.note}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping the cluster", file=sys.stderr)
        return 130
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
