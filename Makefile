# The few verbs people expect. Each target sets up the virtual environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: setup browser run test test-unit test-ha ha ha-down lint proto proto-check node buf buf-breaking \
	client-tools gen-clients tools validate lock tools-lock fmt bench bench-smoke clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

run: setup  ## embedded PostgreSQL (unless DATABASE_URL is set) + migrations + both services
	$(PY) scripts/run_dev.py

# the dashboard's browser tests drive Debian's chromium (Playwright cannot download a browser here):
# installed with apt when missing and root (CI is); otherwise those tests say what to install
browser:
	@command -v chromium >/dev/null 2>&1 || test -x "$$DASHBOARD_TEST_CHROMIUM" || \
	  { test "$$(id -u)" = 0 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; } || \
	  echo "note: no chromium; tests/dashboard need Debian's chromium (apt-get install chromium)"

test: setup browser  ## the full test suite on a real PostgreSQL
	$(PY) -m pytest

test-ha: setup  ## failover under load on a real Patroni cluster (as root: installs patroni and etcd-server)
	$(PY) -m pytest tests/ha

ha: setup  ## a local HA cluster: etcd + 3 Patroni-managed PostgreSQL 15 nodes (README, Availability)
	$(PY) scripts/ha.py up

ha-down: setup  ## stop the `make ha` cluster (its data stays in .data/ha)
	$(PY) scripts/ha.py down

test-unit: setup  ## the fast tier: use cases on an in-memory store, no PostgreSQL, no gRPC
	$(PY) -m pytest tests/unit -q

lint: setup proto-check buf buf-breaking  ## ruff, mypy, stub drift, buf lint and buf breaking
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

proto: setup  ## regenerate stubs from protos/
	$(PY) scripts/gen_protos.py

proto-check: setup
	$(PY) scripts/gen_protos.py --check

# the contract tools from package-lock.json: buf, protoc-gen-es and tsc (reinstalled when it changes)
NODE_STAMP := node_modules/.installed-$(shell cksum < package-lock.json | cut -d' ' -f1)

$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund --silent
	rm -f node_modules/.installed-* && touch $@

node: $(NODE_STAMP)

buf: node  ## lint the contracts with buf's standard rules
	node_modules/.bin/buf lint

# the work tree's protos/ against the previous main: the merge-base with origin/main on a branch,
# else HEAD~1 (BUF_BREAKING_AGAINST=<rev> to choose); skipped, saying why, when there is none
buf-breaking: setup node  ## no breaking change to the contracts (buf breaking, buf.yaml's FILE rules)
	$(PY) scripts/buf_breaking.py

# buf.gen.yaml's local plugins for Go, and Go with Debian's protobuf and gRPC sources to compile
# their output (no module download): installed with apt when missing and root (CI is)
CLIENT_DEBS := protoc-gen-go protoc-gen-go-grpc golang-go golang-google-protobuf-dev golang-google-grpc-dev
client-tools:
	@command -v protoc-gen-go >/dev/null 2>&1 && command -v protoc-gen-go-grpc >/dev/null 2>&1 && \
	  command -v go >/dev/null 2>&1 && test -d /usr/share/gocode/src/google.golang.org/grpc || \
	  { test "$$(id -u)" = 0 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $(CLIENT_DEBS) >/dev/null; } || \
	  { echo "gen-clients needs Debian's $(CLIENT_DEBS) (apt-get install them as root)"; exit 1; }

gen-clients: setup node client-tools  ## Python, Go and TypeScript clients in gen/ (buf.gen.yaml), compiled
	node_modules/.bin/buf generate
	$(PY) scripts/check_clients.py

# The deploy files' validators, pinned by hash (deploy/tools/requirements.txt), in a virtual
# environment of their own: no Docker engine or cluster needed.
TOOLS := $(VENV)/tools
TOOLS_STAMP := $(TOOLS)/.installed-$(shell cksum < deploy/tools/requirements.txt | cut -d' ' -f1)
# the oldest Kubernetes the manifests need (the preStop sleep action) and the newest
K8S_VERSIONS := 1.30.0 1.37.0
PIP_COMPILE := $(TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links

$(TOOLS_STAMP): deploy/tools/requirements.txt
	test -x $(TOOLS)/bin/python || python3 -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r $<
	rm -f $(TOOLS)/.installed-* && touch $@

tools: $(TOOLS_STAMP)

# both trees rendered and checked: the base (production) and the dev overlay (the base + the sandbox)
RENDERED := $(TOOLS)/rendered.yaml $(TOOLS)/rendered-dev.yaml

validate: setup tools  ## deploy files: kustomize + API schemas, Pod Security "restricted", checkov, compose-spec, hadolint
	$(TOOLS)/bin/kubectl kustomize deploy/kubernetes > $(TOOLS)/rendered.yaml
	$(TOOLS)/bin/kubectl kustomize deploy/kubernetes-overlays/dev > $(TOOLS)/rendered-dev.yaml
	for rendered in $(RENDERED); do for version in $(K8S_VERSIONS); do \
	  $(TOOLS)/bin/kubernetes-validate --strict --quiet -k $$version $$rendered || exit 1; \
	  echo "kubernetes-validate $$version: every resource of $$(basename $$rendered) valid"; done; done
	for rendered in $(RENDERED); do printf '%s: ' "$$(basename $$rendered)"; \
	  $(PY) scripts/check_pod_security.py $$rendered || exit 1; done
	$(TOOLS)/bin/checkov --quiet --skip-download --config-file deploy/checkov.yaml \
	  $(foreach rendered,$(RENDERED),-f $(rendered)) -f Dockerfile
	$(TOOLS)/bin/check-jsonschema --schemafile deploy/compose/compose-spec.json docker-compose.yml
	$(TOOLS)/bin/hadolint Dockerfile && echo "hadolint: Dockerfile clean"

lock: tools  ## requirements.lock, what the image installs: pyproject.toml's dependencies pinned with hashes
	CUSTOM_COMPILE_COMMAND="make lock" $(PIP_COMPILE) --output-file requirements.lock pyproject.toml

tools-lock: tools  ## deploy/tools/requirements.txt from deploy/tools/requirements.in
	CUSTOM_COMPILE_COMMAND="make tools-lock" $(PIP_COMPILE) \
	  --output-file deploy/tools/requirements.txt deploy/tools/requirements.in

$(VENV)/.bench-$(shell cksum < pyproject.toml | cut -d' ' -f1): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	rm -f $(VENV)/.bench-* && touch $@

bench: $(VENV)/.bench-$(shell cksum < pyproject.toml | cut -d' ' -f1)  ## benchmark suite (~7 min) -> bench/results/
	$(PY) -m bench
	$(PY) -m bench.processing --out bench/results

bench-smoke: setup  ## a few seconds of every benchmark workload (the tests run it too)
	$(PY) -m bench --smoke

fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .data node_modules gen
