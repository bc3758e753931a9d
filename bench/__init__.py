"""Load benchmarks: `make bench` runs bench.proxy (see docs/benchmarks.md)."""
