"""One logging set-up for every service: human-readable lines by default, JSON lines with
``LOG_FORMAT=json``; e-mail addresses masked in every line; the custom_id a line speaks
of given its own field."""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from shared.domain.masking import mask_emails_in
from shared.tasks import TRACKING_TASK_CONFIGS

#: a custom_id of any registered task: ``owryt-abc12345-0007``
CUSTOM_ID = re.compile(
    "(?:{})[0-9a-f]{{8}}-[0-9]{{4}}".format(
        "|".join(re.escape(t.custom_id_prefix) for t in TRACKING_TASK_CONFIGS.values())
    )
)

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class MaskPersonalData(logging.Filter):
    """Rewrites each record's message with e-mail addresses masked (defence in depth:
    the code masks them itself, this catches what it forgot), and notes the custom_id
    the message names, for the JSON lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_emails_in(message)
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
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{custom_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(MaskPersonalData())
    # no format here names the caller's file or line: skip looking them up on every record
    # (the logging HOWTO's "Optimization" section)
    logging._srcfile = None  # type: ignore[attr-defined]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
