# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo test lint bench bench-gpu-smoke bench-early-stopping reproduce confirm browser prometheus metrics data clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e '.[dev,timm]'
	@touch $@

demo: install
	$(BIN)/taso-tune sweep search_spaces/quickstart.yaml --name quickstart-$$(date +%Y%m%d-%H%M%S) --storage $(CURDIR)/runs

# The report tests open the HTML in Debian's headless Chromium; install it when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will fail" >&2; \
	  else echo "warning: chromium missing and not root; the browser test will fail" >&2; fi; }

# The live-metrics test and `make metrics` run Debian's Prometheus; install it when missing.
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) \
	      || echo "warning: could not install prometheus; the Prometheus test will skip" >&2; \
	  else echo "warning: prometheus missing and not root (sudo apt-get install prometheus); the Prometheus test will skip" >&2; fi; }

# Prometheus on 127.0.0.1 only, scraping the Ray head whose --temp-dir is RAY_TEMP_DIR through Ray's
# service-discovery file (docs/sweeps.md: pointing Grafana and the Ray dashboard at it).
RAY_TEMP_DIR    ?= /tmp/ray
PROMETHEUS_PORT ?= 9090

metrics: install prometheus
	$(BIN)/python -m taso_tune.cluster.prometheus --ray-temp-dir $(RAY_TEMP_DIR) --port $(PROMETHEUS_PORT) --folder $(CURDIR)/runs/prometheus

# Fashion-MNIST from Debian's package, read where it is installed (no copy, no download): install it
# when missing, then print the data root to use.
FASHION_MNIST_PACKAGE := dataset-fashion-mnist
FASHION_MNIST_ROOT    := /usr/share/datasets/fashion-mnist

data:
	@test -f $(FASHION_MNIST_ROOT)/train-images-idx3-ubyte.gz || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FASHION_MNIST_PACKAGE) >/dev/null) \
	      || echo "warning: could not install $(FASHION_MNIST_PACKAGE)" >&2; \
	  else echo "warning: $(FASHION_MNIST_PACKAGE) missing and not root: sudo apt-get install $(FASHION_MNIST_PACKAGE)" >&2; fi; }
	@if [ -f $(FASHION_MNIST_ROOT)/train-images-idx3-ubyte.gz ]; then \
	  echo "fashion_mnist data root: $(FASHION_MNIST_ROOT) (--dataset fashion_mnist --data-root $(FASHION_MNIST_ROOT))"; \
	else echo "error: no Fashion-MNIST files in $(FASHION_MNIST_ROOT)" >&2; exit 1; fi

test: install browser prometheus
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; exit $$rc

# The formatter decides layout; docs/architecture.md's module table must match the tree.
lint: install
	$(BIN)/ruff format --check taso_tune tests benchmarks docs/examples
	$(BIN)/ruff check taso_tune tests benchmarks docs/examples
	$(BIN)/python benchmarks/architecture_doc.py --check

bench: install
	$(BIN)/python benchmarks/run_all.py

bench-gpu-smoke: install
	$(BIN)/python benchmarks/gpu.py --smoke

# DATA=fashion_mnist runs the Fashion-MNIST studies (after `make data`); the default is digits
DATA ?= digits

bench-early-stopping: install
	$(BIN)/python benchmarks/early_stopping_bias.py --data $(DATA)

reproduce: install
	$(BIN)/python benchmarks/reproduce.py --data $(DATA)

# The Fashion-MNIST confirmation (after `make data`): equal grids, interior picks, 10 fresh seeds,
# each family against TASO; its tables go to docs/reproduction.md and its findings to the README
confirm: install
	$(BIN)/python benchmarks/confirmation.py

clean:
	rm -rf runs .pytest_cache
