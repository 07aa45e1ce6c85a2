# Developer entry points. `make test` works from a fresh clone: it builds .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNS ?= runs
DATA_DIR ?=

.PHONY: install test test-fast lint demo reproduce-table3 reproduce-table4 reproduce-figures headline headline-curve \
	headline-paper clock-under-load bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Two workers: much of the suite is single-threaded (tracing, subprocess start-up), so two processes
# fill two cores. More workers only multiply TensorFlow's memory.
TEST_WORKERS ?= 2
test: $(VENV)/.installed lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=15

# The suite less the tests marked slow: a quick check while editing; CI runs everything.
test-fast: $(VENV)/.installed lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow"

# ruff, then the import contracts of setup.cfg (the layers of docs/architecture.md, no cycles).
lint: $(VENV)/.installed
	$(BIN)/ruff check ml_resnet_tf experiments tests
	$(BIN)/lint-imports --no-cache

# A small multi-level run (1-1-1 -> 4-4-4, 6 epochs, 5,000 images): minutes on a laptop CPU.
# CIFAR-10 comes through tensorflow_datasets, or from an offline copy: make demo DATA_DIR=DIR
demo: $(VENV)/.installed
	$(BIN)/python -m experiments.train --flagfile=experiments/configs/demo.cfg \
		--model_dir=$(RUNS)/demo $(if $(DATA_DIR),--data_dir=$(DATA_DIR))

# Tables 3 and 4. DATASETS=cifar10,cifar100 limits the columns; SCALE=0.02 TRAIN_SUBSET=2000 makes a CPU-sized trial.
SCALE ?= 1
TRAIN_SUBSET ?= 0
DATASETS ?= cifar10,cifar100,stl10
reproduce-table3 reproduce-table4: reproduce-table%: $(VENV)/.installed
	$(BIN)/python -m experiments.reproduce --table=$* --datasets=$(DATASETS) --scale=$(SCALE) \
		--train_subset=$(TRAIN_SUBSET) --runs_dir=$(RUNS) $(if $(DATA_DIR),--data_dir=$(DATA_DIR))

# Figs. 3, 4, 7 (residual norms), the lesion study (Section 3.3), Figs. 9 and 10 (learning rate), and the
# dynamic-ensemble analysis (experiments.ensemble). FIGURES=3,4,7 picks some; SEEDS=2 shrinks Fig. 10;
# NUM_IMAGES=1000 measures on fewer test images.
FIGURES ?= 3,4,7,lesion,9,10,ensemble
SEEDS ?= 10
NUM_IMAGES ?= 0
reproduce-figures: $(VENV)/.installed
	$(BIN)/python -m experiments.figures --figures=$(FIGURES) --datasets=$(DATASETS) --seeds=$(SEEDS) \
		--scale=$(SCALE) --train_subset=$(TRAIN_SUBSET) --num_images=$(NUM_IMAGES) --runs_dir=$(RUNS) \
		$(if $(DATA_DIR),--data_dir=$(DATA_DIR))

# The headline (experiments.headline, docs/headline.md): multi-level ResNet-26 (1-1-1 -> 4-4-4) against its
# last-cycle model under the same three cycles, on CIFAR-10, once per interpolation rule in RULES, with SEEDS
# seeds (mean ± std). The default is a smoke test, minutes on a CPU: 2,000 images, one epoch per cycle, one seed.
#   make headline HEADLINE_SUBSET=0 HEADLINE_CYCLE=3 SEEDS=3 HEADLINE_ARGS=--budget   (all 50,000 images)
# headline-curve: the equal-epochs gap against the cycle length (experiments.headline_curve); the smoke
# default is 500 images at 1 and 2 epochs per cycle. docs/headline.md's curve:
#   make headline-curve CURVE_SUBSET=2000 CURVE_LENGTHS=2,4,8,16 SEEDS=2
# headline-paper: Section 5.2 itself, ResNet-50-i against ResNet-50, 160 epochs (a GPU job; KERAS_BACKEND=jax
# works). clock-under-load: which training time a busy machine cannot skew (docs/headline.md).
HEADLINE_SUBSET ?= 2000
HEADLINE_CYCLE ?= 1
HEADLINE_ARGS ?=
CURVE_SUBSET ?= 500
CURVE_LENGTHS ?= 1,2
RULES ?= copy,zero
HARNESS_SEEDS = $(if $(filter command line environment,$(origin SEEDS)),$(SEEDS),1)
headline: $(VENV)/.installed
	$(BIN)/python -m experiments.headline --rules=$(RULES) --cycle_epochs=$(HEADLINE_CYCLE) --seeds=$(HARNESS_SEEDS) \
		--train_subset=$(HEADLINE_SUBSET) --runs_dir=$(RUNS) $(if $(DATA_DIR),--data_dir=$(DATA_DIR)) $(HEADLINE_ARGS)

headline-curve: $(VENV)/.installed
	$(BIN)/python -m experiments.headline_curve --rules=$(RULES) --cycle_lengths=$(CURVE_LENGTHS) \
		--seeds=$(HARNESS_SEEDS) --train_subset=$(CURVE_SUBSET) --runs_dir=$(RUNS) \
		$(if $(DATA_DIR),--data_dir=$(DATA_DIR))

headline-paper: $(VENV)/.installed
	$(BIN)/python -m experiments.headline --protocol=paper --rules=$(RULES) --seeds=$(HARNESS_SEEDS) \
		--runs_dir=$(RUNS) $(if $(DATA_DIR),--data_dir=$(DATA_DIR)) $(HEADLINE_ARGS)

clock-under-load: $(VENV)/.installed
	$(BIN)/python -m experiments.clock_under_load --train_subset=$(HEADLINE_SUBSET) --runs_dir=$(RUNS) \
		$(if $(DATA_DIR),--data_dir=$(DATA_DIR))

# Throughput, FLOPs, interpolation costs and predicted savings; a table on stdout, JSON in results/.
# The default measures every architecture (a GPU job); on a CPU, e.g.
#   make bench BENCH_ARGS="--families=resnet --architectures=2-2-2,4-4-4,8-8-8"
# BENCH_MODE=memory: peak memory and step time of reversible nets with and without
# memory-efficient training (experiments.bench_memory; hamiltonian 6-6-6, 18-18-18, 54-54-54).
BENCH_ARGS ?=
BENCH_MODE ?= speed
bench: $(VENV)/.installed
	$(BIN)/python -m experiments.$(if $(filter memory,$(BENCH_MODE)),bench_memory,bench) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
