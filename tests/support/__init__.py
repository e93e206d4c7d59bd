"""Helpers shared by the test folders: real-service discovery and the broker's HTTP API."""
