"""A local, faithful simulator of the Web Scraper Cloud API (a dev and test tool).

Start it with ``webscraper-sim --port 8900 --token TOKEN --webhook-url URL`` (or
``python -m webscraper_sim``) and point ``WEBSCRAPER_API_URL`` at
``http://127.0.0.1:8900/api/v1/``.
"""
