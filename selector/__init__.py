"""selector: finds purchases without a tracking number, records a batch, publishes candidates.

Not built yet (issue 3).
"""
