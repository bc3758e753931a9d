"""Real services for tests and benchmarks: nginx, Redis, gate itself, each on a free loopback port."""
