"""One logging set-up for every service: e-mail addresses masked in every line."""

from __future__ import annotations

import logging
import sys

from shared.domain.masking import mask_emails_in

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class MaskPersonalData(logging.Filter):
    """Rewrites each record's message with e-mail addresses masked (defence in depth:
    the code masks them itself, this catches what it forgot)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_emails_in(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr, human-readable, masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(MaskPersonalData())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
