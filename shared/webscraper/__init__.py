"""The Web Scraper Cloud API: the client and the quota ledger every caller goes through."""
