"""Sinks: where observations, aggregates and alerts are stored (Apache Cassandra).

``schema`` applies the versioned CQL migrations, ``rows`` maps records to table rows (pure),
``cassandra`` writes rows with prepared statements and reads them back.
"""
