"""Storage: the journal, line protocol, the InfluxDB client, and the formats both collector and analytics read."""
