"""One logging set-up for every service: human-readable lines by default, JSON lines with
``LOG_FORMAT=json``; e-mail addresses masked in every line; the custom_id a line speaks
of given its own field. A message is one line whatever it holds: control characters are
escaped in text lines (``\n``, ``\x00``; JSON lines escape them by themselves) and a
message longer than :data:`MAX_MESSAGE` characters is cut, so a value that came from
outside (a webhook's field, a scraped text) cannot forge a line or flood the log."""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from shared.domain.masking import mask_emails_in
from shared.domain.text import escape_controls
from shared.tasks import TRACKING_TASK_CONFIGS

#: a custom_id of any registered task: ``owryt-abc12345-0007``
CUSTOM_ID = re.compile("|".join(t.custom_id_shape for t in TRACKING_TASK_CONFIGS.values()))

#: the seed's keyword, first in every line about a job
TAG = "[tracking_number_empty_worker]"
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
MAX_MESSAGE = 4000
#: what JSON leaves raw of :data:`CONTROL` (it escapes C0 only); written as \\uXXXX,
#: which decodes back to the same character
JSON_RAW_CONTROL = re.compile("[\x7f-\x9f\u2028\u2029]")


class OneLineJsonFormatter(JsonFormatter):
    """JSON lines with no raw control character either (NEL and the Unicode separators
    end a line for many readers)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return JSON_RAW_CONTROL.sub(lambda found: f"\\u{ord(found.group()):04x}", line)


class OneLineFormatter(logging.Formatter):
    """Text lines whose message cannot span lines (a traceback still follows its line)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class MaskPersonalData(logging.Filter):
    """Rewrites each record's message with e-mail addresses masked (defence in depth:
    the code masks them itself, this catches what it forgot), and notes the custom_id
    the message names, for the JSON lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_emails_in(message)
        if len(masked) > MAX_MESSAGE:
            masked = f"{masked[:MAX_MESSAGE]}... ({len(masked) - MAX_MESSAGE} characters cut)"
        if masked != message:
            record.msg, record.args = masked, ()
        if not hasattr(record, "custom_id"):
            found = CUSTOM_ID.search(masked)
            record.custom_id = found.group() if found else None
        return True


def setup_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr, masked: ``text`` lines, or ``json`` objects (one per line, with
    ``time``, ``level``, ``logger``, ``message`` and ``custom_id``)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(
            OneLineJsonFormatter(
                "{asctime}{levelname}{name}{message}{custom_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(OneLineFormatter(FORMAT))
    handler.addFilter(MaskPersonalData())
    # no format here names the caller's file or line: skip looking them up on every record
    # (the logging HOWTO's "Optimization" section)
    logging._srcfile = None  # type: ignore[attr-defined]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
