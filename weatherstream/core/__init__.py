"""Pure logic: no Kafka, Cassandra or HTTP in here. Agents and sinks are thin shells around it."""
