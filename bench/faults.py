"""Faults on the full pipeline: does anything get lost, duplicated or leaked?

Each run: a scratch database and vhost, 12 purchases whose pages all carry a valid
tracking number, the simulator and the four services as processes (demo.stack, time
compressed 100x, the webhook retried after 5 and 10 s as the real service does, the
selector as its daemon with its reconciler), one fault at a random moment, then a wait
(bounded) until every purchase is filled and no job is in flight. Per scenario the
table shows: runs, candidates (tracking jobs made), filled, lost (a purchase not
filled), duplicate scraping jobs (creates that made a second job for one custom_id),
URLs twice (start URLs sent in more than one scraping job: a page loaded, and paid,
again), 429 answers, dead letters, leaked secrets (API or webhook
token, or a full e-mail address, in any log line), the slowest time from selection to
the last job ended, and for the kills how many landed while the killed process had work in hand.

A kill waits until its service has work (the publisher: jobs queued or being created;
the ingestor: jobs whose scraping job ended and that are not yet imported; the gateway:
ended jobs whose webhook is not yet answered; the selector: a pass not yet published),
then strikes after a delay drawn for each run over that busy phase, and records what the
process had in hand at that moment.

    .venv/bin/python bench/faults.py --quick     # a few runs of each scenario
    .venv/bin/python bench/faults.py             # 20 kills per service, the rest x3
    .venv/bin/python bench/faults.py --only kill-publisher --runs 5

Everything targets 127.0.0.1, is bounded in count and time, and cleans up. The broker
and database scenarios restart the local RabbitMQ node (rabbitmqctl stop_app/start_app)
and PostgreSQL cluster (pg_ctlcluster): run them on a development machine only.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.scratch import scratch_services  # noqa: E402
from demo.stack import Stack, Timings, free_port, start_stack  # noqa: E402
from shared.db.models import OfficialAccount, Purchasing, TrackingJob  # noqa: E402
from shared.db.session import make_engine, make_session_factory  # noqa: E402
from shared.db.statuses import IN_FLIGHT  # noqa: E402
from shared.messaging.publishing import connect  # noqa: E402
from shared.messaging.topology import ROUTES  # noqa: E402

PURCHASES = 12
EMAIL = "fault.buyer@example.com"
TIMINGS = Timings(factor=100, sim_run_s=0.4, ingest_retry_s=0.3)

RUN_TIMEOUT_S = 90


@dataclass
class Outcome:
    candidates: int = 0
    filled: int = 0
    #: page credits the simulator billed (one per page loaded)
    billed: int = 0
    lost: int = 0
    duplicates: int = 0
    urls_twice: int = 0
    rate_limited: int = 0
    dead_letters: int = 0
    leaks: int = 0
    seconds: float = 0.0
    kills: int = 0
    busy_kills: int = 0
    #: the fault showed its effect (a kill struck; the simulator's fault fired)
    fired: bool = False
    notes: list[str] = field(default_factory=list)
    struck: list[Callable[[], bool]] = field(default_factory=list)


@dataclass(frozen=True)
class Applied:
    """A fault as applied: what was done, and for a kill whether it struck during work."""

    note: str
    busy: bool | None = None
    #: for a fault that strikes later: asked after the run whether it struck
    struck: Callable[[], bool] | None = None


Fault = Callable[[Stack, random.Random, object], Applied]


def seed(engine, extra_pages: tuple[str, ...] = (), sharing: int = 1) -> None:
    """The purchases, all with a valid number on their pages; the first ``sharing`` of
    them of one order (one page); ``extra_pages``: one more purchase per outcome digit
    (see :mod:`webscraper_sim.scenarios`), not to be filled."""
    orders = [f"W{8_000_000_000 + n * 10 + n % 4:010d}" for n in range(PURCHASES)]
    orders[:sharing] = orders[:1] * sharing
    orders += [f"W{810_000_000 + n:09d}{digit}" for n, digit in enumerate(extra_pages)]
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        account = session.execute(
            OfficialAccount.__table__.insert().values(email=EMAIL).returning(OfficialAccount.id)
        ).scalar_one()
        session.execute(
            Purchasing.__table__.insert(),
            [{"order_number": order, "official_account_id": account} for order in orders],
        )


def ended(engine) -> bool:
    """Every purchase filled and no job in flight (a purchase whose job failed is
    selected again after its re-check delay, so a run waits for that too)."""
    with engine.connect() as db:
        open_jobs = db.execute(
            select(func.count()).where(TrackingJob.status.in_(IN_FLIGHT))
        ).scalar_one()
        filled = db.execute(
            select(func.count()).where(Purchasing.tracking_number.is_not(None))
        ).scalar_one()
    return filled == PURCHASES and open_jobs == 0


# -- the faults ------------------------------------------------------------------------------
def activity(name: str, stack: Stack, engine) -> str:
    """The work ``name`` has in hand now ('' if none), from the database and the simulator."""
    with engine.connect() as db:
        rows = db.execute(
            select(TrackingJob.status, TrackingJob.scraping_job_id, TrackingJob.published_at)
        ).all()
    if name == "publisher":
        counts = Counter(status for status, _, _ in rows if status in ("queued", "publishing"))
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if name == "selector":
        unpublished = sum(1 for status, _, at in rows if status == "queued" and at is None)
        return f"{unpublished} jobs not yet published" if unpublished or not rows else ""
    sim = stack.sim_state()
    ended = {j["id"] for j in sim["jobs"] if j["status"] in ("finished", "failed", "stopped")}
    open_ = {scraping_job_id for status, scraping_job_id, _ in rows if status == "pending"} & ended
    if name == "webhook_gateway":  # its phase: while the jobs' webhooks are still to come
        answered = {w["job_id"] for w in sim["webhooks"] if w["outcome"] == 200}
        waiting = {
            scraping_job_id for status, scraping_job_id, _ in rows if status == "pending"
        } - answered
        return f"{len(waiting)} webhooks still to come" if waiting else ""
    return f"{len(open_)} ended jobs not yet imported" if open_ else ""


def strike(name: str, busy_phase_s: float, stack: Stack, rng: random.Random, engine) -> Applied:
    """kill -9 of ``name`` at a moment drawn over its busy phase (once it has work)."""
    deadline = time.monotonic() + 20
    while not activity(name, stack, engine) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, busy_phase_s))
    doing = activity(name, stack, engine)
    stack.kill(name)
    return Applied(f"killed {name} with {doing or 'nothing'} in hand", busy=bool(doing))


def kill(name: str, busy_phase_s: float) -> Fault:
    """A kill during work, then a restart."""

    def fault(stack: Stack, rng: random.Random, engine) -> Applied:
        applied = strike(name, busy_phase_s, stack, rng, engine)
        time.sleep(0.3)  # a supervisor's restart delay
        stack.restart(name)
        return applied

    return fault


def broker_restart(stack: Stack, rng: random.Random, engine) -> Applied:
    time.sleep(rng.uniform(0.5, 1.5))
    busy = not ended(engine)  # the restart strikes while jobs are in flight
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=60)
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
    subprocess.run(["rabbitmqctl", "-q", "await_startup"], check=True, timeout=120)
    return Applied("rabbitmq stop_app/start_app", struck=lambda: busy)


def database_restart(stack: Stack, rng: random.Random, engine) -> Applied:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    control = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    time.sleep(rng.uniform(0.5, 1.5))
    busy = not ended(engine)
    subprocess.run([*control, "stop", "-m", "fast"], check=True, timeout=60)
    time.sleep(2)
    subprocess.run([*control, "start"], check=True, timeout=60)
    return Applied("postgresql stop/start", struck=lambda: busy)


def sim_fault(values: dict) -> Fault:
    def fault(stack: Stack, rng: random.Random, engine) -> Applied:
        base = stack.api_url.removesuffix("api/v1/")
        requests.post(f"{base}__sim/faults", json=values, timeout=5).raise_for_status()
        return Applied(f"simulator: {values}")

    return fault


def outage_after_end(seconds: float) -> Fault:
    """Every API call answers 503 for ``seconds``, from the moment the first scraping
    job has ended (its webhook on the way): the ingestor must not give the scrape up."""

    def fault(stack: Stack, rng: random.Random, engine) -> Applied:
        base = stack.api_url.removesuffix("api/v1/")

        def outage() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if any(j["status"] == "finished" for j in stack.sim_state()["jobs"]):
                    break
                time.sleep(0.01)
            faults = {"error_burst": 1_000_000, "error_status": 503}
            requests.post(f"{base}__sim/faults", json=faults, timeout=5).raise_for_status()
            time.sleep(seconds)
            requests.post(f"{base}__sim/faults", json={"error_burst": 0}, timeout=5)

        threading.Thread(target=outage, daemon=True).start()
        return Applied(f"API answers 503 for {seconds:g} s once a job has ended")

    return fault


def crash_at(name: str, point: str, down_s: float) -> Fault:
    """``name`` dies (exit 137, as kill -9) at its crash point ``point`` the first time
    it gets there, and stays down ``down_s`` before a supervisor restarts it."""

    def fault(stack: Stack, rng: random.Random, engine) -> Applied:
        command, env = stack.launches[name]
        stack.launches[name] = (command, {**env, "TRACKFILL_CRASH_AT": point})
        stack.kill(name)
        stack.restart(name)
        stack.wait_for_line(name, "consuming")
        crashed = threading.Event()

        def supervise() -> None:
            deadline = time.monotonic() + 60
            while stack.processes[name].poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if stack.processes[name].poll() == 137:
                crashed.set()
            time.sleep(down_s)
            stack.launches[name] = (command, env)
            if stack.processes[name].poll() is not None:
                stack.restart(name)

        threading.Thread(target=supervise, daemon=True).start()
        return Applied(
            f"{name} dies at {point}, restarted {down_s:g} s later", None, crashed.is_set
        )

    return fault


def delete_first_job(stack: Stack, rng: random.Random, engine) -> Applied:
    """A user deletes the first scraping job on the service's side while it runs: no
    webhook will come, and the API answers 404 for it from then on."""
    deadline = time.monotonic() + 20
    while not stack.sim_state()["jobs"] and time.monotonic() < deadline:
        time.sleep(0.01)
    scraping_job_id = stack.sim_state()["jobs"][0]["id"]
    requests.delete(
        f"{stack.api_url}scraping-job/{scraping_job_id}",
        params={"api_token": stack.env["WEBSCRAPER_API_TOKEN"]},
        timeout=5,
    ).raise_for_status()
    return Applied(f"scraping job {scraping_job_id} deleted")


def standby_publisher(stack: Stack) -> None:
    """A second publisher, ready before the batch: a hot standby (single active consumer)."""
    command, env = stack.launches["publisher"]
    # a replica of its own: its metrics on another port (the same one would stop it at start)
    stack.launches["publisher-2"] = (command, {**env, "METRICS_PORT": str(free_port())})
    stack.restart("publisher-2")
    stack.wait_for_line("publisher-2", "consuming")


def second_publisher(stack: Stack, rng: random.Random, engine) -> Applied:
    applied = strike("publisher", 0.1, stack, rng, engine)  # the standby must take over
    return Applied(f"two publishers; {applied.note}; not restarted", applied.busy)


#: name → (fault, applied before the selection pass?)
SCENARIOS: dict[str, tuple[Fault, bool]] = {
    "kill-publisher": (kill("publisher", 0.1), False),
    "kill-ingestor": (kill("ingestor", 0.6), False),
    "kill-webhook_gateway": (kill("webhook_gateway", 0.6), False),
    "kill-selector": (kill("selector", 0.3), False),
    "broker-restart": (broker_restart, False),
    "database-restart": (database_restart, False),
    "api-5xx-burst": (sim_fault({"error_burst": 6, "error_status": 503}), True),
    "api-slow-past-timeout": (sim_fault({"slow": 3, "slow_s": 3.0}), True),
    "api-429-storm": (sim_fault({"rate_limit_storm": 5, "storm_retry_after_s": 1}), True),
    "create-answer-lost": (sim_fault({"lose_create_answer": 3}), True),
    # the create's answer is lost, and the searches for it meet an outage
    "lost-create-and-search-outage": (
        sim_fault(
            {
                "lose_create_answer": 2,
                "webhook_drop": 2,  # no webhook names the job: the search must
                "error_burst": 6,
                "error_status": 503,
                "error_kinds": ["list"],
            }
        ),  # fmt: skip
        True,
    ),
    # 503s for 5 minutes (compressed) right after the jobs end
    "api-outage-after-end": (outage_after_end(3.0), True),
    # a pack with an empty page, its other pages' data late
    "late-data-beside-empty": (sim_fault({"data_delay_s": 0.6}), True),
    # ten purchases share one page and reach the publisher in passes of four: one job
    "split-order-page": (sim_fault({}), True),
    "webhooks-x3": (sim_fault({"webhook_duplicates": 3}), True),
    "webhooks-out-of-order": (sim_fault({"webhook_out_of_order": True}), True),
    "data-late": (sim_fault({"data_delay_s": 0.6}), True),
    "webhook-never-arrives": (sim_fault({"webhook_drop": 1}), True),
    # the webhook comes while the publisher, dead after the create's answer, has not
    # stored the job id (for longer than the ingestor's retries)
    "notification-before-job-id": (crash_at("publisher", "api:answered:create", 3.0), True),
    "scraping-job-deleted": (delete_first_job, False),
    "ingestor-dies-mid-pack": (crash_at("ingestor", "api:answered:json", 0.5), True),
    "two-publishers": (second_publisher, False),
}
#: more purchases for a scenario: the outcome digit of each one's page (not filled)
EXTRA_PAGES = {"late-data-beside-empty": ("7",)}
#: settings for a scenario that needs more than one pack to show its fault
EXTRA_ENV = {
    "webhooks-out-of-order": {"PUBLISH_MAX_URLS_PER_JOB": "4"},
    "split-order-page": {"SELECTOR_MAX_RECORDS": "4"},
}
#: purchases that share one order's page, for a scenario (the others have one each)
SHARING = {"split-order-page": 10}
#: 429s the simulator is told to answer whatever the quota says (per run)
INJECTED_429 = {"api-429-storm": 5}
#: the figures added up over a scenario's runs
COUNTS = ("candidates", "filled", "billed", "lost", "duplicates", "urls_twice", "rate_limited",
          "dead_letters", "leaks", "kills", "busy_kills")  # fmt: skip
#: how each simulator fault shows in the simulator's record of a run
FIRED: dict[str, Callable[[dict], bool]] = {
    "api-5xx-burst": lambda sim: any(c["status"] == 503 for c in sim["calls"]),
    "api-slow-past-timeout": lambda sim: sim["faults"]["slow"] == 0,
    "api-429-storm": lambda sim: any(c["status"] == 429 for c in sim["calls"]),
    "create-answer-lost": lambda sim: any(c.get("lost") for c in sim["calls"]),
    "lost-create-and-search-outage": lambda sim: any(
        c["kind"] == "list" and c["status"] == 503 for c in sim["calls"]
    ),
    "api-outage-after-end": lambda sim: any(c["status"] == 503 for c in sim["calls"]),
    "late-data-beside-empty": lambda sim: (
        sum(c["kind"] == "json" for c in sim["calls"]) > len(sim["jobs"])
    ),
    "split-order-page": lambda sim: len(sim["jobs"]) > 1,  # the page's purchases came apart
    "webhooks-x3": lambda sim: any(w["copy"] > 1 for w in sim["webhooks"]),
    "webhooks-out-of-order": lambda sim: (
        [w["job_id"] for w in sim["webhooks"]] != sorted(w["job_id"] for w in sim["webhooks"])
    ),
    "data-late": lambda sim: sum(c["kind"] == "json" for c in sim["calls"]) > len(sim["jobs"]),
    "webhook-never-arrives": lambda sim: sim["faults"]["webhook_drop"] == 0,
    "scraping-job-deleted": lambda sim: any(c["status"] == 404 for c in sim["calls"]),
    # the records were downloaded again by the ingestor's second life
    "ingestor-dies-mid-pack": lambda sim: (
        sum(c["kind"] == "json" for c in sim["calls"]) > len(sim["jobs"])
    ),
}


def selector_daemon(stack: Stack) -> None:
    """The selector runs as its daemon, its reconciler with it: a job without an ending
    is looked at RECONCILE_AFTER_S (compressed) after its creation."""
    env = {**stack.env, "SELECTOR_INTERVAL_S": "1", "SELECTOR_REPUBLISH_GRACE_S": "1"}
    stack.launches["selector"] = ([sys.executable, "-m", "selector"], env)
    stack.restart("selector")


def one_run(name: str, rng: random.Random, logs: Path) -> Outcome:
    fault, before = SCENARIOS[name]
    outcome = Outcome()
    with scratch_services() as (database_url, amqp_url):
        engine = make_engine(database_url)
        seed(engine, EXTRA_PAGES.get(name, ()), SHARING.get(name, 1))
        stack = start_stack(
            database_url,
            amqp_url,
            logs,
            TIMINGS,
            api_token=f"bench-token-{rng.getrandbits(48):x}",
            webhook_token=f"bench-webhook-{rng.getrandbits(64):x}",
            webhook_retry_delays="5,10",
            # answers take as long as a real API's: a pack's create is work in hand
            sim_args=["--latency-s", "0.2"],
            extra_env=EXTRA_ENV.get(name),
        )
        started = time.monotonic()
        try:
            if before:
                record(outcome, fault(stack, rng, engine))
            if name == "two-publishers":
                standby_publisher(stack)
            selector_daemon(stack)
            if not before:
                record(outcome, fault(stack, rng, engine))
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while not ended(engine) and time.monotonic() < deadline:
                time.sleep(0.2)
            outcome.seconds = time.monotonic() - started
            measure(outcome, engine, stack, amqp_url)
            sim = stack.sim_state()
            outcome.fired = (
                FIRED[name](sim)
                if name in FIRED
                else outcome.kills > 0 or any(struck() for struck in outcome.struck)
            )
        finally:
            stack.stop()
            engine.dispose()
        outcome.leaks = leaks(logs, stack)
    return outcome


def record(outcome: Outcome, applied: Applied) -> None:
    outcome.notes.append(applied.note)
    if applied.struck is not None:
        outcome.struck.append(applied.struck)
    if applied.busy is not None:
        outcome.kills += 1
        outcome.busy_kills += applied.busy


def measure(outcome: Outcome, engine, stack: Stack, amqp_url: str) -> None:
    with engine.connect() as db:
        outcome.candidates = db.execute(select(func.count()).select_from(TrackingJob)).scalar_one()
        outcome.filled = db.execute(
            select(func.count()).where(Purchasing.tracking_number.is_not(None))
        ).scalar_one()
    outcome.lost = PURCHASES - outcome.filled
    state = stack.sim_state()
    calls = state["calls"]
    # a second scraping job for a pack; a start URL in a second scraping job
    made = Counter(c["custom_id"] for c in calls if c["kind"] == "create" and c.get("job_id"))
    urls = Counter(url for job in state["jobs"] for url in job["start_urls"])
    outcome.duplicates = sum(n - 1 for n in made.values() if n > 1)
    outcome.urls_twice = sum(n - 1 for n in urls.values() if n > 1)
    outcome.rate_limited = sum(1 for c in calls if c["status"] == 429)
    outcome.billed = state["billed"]
    with connect(amqp_url) as connection, connection.channel() as channel:
        for route in ROUTES.values():
            _, count, _ = channel.queue_declare(route.dead_letter_queue, passive=True)
            outcome.dead_letters += count


def leaks(logs: Path, stack: Stack) -> int:
    secrets = [stack.env["WEBSCRAPER_API_TOKEN"], stack.env["WEBHOOK_TOKEN"]]
    found = 0
    for path in logs.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            found += any(secret in line for secret in secrets)
            found += bool(re.search(r"[\w.+-]{2,}@example\.com", line))
    return found


def runs_of(name: str, quick: bool) -> int:
    """20 kills per service and 3 runs of the rest; --quick: 2 and 1."""
    if name.startswith("kill"):
        return 2 if quick else 20
    return 1 if quick else 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 runs per kill, 1 of the rest")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--runs", type=int, help="runs of every chosen scenario")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--skip-restarts", action="store_true", help="no broker/database restart")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"seed {args.seed} (each run draws its own moments from it)")
    names = args.only or list(SCENARIOS)
    if args.skip_restarts:
        names = [n for n in names if not n.endswith("-restart")]
    print(f"{'scenario':30} {'runs':>4} {'cand.':>5} {'filled':>6} {'cred/':>6} {'lost':>4} "
          f"{'dup':>3} "
          f"{'URLs twice':>10} {'429*':>4} {'dead':>4} {'leaks':>5} {'max s':>6} "
          f"{'busy kills':>10}")  # fmt: skip
    failures = 0
    for name in names:
        runs = args.runs or runs_of(name, args.quick)
        totals, slowest, fired = Outcome(), 0.0, 0
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="trackfill-faults-") as logs:
                result = one_run(name, rng, Path(logs))
            for key in COUNTS:
                setattr(totals, key, getattr(totals, key) + getattr(result, key))
            slowest = max(slowest, result.seconds)
            fired += result.fired
        quota_429 = totals.rate_limited - INJECTED_429.get(name, 0) * runs
        bad = totals.lost or totals.duplicates or totals.urls_twice or quota_429 or totals.leaks
        failures += bool(bad)
        busy = f"{totals.busy_kills}/{totals.kills}" if totals.kills else "-"
        print(
            f"{name:30} {runs:4d} {totals.candidates:5d} {totals.filled:6d} "
            f"{totals.billed / max(totals.filled, 1):6.3f} {totals.lost:4d} "
            f"{totals.duplicates:3d} {totals.urls_twice:10d} {quota_429:4d} "
            f"{totals.dead_letters:4d} {totals.leaks:5d} {slowest:6.1f} {busy:>10}"
            + ("  <- FAILS THE GOAL" if bad else "")
            + (f"  (the fault showed in {fired} of {runs} runs)" if fired < runs else ""),
            flush=True,
        )
    print("cred/: page credits the simulator billed per purchase filled")
    print("429*: answers beyond the ones the simulator was told to inject")
    print("busy kills: kills that struck while the killed process had work in hand / kills")
    print("goal: 0 lost, 0 duplicate jobs, 0 URLs twice, 0 429s, 0 leaks in every row")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
