"""publisher: the single active consumer that creates scraping jobs within the API quota.

Not built yet (issue 4).
"""
