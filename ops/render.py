"""How the operator's commands look on a terminal (rich); ``--json`` skips all of this."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

from ops.dead_letters import Listing
from shared.domain.masking import mask_emails_in


def tasks(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="tasks")
    columns = ("task", "sitemap", "in flight", "untaken", "creations this window", "last pass")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["task"],
            str(row["sitemap_id"]) if row["enabled"] else "off",
            str(row["in_flight"]),
            str(row["untaken"]) + (" (no publisher takes them)" if row["untaken"] else ""),
            str(row["creations_in_window"]),
            (row["last_pass"] or "never")[:19],
        )
    return table


def status(data: dict[str, Any], console: Console) -> None:
    console.print(_batches(data["batches"]))
    console.print(_in_flight(data["jobs_in_flight"]))
    console.print(f"given up (RECHECK_EXPIRE_S passed, no tracking number): {data['expired']}")
    console.print(_quota(data["quota"]))
    console.print(credits(data["credits"]), markup=False)
    console.print(events(data["events"]), markup=False)
    console.print(tasks(data["tasks"]))
    if data.get("queues") is not None:
        console.print(queues(data["queues"]))
    for entry in data["sync_log"]:
        mark = "ok" if entry["success"] else "FAILED"
        line = f"{entry['timestamp'][:19]} {entry['operation_type']} {mark}: {entry['message']}"
        console.print(mask_emails_in(line), markup=False)


def _batches(rows: list[dict[str, Any]]) -> Table:
    batches = Table(title="recent batches")
    for column in (
        "batch",
        "task",
        "status",
        "progress",
        "completed",
        "failed",
        "total",
        "created",
    ):
        batches.add_column(column)
    for b in rows:
        ended = b["completed_jobs"] + b["failed_jobs"]
        batches.add_row(
            b["batch_uuid"][:8],
            b["task_name"],
            b["status"],
            ProgressBar(total=max(b["total_jobs"], 1), completed=ended, width=20),
            str(b["completed_jobs"]),
            str(b["failed_jobs"]),
            str(b["total_jobs"]),
            b["created_at"][:19],
        )
    return batches


def _in_flight(jobs: dict[str, dict[str, Any]]) -> str:
    flight = [
        f"{s} {v['count']} (oldest {v['oldest_age_s']:g} s"
        + (", past RECONCILE_AFTER_S" if v["late"] else "")
        + ")"
        for s, v in jobs.items()
    ]
    return "jobs in flight: " + (", ".join(flight) or "none")


def _quota(quota: dict[str, Any]) -> str:
    return (
        f"quota: {quota['used']}/{quota['calls']} calls in the last {quota['span_s']:g} s "
        f"(the API's {quota['window_s']:g} s window and a margin) "
        f"({quota['left']} left) {quota['by_kind']}"
        + (f"; blocked until {quota['blocked_until']}" if quota["blocked_until"] else "")
    )


def events(data: dict[str, Any]) -> str:
    """The tracking.updated outbox: waiting for the relay (since when), relayed and kept."""
    waiting = f"{data['waiting']} waiting for the relay"
    if data["oldest_waiting_at"]:
        waiting += f" (the oldest written {data['oldest_waiting_at'][:19]})"
    return f"tracking.updated events: {waiting}, {data['relayed_kept']} relayed and kept"


def credits(data: dict[str, Any]) -> str:
    """The page credits: left, spent, per filled purchase, the day they run out."""
    if data["left"] is None:
        left = "left: not read yet (the selector reads them with an API token)"
    else:
        left = f"left: {data['left']} (read {data['read_at'][:19]})"
        if data["at_reserve"]:
            left += f", AT THE RESERVE {data['reserve']}: only manual requests are scraped"
    lines = [
        f"page credits {left}",
        f"  spent today (Tokyo): {_per_task(data['today'])}",
        f"  spent in 30 days: {_per_task(data['last_30_days'])}",
        "  per filled purchase (30 days): "
        + (f"{data['per_filled']:g}" if data["per_filled"] is not None else "-")
        + f" ({data['filled_30_days']} filled)",
        f"  at {data['per_day']:g} a day (the last 7 days): "
        + (f"run out in {data['days_left']:g} days, on {data['run_out_on']}"
           if data["run_out_on"] else "no run-out in sight"),
    ]  # fmt: skip
    return "\n".join(lines)


def _per_task(spent: dict[str, int]) -> str:
    if not spent:
        return "0"
    return f"{sum(spent.values())} (" + ", ".join(f"{t} {n}" for t, n in spent.items()) + ")"


def queues(depths: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="queues")
    for column in ("queue", "messages", "consumers", "note"):
        table.add_column(column)
    for name, depth in depths.items():
        notes = []
        if name.endswith(".dead-letter") and depth["messages"]:
            notes.append("dead letters: trackfill dead-letters list")
        if depth["unconsumed"]:
            notes.append("NO CONSUMER: is its service running?")
        if not depth["declared"]:
            notes.append("not declared yet")
        style = "red" if depth["unconsumed"] or "dead letters" in " ".join(notes) else None
        table.add_row(
            name, str(depth["messages"]), str(depth["consumers"]), "; ".join(notes), style=style
        )
    return table


def batch(batch_uuid: str, jobs: list[dict[str, Any]], console: Console) -> None:
    table = Table(title=f"batch {batch_uuid}: {len(jobs)} jobs")
    for column in ("custom_id", "purchasing_id", "job_id", "status", "error", "rejected"):
        table.add_column(column)
    for job in jobs:
        table.add_row(*(_text(job[c]) for c in job))
    console.print(table)


def story(data: dict[str, Any], console: Console) -> None:
    p = data["purchase"]
    console.print(f"purchase {p['id']}: order {p['order_number'] or '-'}, account {p['email']}")
    for field in ("tracking_number", "latest_delivery_status", "delivery_status_code",
                  "shipping_method",
                  "estimated_delivery_date", "updated_at"):  # fmt: skip
        console.print(f"  {field}: {_text(p[field])}", markup=False)
    check = data["check"]
    if check is None:
        console.print("checks: none scheduled")
    else:
        state = "GIVEN UP" if check["expired"] else f"gives up at {check['expires_at'][:19]}"
        console.print(
            f"checks: {check['attempts']} so far, next at {check['next_check_at'][:19]} "
            f"({state}); last: {check['last_reason'] or '-'}",
            markup=False,
        )
    jobs = Table(title=f"{len(data['jobs'])} tracking jobs")
    for column in ("custom_id", "batch", "scraping job", "status", "created", "ended", "why"):
        jobs.add_column(column)
    for job in data["jobs"]:
        why = "; ".join(
            [job["error"] or ""] + [f"{rule}: {v}" for rule, v in (job["rejected"] or {}).items()]
        ).strip("; ")
        jobs.add_row(
            job["custom_id"],
            job["batch_uuid"][:8],
            _text(job["job_id"]),
            job["status"],
            job["created_at"][:19],
            (job["completed_at"] or "-")[:19],
            why or "-",
        )
    console.print(jobs)
    calls = ", ".join(
        f"{c['kind']} {c['status'] or c['outcome'] or '?'}" for c in data["api_calls"]
    )
    console.print(f"API calls for them (the ledger): {calls or 'none'}", markup=False)


def dead_letters(listing: Listing, console: Console) -> None:
    table = Table(title=f"{len(listing.letters)} dead letters (none removed)")
    for column in ("message id", "origin", "reason", "dead-lettered", "body"):
        table.add_column(column)
    for x in listing.letters:
        table.add_row(
            x.message_id or "-",
            x.origin,
            x.reason,
            (x.dead_lettered_at or "-")[:19],
            mask_emails_in(x.body[:120]),
        )
    console.print(table)
    for queue in listing.cut:
        console.print(f"{queue} holds more: only the first ones are listed")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(value)
    return str(value)
