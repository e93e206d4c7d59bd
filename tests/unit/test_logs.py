import json
import logging

import pytest

from shared.lifecycle import service_settings
from shared.logs import MAX_MESSAGE, setup_logging
from shared.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_json_lines_carry_the_custom_id_and_mask_e_mails(capsys):
    setup_logging("json")
    logging.getLogger("trackfill.test").info(
        "%s Publishing single URL: custom_id=%s for %s",
        "[tracking_number_empty_worker]",
        "owryt-abc12345-0007",
        "buyer@example.com",
    )
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["custom_id"] == "owryt-abc12345-0007"
    assert record["level"] == "INFO" and record["logger"] == "trackfill.test"
    assert "b***@example.com" in record["message"] and "buyer@" not in line
    assert record["time"]


def test_a_line_about_no_candidate_has_a_null_custom_id(capsys):
    setup_logging("json")
    logging.getLogger("trackfill.test").warning("broker connection lost")
    assert json.loads(capsys.readouterr().err)["custom_id"] is None


def test_text_is_the_default_and_masks_too(capsys):
    setup_logging(load_settings({}).log_format)
    logging.getLogger("trackfill.test").info("mail buyer@example.com")
    err = capsys.readouterr().err
    assert "INFO trackfill.test mail b***@example.com" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err)


def test_an_unknown_log_format_names_the_variable():
    with pytest.raises(SettingsError, match="LOG_FORMAT must be one of text, json"):
        load_settings({"LOG_FORMAT": "xml"})


FORGED = "owryt-ab\n2026-12-02 09:00:00,000 INFO trackfill.ingestor FORGED LINE"
#: every service's own set-up (its __main__ calls service_settings), and the CLI's
SET_UPS = {
    "selector": lambda: service_settings("selector"),
    "publisher": lambda: service_settings("publisher", require=("WEBSCRAPER_API_TOKEN",)),
    "ingestor": lambda: service_settings("ingestor", require=("WEBSCRAPER_API_TOKEN",)),
    "webhook_gateway": lambda: service_settings("webhook_gateway", require=("WEBHOOK_TOKEN",)),
    "run_tracking_number_empty": lambda: setup_logging(load_settings().log_format),
}


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("service", sorted(SET_UPS))
def test_a_value_from_outside_cannot_forge_a_log_line_in_any_service(
    service, log_format, capsys, monkeypatch
):
    monkeypatch.setenv("LOG_FORMAT", log_format)
    monkeypatch.setenv("WEBSCRAPER_API_TOKEN", "t" * 20)
    monkeypatch.setenv("WEBHOOK_TOKEN", "w" * 20)
    SET_UPS[service]()
    for value in (FORGED, "a\rb", "nul\x00", "esc\x1b[31m", "sep\u2028x", "nel\x85x"):
        logging.getLogger(f"trackfill.{service}").info("custom_id=%s", value)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 6  # one line per message, none forged
    assert not any(line.startswith("2026-12-02 09:00:00") for line in lines)
    if log_format == "json":
        assert json.loads(lines[0])["message"] == f"custom_id={FORGED}"  # kept whole, escaped
        assert json.loads(lines[4])["message"] == "custom_id=sep\u2028x"
    else:
        assert "custom_id=owryt-ab\\n2026-12-02 09:00:00,000 INFO" in lines[0]
        assert lines[2].endswith("custom_id=nul\\x00") and "\\x1b[31m" in lines[3]


def test_a_huge_value_is_cut_to_a_bounded_line(capsys):
    setup_logging("text")
    logging.getLogger("trackfill.test").info("status=%s", "x" * 100_000)
    (line,) = capsys.readouterr().err.splitlines()
    assert len(line) < MAX_MESSAGE + 200 and line.endswith("characters cut)")


def test_a_traceback_still_follows_its_line(capsys):
    setup_logging("text")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("trackfill.test").exception("failed on %s", "a\nb")
    err = capsys.readouterr().err
    assert "failed on a\\nb\nTraceback (most recent call last):" in err
