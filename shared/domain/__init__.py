"""Pure domain rules (DOMAIN.md): order URLs, statuses, tracking numbers, dates, masking."""
