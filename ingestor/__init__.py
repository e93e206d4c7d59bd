"""ingestor: downloads scraped records, validates them and fills the purchases.

Not built yet (issue 5).
"""
