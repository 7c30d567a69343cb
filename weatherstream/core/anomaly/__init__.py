"""Anomaly detection, pure: detectors judge one observation against a city's state; the lifecycle turns
their verdicts into incidents (open, update on escalation, resolved); the engine ties both to the
per-city state that the pipeline agent keeps in its table."""
