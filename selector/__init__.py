"""selector: finds purchases without a tracking number, records a batch, publishes a
``candidate.found`` for each; its daemon also runs the reconciler and the pruning.

``python -m selector`` is the daemon (a pass every SELECTOR_INTERVAL_S);
``run_tracking_number_empty`` is the seed's manual trigger.
"""
