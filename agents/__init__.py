"""Faust agents: one module per agent, each saying in its header what it consumes and emits.

The first agent (ingest) arrives with the ingestion issue; this package is the place for them.
"""
