# The two set-up commands of the README: `make run` and `make test`. Both work on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UPSTREAM ?=
SAMPLE_PORT ?= 8081
ARGS ?=
FUZZ_SECONDS ?= 300

.PHONY: run test lint typecheck unit bench fuzz soak profile system-deps clean

# Installing gate compiles its request path with mypyc (setup.py), so any change to gate's code means installing it
# again. Compiling needs a C compiler and Python's headers: installed here when missing (GATE_PURE_PYTHON=1 skips
# compiling instead).
GATE_SOURCES := pyproject.toml setup.py $(shell find gate -name '*.py')
COMPILED_MODULES = $(shell find . -maxdepth 1 -name '*__mypyc*.so') $(shell find gate -name '*.so')
define install_gate
	[ -x $(BIN)/pip ] || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --upgrade pip; }
	@if [ "$${GATE_PURE_PYTHON:-0}" = 0 ] && { ! command -v gcc >/dev/null || ! $(PYTHON) -c 'import os, sys, sysconfig; \
		sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; }; then \
		echo "installing gcc and Python's headers, to compile gate's request path"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev python3-dev; \
	fi
	$(BIN)/pip install --quiet -e '.$(1)'
endef

$(BIN)/gate: $(GATE_SOURCES)
	$(call install_gate,)
	touch $@

# The test install is gate's install too: `make run` after it installs nothing again.
$(VENV)/.test-deps: $(GATE_SOURCES)
	$(call install_gate,[test])
	touch $@ $(BIN)/gate

# gate with the in-memory store in front of UPSTREAM, or of the sample site in examples/site when none is given.
run: $(BIN)/gate
	@if [ -n "$(UPSTREAM)" ]; then \
		exec $(BIN)/gate serve --upstream "$(UPSTREAM)" $(ARGS); \
	else \
		$(PYTHON) -m http.server --bind 127.0.0.1 $(SAMPLE_PORT) --directory examples/site >/dev/null 2>&1 & site=$$!; \
		trap 'kill $$site 2>/dev/null' EXIT INT TERM; \
		echo "sample site on 127.0.0.1:$(SAMPLE_PORT); gate on http://127.0.0.1:8080/ (metrics on 127.0.0.1:9464)"; \
		$(BIN)/gate serve --upstream http://127.0.0.1:$(SAMPLE_PORT) $(ARGS); \
	fi

# Installs what the tests run against (real Redis, real nginx, Debian's Chromium driven by Playwright, Prometheus and
# promtool for the dashboard and alert tests, systemd-analyze for the unit files) when missing;
# the tests start their own instances on free loopback ports and stop them afterwards.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } || missing="$$missing nginx"; \
	[ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing="$$missing libnginx-mod-http-echo"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	{ command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; } || missing="$$missing chromium"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.test-deps
	$(BIN)/ruff check gate tests bench fuzz setup.py
	$(BIN)/ruff format --check gate tests bench fuzz setup.py

typecheck: $(VENV)/.test-deps
	$(BIN)/mypy

unit: $(VENV)/.test-deps system-deps
	PATH="$$PATH:/usr/sbin" $(BIN)/pytest

test: lint typecheck unit

# In-process decision time, then load figures: nginx directly and gate in front of it, in the same run
# (see docs/benchmarks.md).
bench: $(VENV)/.test-deps system-deps
	$(BIN)/python -m bench.accuracy
	$(BIN)/python -m bench.decide
	$(BIN)/python -m bench.verify
	$(BIN)/python -m bench.audit
	PATH="$$PATH:/usr/sbin" $(BIN)/python -m bench.challenge
	PATH="$$PATH:/usr/sbin" $(BIN)/python -m bench.store
	PATH="$$PATH:/usr/sbin" $(BIN)/python -m bench.proxy $(ARGS)

# The property tests with fresh random examples (`make test` draws the same ones each run), then coverage-guided
# fuzzing (atheris) of the token and cookie parsers, FUZZ_SECONDS per target (the tests run each for a few seconds).
# The corpus grows in fuzz/corpus/ between runs; an input that crashes a parser lands in fuzz/crashes/.
fuzz: $(VENV)/.test-deps
	$(BIN)/pytest -p no:cacheprovider --hypothesis-profile=explore --hypothesis-show-statistics -q \
		$$(grep -rl --include='*.py' '^from hypothesis' tests)
	@for target in tokens cookies; do \
		mkdir -p fuzz/corpus/$$target fuzz/crashes; \
		echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
		$(BIN)/python -m fuzz.$$target fuzz/corpus/$$target -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=fuzz/crashes/ -print_final_stats=1 || exit 1; \
	done

# Ten minutes of full load with a mix of clients from many addresses: gate's memory, Redis's keys and errors over
# time (see docs/benchmarks.md). Not part of `make bench` or `make test`; ARGS="--duration 120" for a shorter run.
soak: $(VENV)/.test-deps system-deps
	PATH="$$PATH:/usr/sbin" $(BIN)/python -m bench.soak $(ARGS)

# Where a gate worker's time goes: py-spy on the full pipeline under the benchmark's browsers, by component
# (docs/benchmarks.md, "Where a request's time goes"). ARGS="--workers 2 --duration 30" for other runs.
# py-spy cannot see into compiled functions, so this installs gate uncompiled; the next `make test` compiles again.
profile: $(VENV)/.test-deps system-deps
	rm -f $(COMPILED_MODULES) $(VENV)/.test-deps $(BIN)/gate
	GATE_PURE_PYTHON=1 $(BIN)/pip install --quiet -e '.[profile]'
	PATH="$$PATH:/usr/sbin" $(BIN)/python -m bench.profile $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info build $(COMPILED_MODULES)
