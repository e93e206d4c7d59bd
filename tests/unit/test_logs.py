import json
import logging

import pytest

from shared.logs import setup_logging
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
