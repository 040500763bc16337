# make demo: set everything up and run the doctor in the lab's demo scenario.
# make test: the whole test suite (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO ?= tests/lab/scenarios/session-logs-bucket-unreachable.toml

OLDEST := .venv-oldest

.PHONY: venv oldest system-packages test demo lint clean

$(BIN)/.installed: pyproject.toml requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-test.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

venv: $(BIN)/.installed

# The oldest dependencies pyproject.toml claims, so the code is proven on them too (tests/lab/test_scenarios.py).
$(OLDEST)/bin/.installed: pyproject.toml requirements-oldest.txt
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install --quiet --upgrade pip
	$(OLDEST)/bin/pip install --quiet -r requirements-oldest.txt
	$(OLDEST)/bin/pip install --quiet --no-deps -e .
	touch $@

oldest: $(OLDEST)/bin/.installed

# The lab needs nft (security-group drops) and unshare/nsenter/ip (util-linux, iproute2).
system-packages:
	@command -v nft >/dev/null && command -v unshare >/dev/null && command -v ip >/dev/null || { \
	  [ "$$(id -u)" = 0 ] || { echo "make: run as root, or install nftables iproute2 util-linux"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    nftables iproute2 util-linux >/dev/null; }

# The gate (configured in pyproject.toml): the package runs on 3.9 (vermin), passes ruff and type-checks (mypy).
lint: venv
	$(BIN)/vermin --target=3.9- --no-tips --violations --eval-annotations vpce_doctor
	$(BIN)/ruff check --no-cache vpce_doctor
	$(BIN)/mypy --no-incremental

test: venv oldest system-packages lint
	$(BIN)/python -m pytest

demo: venv system-packages
	@tests/lab/run $(DEMO) -- $(BIN)/vpce-doctor || echo "(vpce-doctor exited $$?: the diagnosis above, not a make error)"

clean:
	rm -rf $(VENV) $(OLDEST) build *.egg-info .pytest_cache
