"""ingestor: consumes ``job.completed``, checks the scraping job, downloads its records,
validates them and fills the purchases, once per notification. ``python -m ingestor``.
"""
