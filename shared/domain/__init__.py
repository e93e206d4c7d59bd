"""Pure domain rules (docs/domain.md): order URLs, statuses, tracking numbers, dates, masking."""
