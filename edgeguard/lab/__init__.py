"""Lab tools for tests, benchmarks and the demo: a local mosquitto, a development PKI and
simulated field devices. Not used by the daemon's alarm path."""
