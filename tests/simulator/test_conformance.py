"""The simulator against docs/webscraper-api.md, over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import SIM_TOKEN
from tests.support.receiver import Receiver
from webscraper_sim.orders import OrderModel, page_at, story_of
from webscraper_sim.state import Living

JOB_KEYS = {
    "id",
    "custom_id",
    "sitemap_name",
    "status",
    "sitemap_id",
    "test_run",
    "jobs_scheduled",
    "jobs_executed",
    "jobs_failed",
    "jobs_empty",
    "jobs_no_value",
    "stored_record_count",
    "request_interval",
    "page_load_delay",
    "driver",
    "scheduled",
    "time_created",
    "scraping_duration",
}
SEED_BODY = {
    "sitemap_id": 1421177,
    "driver": "fulljs",
    "page_load_delay": 2000,
    "request_interval": 2000,
    "custom_id": "owryt-abc12345-0000",
}


def order_url(order: str) -> str:
    return f"https://store.apple.com/go/jp/vieworder/{order}/user@example.com"


class Api:
    def __init__(self, sim):
        self.sim, self.base = sim, sim.api_url
        self.http = requests.Session()

    def call(self, method: str, path: str, token: str | None = SIM_TOKEN, **kwargs):
        params = dict(kwargs.pop("params", {}))
        if token is not None:
            params["api_token"] = token
        return self.http.request(method, self.base + path, params=params, timeout=5, **kwargs)

    def create(self, *orders: str, **fields) -> int:
        body = {**SEED_BODY, "start_urls": [order_url(o) for o in orders], **fields}
        answer = self.call("POST", "scraping-job", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["id"]

    def job(self, scraping_job_id: int) -> dict:
        return self.call("GET", f"scraping-job/{scraping_job_id}").json()["data"]

    def wait_status(self, scraping_job_id: int, *statuses: str, timeout: float = 5) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(scraping_job_id)
            if job["status"] in statuses or time.monotonic() > deadline:
                return job
            time.sleep(0.03)


@pytest.fixture
def api(sim) -> Api:
    return Api(sim)


@pytest.fixture
def receiver(sim, monkeypatch):
    hook = Receiver()
    monkeypatch.setattr(sim.state.config, "webhook_url", hook.url)
    yield hook
    hook.close()


def test_create_answers_200_with_the_envelope_and_echoes_custom_id(api):
    answer = api.call("POST", "scraping-job", json={**SEED_BODY, "start_urls": [order_url("W1")]})
    assert answer.status_code == 200
    assert answer.json() == {
        "success": True,
        "data": {"id": 500, "custom_id": SEED_BODY["custom_id"]},
    }


def test_custom_id_is_null_when_unset_and_not_unique(api):
    first = api.create("W1234567890", custom_id=None)
    assert api.job(first)["custom_id"] is None
    a, b = api.create("W1", custom_id="same"), api.create("W2", custom_id="same")
    assert a != b


def test_a_job_object_has_exactly_the_18_keys(api):
    job = api.job(api.create("W1234567890"))
    assert set(job) == JOB_KEYS and len(job) == 18
    assert isinstance(job["time_created"], int)


def test_a_job_goes_through_its_lifecycle_to_finished(api, sim, monkeypatch):
    for name, value in (("schedule_delay_s", 0.3), ("start_delay_s", 0.3), ("run_s", 0.3)):
        monkeypatch.setattr(sim.state.config, name, value)
    scraping_job_id = api.create("W1234567890")
    seen = [api.job(scraping_job_id)["status"]]
    deadline = time.monotonic() + 5
    while seen[-1] != "finished" and time.monotonic() < deadline:
        status = api.job(scraping_job_id)["status"]
        if status != seen[-1]:
            seen.append(status)
        time.sleep(0.02)
    assert seen == ["waiting-to-be-scheduled", "scheduled", "started", "finished"]


@pytest.mark.parametrize(("ending", "status"), [("97", "stopped"), ("98", "failed")])
def test_jobs_can_end_stopped_or_failed(api, ending, status):
    job = api.wait_status(api.create(f"W12345678{ending}"), status)
    assert job["status"] == status and job["stored_record_count"] == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sitemap_id": 1}, "sitemap_id"),
        ({"sitemap_id": None}, "sitemap_id"),
        ({"driver": "chrome"}, "driver"),
        ({"page_load_delay": 100}, "page_load_delay"),
        ({"request_interval": "2000"}, "request_interval"),
        ({"start_urls": ["not a url"]}, "start_urls"),
        ({"start_urls": "https://store.apple.com/"}, "start_urls"),
        ({"custom_id": "x" * 300}, "custom_id"),
    ],
)
def test_a_bad_create_is_a_validation_failure_naming_the_field(api, change, field):
    body = {**SEED_BODY, "start_urls": [order_url("W1")], **change}
    answer = api.call("POST", "scraping-job", json=body)
    assert answer.status_code == 422
    assert answer.json()["success"] is False
    assert field in answer.json()["validationErrors"]


@pytest.mark.parametrize(
    "path",
    [
        "scraping-job/9999",
        "scraping-job/9999/json",
        "scraping-job/9999/csv",
        "scraping-job/9999/problematic-urls",
    ],
)
def test_an_unknown_job_is_404(api, path):
    assert api.call("GET", path).status_code == 404


@pytest.mark.parametrize("token", [None, "wrong"])
def test_the_api_token_is_checked_and_the_call_still_counts(api, sim, token):
    answer = api.call("GET", "account", token=token)
    assert answer.status_code == 401
    assert answer.headers["X-RateLimit-Remaining"] == str(sim.state.config.quota_calls - 1)


def test_json_lines_is_a_zero_byte_200_until_the_job_has_data(api, sim, monkeypatch):
    monkeypatch.setattr(sim.state.config, "run_s", 0.5)
    scraping_job_id = api.create("W1234567890", "W1234567893", "W1234567897")
    early = api.call("GET", f"scraping-job/{scraping_job_id}/json")
    assert (early.status_code, early.content) == (200, b"")
    api.wait_status(scraping_job_id, "stopped", "finished")


def test_json_lines_has_one_record_per_scraped_page_keyed_by_start_url(api):
    orders = ["W1234567890", "W1234567893", "W1234567894"]
    scraping_job_id = api.create(*orders, "W1234567807")  # the last one is an empty page
    api.wait_status(scraping_job_id, "finished")
    lines = api.call("GET", f"scraping-job/{scraping_job_id}/json").text.splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    assert {r["web-scraper-start-url"] for r in records} == {order_url(o) for o in orders}
    for record in records:
        assert record["web-scraper-order"].split("-")[0].isdigit()
        assert set(record) == {
            "web-scraper-order",
            "web-scraper-start-url",
            "tracking_number",
            "delivery_status",
            "shipping_method",
            "estimated_delivery_date",
        }
    not_shipped = next(r for r in records if "W1234567894" in r["web-scraper-start-url"])
    assert not_shipped["tracking_number"] is None
    job = api.job(scraping_job_id)
    assert (job["jobs_executed"], job["jobs_empty"], job["stored_record_count"]) == (4, 1, 3)


def test_csv_has_a_bom_crlf_an_unquoted_header_and_quoted_cells(api):
    scraping_job_id = api.create("W1234567894", "W1234567890")
    api.wait_status(scraping_job_id, "finished")
    raw = api.call("GET", f"scraping-job/{scraping_job_id}/csv").content
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw[3:].decode().split("\r\n")
    assert lines[0] == (
        "web-scraper-order,web-scraper-start-url,tracking_number,"
        "delivery_status,shipping_method,estimated_delivery_date"
    )
    assert lines[-1] == ""  # every line ends with CRLF
    rows = lines[1:-1]
    assert len(rows) == 2 and all(row.startswith('"') and row.endswith('"') for row in rows)
    # a missing value is an empty quoted cell (the not-shipped page has no number)
    assert any(row.split(",")[2] == '""' for row in rows)
    assert "\n" not in raw.replace(b"\r\n", b"").decode()


def test_problematic_urls_list_empty_and_failed_pages_with_pagination(api):
    scraping_job_id = api.create("W1234567807", "W1234567808", "W1234567890")
    api.wait_status(scraping_job_id, "finished")
    answer = api.call("GET", f"scraping-job/{scraping_job_id}/problematic-urls").json()
    assert {(p["url"], p["type"]) for p in answer["data"]} == {
        (order_url("W1234567807"), "empty"),
        (order_url("W1234567808"), "failed"),
    }
    assert (answer["current_page"], answer["last_page"], answer["total"], answer["per_page"]) == (
        1,
        1,
        2,
        100,
    )


def test_the_job_list_pages_by_100_and_a_page_past_the_end_is_empty(api, sim):
    ids = [api.create(f"W{n:010d}") for n in range(150)]
    first = api.call("GET", "scraping-jobs", params={"page": 1}).json()
    second = api.call("GET", "scraping-jobs", params={"page": 2}).json()
    past = api.call("GET", "scraping-jobs", params={"page": 3})
    assert (len(first["data"]), len(second["data"])) == (100, 50)
    assert (first["current_page"], first["last_page"], first["total"], first["per_page"]) == (
        1,
        2,
        150,
        100,
    )
    assert {j["id"] for j in first["data"] + second["data"]} == set(ids)
    assert past.status_code == 200 and past.json()["data"] == []
    assert all(set(j) == JOB_KEYS for j in first["data"])


def test_the_job_list_filters_by_sitemap_and_has_at_least_one_page(api):
    answer = api.call("GET", "scraping-jobs", params={"sitemap_id": 1421177}).json()
    assert (answer["data"], answer["last_page"], answer["total"]) == ([], 1, 0)
    api.create("W1")
    assert api.call("GET", "scraping-jobs", params={"sitemap_id": 1}).json()["total"] == 0
    assert api.call("GET", "scraping-jobs", params={"sitemap_id": 1421177}).json()["total"] == 1


def test_delete_answers_ok_and_the_job_is_gone(api):
    scraping_job_id = api.create("W1")
    assert api.call("DELETE", f"scraping-job/{scraping_job_id}").json() == {
        "success": True,
        "data": "ok",
    }
    assert api.call("GET", f"scraping-job/{scraping_job_id}").status_code == 404


def test_account(api):
    data = api.call("GET", "account").json()["data"]
    assert set(data) == {"email", "firstname", "lastname", "page_credits"}


def credits(api) -> int:
    return api.call("GET", "account").json()["data"]["page_credits"]


def test_each_page_loaded_costs_one_credit_whatever_it_held(api, sim):
    before = credits(api)
    # a shipped page, an empty page, a failed page: three loads; a search page of ten
    # numbers is one page
    scraping_job_id = api.create("W1234567890", "W1234567807", "W1234567808")
    api.wait_status(scraping_job_id, "finished", "failed")
    assert credits(api) == before - 3
    assert sim.state.snapshot()["billed"] == 3
    api.call("DELETE", f"scraping-job/{scraping_job_id}")
    assert sim.state.snapshot()["billed"] == 3  # what was billed stays billed


def test_with_no_credit_left_the_remaining_pages_are_not_loaded(api, sim, monkeypatch):
    monkeypatch.setattr(sim.state, "page_credits", 2)
    orders = ["W1234567890", "W1234567893", "W1234567810", "W1234567820"]
    job = api.wait_status(api.create(*orders), "finished", "failed")
    assert credits(api) == 0
    # two pages loaded; the two left are failed pages, not executed, and not billed
    assert (job["jobs_executed"], job["jobs_failed"], job["stored_record_count"]) == (2, 2, 2)
    problems = api.call("GET", f"scraping-job/{job['id']}/problematic-urls").json()["data"]
    assert {p["url"] for p in problems} == {order_url(o) for o in orders[2:]}
    job = api.wait_status(api.create("W1234567830"), "finished", "failed")
    assert (job["jobs_executed"], job["stored_record_count"], credits(api)) == (0, 0, 0)


def test_living_orders_show_the_page_of_their_story_at_the_moment_scraped(api, sim, monkeypatch):
    origin = dt.datetime.now(dt.UTC)
    model = OrderModel(seed=3)
    orders = [f"W{n:010d}" for n in range(1_000_000_000, 1_000_000_040)]
    stories = {o: story_of(o, model, origin) for o in orders}
    monkeypatch.setattr(sim.state.config, "living", Living(model, origin, speed=1.0))
    job = api.wait_status(api.create(*orders), "finished")
    lines = api.call("GET", f"scraping-job/{job['id']}/json").text.splitlines()
    scraped = {}
    for line in lines:
        record = json.loads(line)
        scraped[record["web-scraper-start-url"].split("/")[-2]] = record
    at = dt.datetime.now(dt.UTC)
    for order, story in stories.items():
        expected = page_at(story, at).record
        assert scraped[order]["delivery_status"] == expected["delivery_status"]
        assert scraped[order]["tracking_number"] == expected["tracking_number"]
    assert {r["delivery_status"] for r in scraped.values()} >= {"処理中"}


def test_the_quota_answers_429_with_its_headers_once_spent(api, sim, monkeypatch):
    monkeypatch.setattr(sim.state.config, "quota_calls", 5)
    monkeypatch.setattr(sim.state.config, "quota_window_s", 1.5)
    remaining = [api.call("GET", "account").headers["X-RateLimit-Remaining"] for _ in range(5)]
    assert remaining == ["4", "3", "2", "1", "0"]
    refused = api.call("GET", "account")
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Limit"] == "5"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert int(refused.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert refused.json() == {"message": "Too Many Attempts."}
    time.sleep(1.6)
    assert api.call("GET", "account").status_code == 200


def test_every_call_is_listed_for_inspection(api, sim):
    scraping_job_id = api.create("W1")
    api.call("GET", f"scraping-job/{scraping_job_id}")
    api.call("GET", "nope")
    calls = requests.get(sim.base_url + "/__sim/state", timeout=5).json()["calls"]
    assert [(c["kind"], c["status"]) for c in calls] == [
        ("create", 200),
        ("get", 200),
        ("unknown", 404),
    ]
    assert all("api_token" not in c["path"] for c in calls)
    assert calls[0]["t"] <= calls[1]["t"] <= calls[2]["t"]


def test_the_webhook_is_form_encoded_with_the_five_fields(api, receiver):
    scraping_job_id = api.create("W1234567890")
    (hook,) = receiver.wait_for(1)
    assert hook.content_type == "application/x-www-form-urlencoded"
    assert hook.form == {
        "scrapingjob_id": str(scraping_job_id),
        "status": "finished",
        "sitemap_id": "1421177",
        "sitemap_name": "apple-order-to-carrier",
        "custom_id": SEED_BODY["custom_id"],
    }
    assert hook.path == "/hook?token=t"


@pytest.mark.parametrize("status", ["stopped", "failed"])
def test_failed_and_stopped_jobs_are_notified_too(api, receiver, status):
    api.create("W12345678" + ("97" if status == "stopped" else "98"))
    assert receiver.wait_for(1)[0].form["status"] == status


def test_a_refused_webhook_is_retried_twice_on_the_configured_delays(api, sim, receiver):
    receiver.answer = lambda n: 500
    api.create("W1234567890")
    hooks = receiver.wait_for(3)
    time.sleep(1.0)
    assert len(receiver.requests) == 3  # three attempts in all
    delays = sim.state.config.webhook_retry_delays_s
    gaps = [hooks[1].t - hooks[0].t, hooks[2].t - hooks[1].t]
    assert gaps[0] >= delays[0] and gaps[1] >= delays[1]
    assert gaps[0] < delays[0] + 0.3 and gaps[1] < delays[1] + 0.3


def test_a_webhook_answered_with_a_redirect_is_retried(api, receiver):
    receiver.answer = lambda n: 302 if n == 1 else 200
    api.create("W1234567890")
    time.sleep(0.2)
    assert len(receiver.wait_for(2)) == 2


def test_a_webhook_without_an_answer_in_time_is_retried(api, sim, receiver, monkeypatch):
    monkeypatch.setattr(sim.state.config, "webhook_timeout_s", 0.2)
    receiver.delay_s = 0.5
    api.create("W1234567890")
    hooks = receiver.wait_for(2, timeout=5)
    assert len(hooks) >= 2
    outcomes = [w["outcome"] for w in sim.state.snapshot()["webhooks"]]
    assert outcomes[0] == "error: ReadTimeout"


def test_an_accepted_webhook_is_sent_once(api, receiver):
    api.create("W1234567890")
    receiver.wait_for(1)
    time.sleep(1.0)
    assert len(receiver.requests) == 1


def set_faults(sim, **faults):
    answer = requests.post(sim.base_url + "/__sim/faults", json=faults, timeout=5)
    assert answer.status_code == 200, answer.text


def test_an_unknown_fault_is_refused(sim):
    answer = requests.post(sim.base_url + "/__sim/faults", json={"meteor": 1}, timeout=5)
    assert answer.status_code == 400 and "meteor" in answer.json()["error"]


def test_fault_error_burst(api, sim):
    set_faults(sim, error_burst=2, error_status=503)
    statuses = [api.call("GET", "account").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_fault_slow_answers(api, sim):
    set_faults(sim, slow=1, slow_s=0.6)
    with pytest.raises(requests.Timeout):
        api.http.get(api.base + "account", params={"api_token": SIM_TOKEN}, timeout=0.3)
    started = time.monotonic()
    assert api.call("GET", "account").status_code == 200
    assert time.monotonic() - started < 0.5


def test_fault_a_create_whose_answer_is_lost(api, sim):
    set_faults(sim, lose_create_answer=1)
    with pytest.raises(requests.ConnectionError):
        api.call("POST", "scraping-job", json={**SEED_BODY, "start_urls": [order_url("W1")]})
    listed = api.call("GET", "scraping-jobs").json()["data"]
    assert [j["custom_id"] for j in listed] == [SEED_BODY["custom_id"]]  # it was created
    assert api.create("W2") == listed[0]["id"] + 1  # and the next create answers


def test_fault_rate_limit_storm(api, sim):
    set_faults(sim, rate_limit_storm=2, storm_retry_after_s=3)
    answers = [api.call("GET", "account") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"


def test_fault_duplicate_webhooks(api, sim, receiver):
    set_faults(sim, webhook_duplicates=3)
    scraping_job_id = api.create("W1234567890")
    hooks = receiver.wait_for(3)
    time.sleep(0.3)
    assert len(receiver.requests) == 3
    assert {h.form["scrapingjob_id"] for h in hooks} == {str(scraping_job_id)}


def test_fault_dropped_webhook(api, sim, receiver):
    set_faults(sim, webhook_drop=1)
    api.wait_status(api.create("W1234567890"), "finished")
    second = api.create("W1234567891")
    hooks = receiver.wait_for(1)
    time.sleep(0.3)
    assert [h.form["scrapingjob_id"] for h in receiver.requests] == [str(second)]
    assert hooks


def test_fault_out_of_order_webhooks_arrive_newest_first(api, sim, receiver):
    set_faults(sim, webhook_out_of_order=True, webhook_hold_s=0.5)
    first = api.create("W1234567890")
    time.sleep(0.05)
    second = api.create("W1234567891")
    hooks = receiver.wait_for(2)
    assert [h.form["scrapingjob_id"] for h in hooks] == [str(second), str(first)]


def test_fault_webhook_before_the_data_is_ready(api, sim, receiver):
    set_faults(sim, data_delay_s=0.6)
    scraping_job_id = api.create("W1234567890")
    receiver.wait_for(1)
    assert api.call("GET", f"scraping-job/{scraping_job_id}/json").content == b""
    time.sleep(0.7)
    assert api.call("GET", f"scraping-job/{scraping_job_id}/json").content.count(b"\n") == 1


def test_the_documented_command_serves_until_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "webscraper_sim", "--port", "0", "--token", "cli-token"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("webscraper-sim listening on http://127.0.0.1:")
        api_url = line.split()[-1]
        answer = requests.get(api_url + "account", params={"api_token": "cli-token"}, timeout=5)
        assert answer.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()


# -- jobs with many start URLs (docs/webscraper-api.md, "Jobs with many start URLs") --------
def test_a_failed_page_fails_only_its_url_and_a_stop_or_failure_code_is_a_page_in_a_pack(api):
    orders = ["W1234567890", "W1234567808", "W1234567897", "W1234567898", "W1234567891"]
    job = api.wait_status(api.create(*orders), "finished", "failed", "stopped")
    assert job["status"] == "finished"  # 2 of 5 pages failed: not more than half
    assert (job["jobs_executed"], job["jobs_failed"], job["jobs_empty"]) == (5, 2, 1)
    assert job["stored_record_count"] == 2  # the others' records are kept
    problems = api.call("GET", f"scraping-job/{job['id']}/problematic-urls").json()["data"]
    assert {(p["url"], p["type"]) for p in problems} == {
        (order_url("W1234567808"), "failed"),
        (order_url("W1234567898"), "failed"),
        (order_url("W1234567897"), "empty"),
    }


def test_a_job_fails_when_more_than_half_of_its_pages_failed_and_keeps_its_data(api):
    job = api.wait_status(api.create("W1234567808", "W1234567818", "W1234567890"), "failed")
    assert job["status"] == "failed" and job["stored_record_count"] == 1
    lines = api.call("GET", f"scraping-job/{job['id']}/json").text.splitlines()
    assert [json.loads(line)["web-scraper-start-url"] for line in lines] == [
        order_url("W1234567890")
    ]


def test_scraping_time_grows_with_the_number_of_urls(api, sim, monkeypatch):
    monkeypatch.setattr(sim.state.config, "per_page_s", 0.1)
    small, large = api.create("W1234567890"), api.create(*[f"W12345678{n:02d}" for n in range(10)])
    # the scraping time of each, as the simulator planned it (not a wall-clock race)
    jobs = sim.state.jobs
    runs = {one: jobs[one].end_mono - jobs[one].start_mono for one in (small, large)}
    assert runs[large] - runs[small] == pytest.approx(0.9)  # nine pages more at 0.1 s each
    assert api.wait_status(small, "finished", timeout=5)["status"] == "finished"
    assert api.job(large)["status"] != "finished"  # still scraping its other pages
    assert api.wait_status(large, "finished", timeout=5)["status"] == "finished"


def test_jobs_beyond_the_parallel_tasks_wait_to_be_scheduled(api, sim, monkeypatch):
    monkeypatch.setattr(sim.state.config, "parallel_tasks", 2)
    monkeypatch.setattr(sim.state.config, "run_s", 0.6)
    ids = [api.create(f"W123456789{n}") for n in range(3)]
    time.sleep(0.15)  # past the schedule delay: the first two run, the third waits
    statuses = [api.job(scraping_job_id)["status"] for scraping_job_id in ids]
    assert statuses[2] == "waiting-to-be-scheduled"
    assert all(status in ("scheduled", "started") for status in statuses[:2])
    assert api.wait_status(ids[2], "finished", timeout=5)["status"] == "finished"


def test_more_than_20000_start_urls_is_a_validation_error_and_20000_are_taken(api):
    urls = [order_url(f"W{n:010d}") for n in range(20_001)]  # a body of about 1.3 MB
    too_many = api.call("POST", "scraping-job", json={**SEED_BODY, "start_urls": urls})
    assert too_many.status_code == 422
    assert "20000" in too_many.json()["validationErrors"]["start_urls"][0]
    taken = api.call("POST", "scraping-job", json={**SEED_BODY, "start_urls": urls[:20_000]})
    assert taken.status_code == 200, taken.text[:200]  # read whole, not cut at 1 MiB
    assert len(api.sim.state.jobs[taken.json()["data"]["id"]].start_urls) == 20_000


def test_records_come_back_in_no_promised_order(api):
    orders = [f"W12345{n:04d}0" for n in range(30)]
    scraping_job_id = api.create(*orders)
    api.wait_status(scraping_job_id, "finished")
    lines = api.call("GET", f"scraping-job/{scraping_job_id}/json").text.splitlines()
    urls = [json.loads(line)["web-scraper-start-url"] for line in lines]
    assert sorted(urls) == sorted(order_url(o) for o in orders)
    assert urls != [order_url(o) for o in orders]
