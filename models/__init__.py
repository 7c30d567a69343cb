"""Records that flow through weatherstream (observations, aggregates, alerts, dead letters).

Every record is a declared faust record with units in its field names. The records arrive with the
ingestion issue; this package is the place for them.
"""
