"""trackfill's common package: settings, database, messaging and contracts.

It imports no service; every service imports it.
"""
