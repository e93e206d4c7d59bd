"""publisher: the single active consumer of ``publisher.candidates``; packs candidates
into scraping jobs and creates them within the API quota (the shared call ledger),
parking what must wait with a per-message TTL. ``python -m publisher``.
"""
