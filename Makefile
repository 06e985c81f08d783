# workload-identity-policy: build, run and test the Kubewarden policy.
# Every target that builds wasm adds the wasm32-wasip1 target itself, so a
# fresh machine with only the Rust toolchain is enough.

CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
# Where cargo builds the module; the publish test passes target/e2e-wasm, the tests' own target
# directory, so that it never waits on the lock of the `cargo test` that runs it.
TARGET_DIR ?= target
WASM_OUT = $(TARGET_DIR)/$(WASM_TARGET)/release/workload_identity_policy.wasm
POLICY_RUN := target/release/policy-run
# The example `make run` evaluates; override with EXAMPLE=fixtures/<case>.
EXAMPLE ?= fixtures/both-providers

.PHONY: all rustup-target tools annotate publish check-kwctl check-publish run test test-shipped unit-tests e2e-tests fmt lint clean policy-run bench bench-kwctl baseline.wasm fuzz fuzz-smoke FORCE
.PHONY: wasm-bindgen-cli playground playground-serve playground-test

all: policy.wasm

rustup-target:
	@rustup target add $(WASM_TARGET) >/dev/null 2>&1 || rustup target add $(WASM_TARGET)

# What make test can use and a fresh machine may lack: rustup's targets and components, and, as
# root on Debian, chromium, binaryen and docker-registry (apt-get); a NOTICE for each one missing
# (scripts/install-tools.sh; INSTALL_TOOLS=no installs nothing).
tools:
	@scripts/install-tools.sh

# wasm-opt (binaryen; Debian: apt-get install -y binaryen) makes the shipped
# module smaller and faster (BENCHMARKS.md). Without it policy.wasm is the
# cargo build as is. binaryen 108 must be told the features rustc enables.
WASM_OPT ?= wasm-opt
WASM_OPT_FLAGS ?= -O3 --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
	--enable-mutable-globals --enable-multivalue --enable-reference-types

# $(call optimise,IN,OUT): OUT is IN through wasm-opt, or IN as is without it.
optimise = if command -v $(WASM_OPT) >/dev/null 2>&1; then \
		echo "$(WASM_OPT) $(WASM_OPT_FLAGS) -o $(2) $(1)"; \
		$(WASM_OPT) $(WASM_OPT_FLAGS) -o $(2) $(1); \
	else \
		echo "NOTICE: no wasm-opt (Debian: apt-get install binaryen): $(2) is not optimised"; \
		cp $(1) $(2); \
	fi && echo "$(2): $$(wc -c < $(2)) bytes"

policy.wasm: rustup-target FORCE
	$(CARGO) build --locked --release --target $(WASM_TARGET) --target-dir $(TARGET_DIR) -p workload-identity-policy --lib
	@$(call optimise,$(WASM_OUT),policy.wasm)

# kwctl (Kubewarden's CLI): KWCTL=/path/to/kwctl, else `kwctl` on PATH. Only annotate, publish
# and bench-kwctl need it; the tests that use it skip themselves without it.
KWCTL ?= kwctl
# The version the module is published as: policy-metadata.yml and Cargo.toml must agree.
METADATA_VERSION = $(shell sed -n 's/^ *io.kubewarden.policy.version: *//p' policy-metadata.yml)
CARGO_VERSION = $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)

check-kwctl:
	@command -v $(KWCTL) >/dev/null 2>&1 || { \
		echo "kwctl not found (KWCTL=$(KWCTL)): install it (https://github.com/kubewarden/kwctl/releases) or pass KWCTL=/path/to/kwctl"; \
		exit 1; }

# The module as it is published: policy-metadata.yml and README.md embedded.
annotate: annotated-policy.wasm
annotated-policy.wasm: policy.wasm policy-metadata.yml README.md check-kwctl
	$(KWCTL) annotate -m policy-metadata.yml -u README.md -o annotated-policy.wasm policy.wasm
	@echo "annotated-policy.wasm: $$(wc -c < annotated-policy.wasm) bytes"

# Publishes the annotated module: make publish REGISTRY=registry://HOST/PATH:TAG
# [KWCTL=...] [SOURCES=sources.yml]. TAG must be the version of policy-metadata.yml
# and Cargo.toml (with or without a leading v). SOURCES is passed to kwctl as
# --sources-path, e.g. for a registry over plain HTTP (insecure_sources).
publish: check-publish annotated-policy.wasm
	$(KWCTL) push $(if $(SOURCES),--sources-path $(SOURCES)) annotated-policy.wasm $(REGISTRY)

check-publish:
	@test -n "$(REGISTRY)" || { echo "publish: REGISTRY is missing: make publish REGISTRY=registry://HOST/PATH:v$(METADATA_VERSION)"; exit 1; }
	@case "$(REGISTRY)" in registry://*/*:*) ;; *) \
		echo "publish: REGISTRY=$(REGISTRY) is not registry://HOST/PATH:TAG"; exit 1;; esac
	@test "$(METADATA_VERSION)" = "$(CARGO_VERSION)" || { \
		echo "publish: policy-metadata.yml says version $(METADATA_VERSION), Cargo.toml says $(CARGO_VERSION): make them agree"; exit 1; }
	@tag="$$(echo '$(REGISTRY)' | sed 's/.*://')"; \
	case "$$tag" in $(METADATA_VERSION)|v$(METADATA_VERSION)) ;; *) \
		echo "publish: tag $$tag differs from the policy's version $(METADATA_VERSION) (policy-metadata.yml, Cargo.toml): use :v$(METADATA_VERSION)"; exit 1;; esac
	@test -z "$(SOURCES)" || test -f "$(SOURCES)" || { echo "publish: SOURCES=$(SOURCES) is not a file"; exit 1; }

policy-run:
	$(CARGO) build --locked --release -p e2e-tests --bin policy-run

# Runs the policy on a recorded request, as `kwctl run` would, and shows the
# decision and the JSON patch it applies to the pod.
run: policy.wasm policy-run
	@echo "== $(EXAMPLE)/request.json ($$(cat $(EXAMPLE)/NOTES.md | head -1))"
	@$(POLICY_RUN) --allow-context-aware \
		$$(test -f $(EXAMPLE)/settings.json && echo --settings-path $(EXAMPLE)/settings.json) \
		$$(test -f $(EXAMPLE)/session.yml && echo --replay-host-capabilities-interactions $(EXAMPLE)/session.yml) \
		--request-path $(EXAMPLE)/request.json policy.wasm > target/run-output.json
	@echo "== AdmissionResponse"
	@cat target/run-output.json
	@echo "== JSON patch (decoded)"
	@sed -n 's/.*"patch":"\([^"]*\)".*/\1/p' target/run-output.json | base64 -d | sed 's/},{"op"/},\n{"op"/g'; echo

# Everything CI runs: formatting, lints, unit tests, and the e2e tests that
# build the real policy.wasm and run it under the native wasmtime host.
# test-shipped reuses the module the e2e tests built (target/e2e-wasm): one fat-LTO
# build of the policy, not two.
test: tools fmt lint
	$(CARGO) test --locked --workspace
	@$(MAKE) --no-print-directory test-shipped TARGET_DIR=target/e2e-wasm
	@$(MAKE) --no-print-directory playground-test

# The shipped policy.wasm (wasm-opt'ed when wasm-opt is there) answers every
# fixture exactly as the cargo build the other tests use (and as the core
# natively: the fixtures harness compares both). --workspace, not -p e2e-tests:
# cargo unifies features over the packages it builds, and e2e-tests alone
# would build wasmtime and its dependencies a second time.
test-shipped: policy.wasm
	POLICY_WASM=$(CURDIR)/policy.wasm $(CARGO) test --locked --workspace --test fixtures

unit-tests:
	$(CARGO) test --locked -p workload-identity-policy

e2e-tests: rustup-target
	$(CARGO) test --locked -p e2e-tests

fmt:
	@rustup component add rustfmt >/dev/null 2>&1 || true
	$(CARGO) fmt --all -- --check

lint:
	@rustup component add clippy >/dev/null 2>&1 || true
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

# What the policy adds to an admission, in policy-server's cost model (a fresh
# instance per request): the shipped policy.wasm side by side with a baseline
# module (BASELINE_WASM, e.g. the previous release built by `make baseline.wasm`;
# BASELINE_REF=<git ref> builds that one and uses it) and with Kubewarden's own
# mutating pod policy (PEER_WASM, capabilities-psp-policy v1.0.8's module), on the
# same requests; without either, its columns show `-` after one NOTICE
# (e2e-tests/benches/policy.rs, BENCHMARKS.md). Relative paths are taken from this
# directory. The bench profile would inherit the release profile, which is tuned
# for the wasm module (fat LTO, one codegen unit): the bench itself is built as a
# native service is instead. Build and criterion output go to target/bench.log;
# the table is printed at the end (and kept in target/bench-table.md).
BENCH_PROFILE := CARGO_PROFILE_BENCH_OPT_LEVEL=3 CARGO_PROFILE_BENCH_LTO=false \
	CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
BASELINE_NAME = $(subst /,-,$(BASELINE_REF))
BASELINE_WASM ?= $(if $(BASELINE_REF),target/baseline-$(BASELINE_NAME).wasm)
BENCH_ENV = POLICY_WASM=$(CURDIR)/policy.wasm BASELINE_WASM=$(BASELINE_WASM) PEER_WASM=$(PEER_WASM) \
	$(BENCH_PROFILE)
bench: policy.wasm $(if $(BASELINE_REF),baseline.wasm)
	@mkdir -p target && rm -f target/bench-table.md
	@echo "== cargo bench -p e2e-tests --bench policy (about three minutes after the build; output: target/bench.log)"
	@$(BENCH_ENV) $(CARGO) bench --locked -p e2e-tests --bench policy > target/bench.log 2>&1 \
		|| { tail -n 40 target/bench.log; echo "bench failed (log: target/bench.log)"; exit 1; }
	@grep '^NOTICE' target/bench.log || true
	@echo
	@cat target/bench-table.md

# The same scenarios under the real engine's `kwctl bench` (one warm instance
# for every call): ours, the baseline and the peer as for `bench`
# (e2e-tests/benches/kwctl.rs). KWCTL is the kwctl to run (a relative path is
# taken from this directory); without one it prints a NOTICE and does nothing.
bench-kwctl: policy.wasm $(if $(BASELINE_REF),baseline.wasm)
	@mkdir -p target && rm -f target/bench-kwctl-table.md
	@echo "== cargo bench -p e2e-tests --bench kwctl (a few minutes; output: target/bench-kwctl.log)"
	@KWCTL=$(KWCTL) $(BENCH_ENV) $(CARGO) bench --locked -p e2e-tests --bench kwctl > target/bench-kwctl.log 2>&1 \
		|| { tail -n 40 target/bench-kwctl.log; echo "bench-kwctl failed (log: target/bench-kwctl.log)"; exit 1; }
	@grep '^NOTICE' target/bench-kwctl.log || true
	@echo
	@test ! -f target/bench-kwctl-table.md || cat target/bench-kwctl-table.md

# The baseline for `make bench`: make baseline.wasm BASELINE_REF=<git ref> builds
# the policy as it was at that ref (a tag, a branch, a commit) and writes
# target/baseline-<ref>.wasm (`/` in the ref becomes `-`), through the same
# wasm-opt step as policy.wasm. The ref is checked out in a temporary git worktree
# (target/baseline-worktree, removed afterwards) and built with plain cargo, not
# with that ref's Makefile, into a target directory of its own
# (target/baseline-build, kept so the next ref rebuilds little).
BASELINE_WORKTREE := target/baseline-worktree
BASELINE_TARGET_DIR := $(CURDIR)/target/baseline-build
baseline.wasm: rustup-target
	@test -n "$(BASELINE_REF)" || { echo "baseline.wasm: BASELINE_REF is missing: make baseline.wasm BASELINE_REF=<git ref>"; exit 1; }
	@git rev-parse --quiet --verify '$(BASELINE_REF)^{commit}' >/dev/null || { echo "baseline.wasm: $(BASELINE_REF) is not a commit of this repository"; exit 1; }
	@mkdir -p target
	@git worktree remove --force $(BASELINE_WORKTREE) 2>/dev/null; rm -rf $(BASELINE_WORKTREE); git worktree prune
	git worktree add --detach --quiet $(BASELINE_WORKTREE) '$(BASELINE_REF)'
	@cd $(BASELINE_WORKTREE) && $(CARGO) build --locked --release --target $(WASM_TARGET) --target-dir $(BASELINE_TARGET_DIR) -p workload-identity-policy --lib; \
		status=$$?; cd $(CURDIR) && git worktree remove --force $(BASELINE_WORKTREE); git worktree prune; \
		test $$status -eq 0 || { echo "baseline.wasm: building $(BASELINE_REF) failed"; exit 1; }
	@$(call optimise,$(BASELINE_TARGET_DIR)/$(WASM_TARGET)/release/workload_identity_policy.wasm,target/baseline-$(BASELINE_NAME).wasm)

# Fuzzing (fuzz/, cargo-fuzz on nightly): each of FUZZ_TARGETS in turn for FUZZ_SECONDS.
# The corpus, fuzz/corpus/<target>/, is committed, and `cargo test` replays it on stable
# (tests/fuzz_corpus.rs). Each run first merges the seeds of fixtures/ (fuzz/seed.sh, into
# target/fuzz-seeds/) that add coverage, fuzzes, then minimises the corpus to a set of inputs
# that covers every edge (-set_cover_merge=1 -use_counters=0: about 1.8 MB for the three);
# `git add fuzz/corpus` keeps what it found. Without a sanitizer (the policy is safe Rust;
# panics and aborts are what we look for), with debug assertions (overflow checks). A crash
# stops the run; its input is in fuzz/artifacts/<target>/ and the log in
# target/fuzz-<target>.log: turn it into a fixture or a unit test, fix, and add the input to
# fuzz/corpus/<target>/. FUZZ_MINIMISE=no (fuzz-smoke) leaves the corpus as it is: no merge,
# no minimisation, and what the run finds goes to target/fuzz-scratch/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= decide settings flyte_decoder
FUZZ_MINIMISE ?= yes
FUZZ_FLAGS := --sanitizer none --debug-assertions
FUZZ_ARGS = -timeout=10 -rss_limit_mb=2048
fuzz:
	@$(CARGO) +nightly --version >/dev/null 2>&1 || { echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly --profile minimal)"; exit 1; }
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@mkdir -p target
	fuzz/seed.sh
	cd fuzz && $(CARGO) +nightly fuzz build $(FUZZ_FLAGS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		if [ "$(FUZZ_MINIMISE)" = yes ]; then \
			(cd fuzz && $(CARGO) +nightly fuzz run $(FUZZ_FLAGS) $$t corpus/$$t ../target/fuzz-seeds/$$t -- \
				-merge=1 $(FUZZ_ARGS)) > target/fuzz-$$t-merge.log 2>&1 \
				|| { tail -n 20 target/fuzz-$$t-merge.log; echo "fuzz $$t: merging the seeds failed"; exit 1; }; \
		fi; \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s ($$(ls fuzz/corpus/$$t | wc -l) corpus inputs)"; \
		dirs=corpus/$$t; [ "$(FUZZ_MINIMISE)" = yes ] || { dirs="../target/fuzz-scratch/$$t corpus/$$t"; mkdir -p target/fuzz-scratch/$$t; }; \
		if (cd fuzz && $(CARGO) +nightly fuzz run $(FUZZ_FLAGS) $$t $$dirs ../target/fuzz-seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS) -print_final_stats=1) \
			> target/fuzz-$$t.log 2>&1; then \
			grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' target/fuzz-$$t.log || true; \
		else \
			tail -n 40 target/fuzz-$$t.log; \
			echo "fuzz $$t FAILED: input in fuzz/artifacts/$$t/, log in target/fuzz-$$t.log"; exit 1; \
		fi; \
		if [ "$(FUZZ_MINIMISE)" = yes ]; then \
			rm -rf target/fuzz-min/$$t; mkdir -p target/fuzz-min/$$t; \
			(cd fuzz && $(CARGO) +nightly fuzz run $(FUZZ_FLAGS) $$t ../target/fuzz-min/$$t corpus/$$t -- \
				-set_cover_merge=1 -use_counters=0 $(FUZZ_ARGS)) > target/fuzz-$$t-min.log 2>&1 \
				|| { tail -n 20 target/fuzz-$$t-min.log; echo "fuzz $$t: minimising the corpus failed"; exit 1; }; \
			rm -rf fuzz/corpus/$$t; mv target/fuzz-min/$$t fuzz/corpus/$$t; \
			echo "   corpus: $$(ls fuzz/corpus/$$t | wc -l) inputs, $$(du -sh --apparent-size fuzz/corpus/$$t | cut -f1) (git add fuzz/corpus to keep them)"; \
		fi; \
	done

# A short run of every fuzz target (CI): the committed corpus as it is.
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20 FUZZ_MINIMISE=no

# Browser playground (playground/): the policy core built for wasm32-unknown-unknown
# with wasm-bindgen, and a static page (playground/www) that loads it from
# playground/www/pkg. wasm-bindgen-cli must be the exact version of the
# wasm-bindgen crate in Cargo.lock; it is installed when missing (without its
# TLS features: it downloads nothing). The release profile strips the custom
# section wasm-bindgen reads the module's features from: this build keeps it,
# and wasm-bindgen drops the names instead.
PLAYGROUND_TARGET := wasm32-unknown-unknown
PLAYGROUND_PKG := playground/www/pkg
PLAYGROUND_PORT ?= 8000
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' Cargo.lock)

# wasm-bindgen-cli, the exact version of the crate in Cargo.lock, installed once with cargo when
# missing; with current dependencies when its locked ones cannot all be fetched.
wasm-bindgen-cli:
	@test -n "$(WASM_BINDGEN_VERSION)" || { echo "playground: no wasm-bindgen version in Cargo.lock"; exit 1; }
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
		echo "== cargo install wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (a few minutes, once)"; \
		$(CARGO) install --locked --no-default-features wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) \
		|| { echo "== its locked dependencies cannot all be fetched: installing with current ones"; \
			$(CARGO) install --no-default-features wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); }; \
	fi

playground: wasm-bindgen-cli
	@rustup target add $(PLAYGROUND_TARGET) >/dev/null 2>&1 || rustup target add $(PLAYGROUND_TARGET)
	CARGO_PROFILE_RELEASE_STRIP=false $(CARGO) build --locked --release --target $(PLAYGROUND_TARGET) -p playground --lib
	wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
		--out-dir $(PLAYGROUND_PKG) target/$(PLAYGROUND_TARGET)/release/playground.wasm
	$(CARGO) run --locked -q -p playground --bin playground-fixtures -- fixtures $(PLAYGROUND_PKG)/fixtures.js
	@echo "playground: $(PLAYGROUND_PKG) ($$(wc -c < $(PLAYGROUND_PKG)/playground_bg.wasm) bytes of wasm)"

# Serves the page on 127.0.0.1 (PLAYGROUND_PORT, default 8000) until Ctrl-C.
playground-serve: playground
	@echo "== playground: open http://127.0.0.1:$(PLAYGROUND_PORT)/"
	python3 -m http.server --bind 127.0.0.1 --directory playground/www $(PLAYGROUND_PORT)

# The page in Debian's headless chromium (CHROMIUM=/usr/bin/chromium), driven by
# playwright-core (npm ci in playground/): every fixture through the example
# picker against its expected.json, malformed editors, links, a 1,000-container
# pod (playground/e2e/playground.test.mjs). Serves and stops everything itself.
# PLAYGROUND_SCREENSHOT=playground/screenshot.png also retakes the README's picture.
# Without chromium, npm, or what cannot be installed (wasm-bindgen-cli, playwright-core),
# it prints one NOTICE and is skipped; a failing build or test is a failure.
PLAYGROUND_SKIP = echo "NOTICE: playground-test SKIPPED:"
playground-test:
	@chromium="$${CHROMIUM:-/usr/bin/chromium}"; \
	test -x "$$chromium" || { $(PLAYGROUND_SKIP) "no chromium at $$chromium (Debian: apt-get install chromium, or set CHROMIUM)"; exit 0; }; \
	command -v npm >/dev/null 2>&1 || { $(PLAYGROUND_SKIP) "no node and npm (Debian: apt-get install npm)"; exit 0; }; \
	$(MAKE) --no-print-directory wasm-bindgen-cli || { $(PLAYGROUND_SKIP) "wasm-bindgen-cli $(WASM_BINDGEN_VERSION) cannot be installed"; exit 0; }; \
	( cd playground && { test node_modules/.package-lock.json -nt package-lock.json || npm ci --no-audit --no-fund; } ) \
		|| { $(PLAYGROUND_SKIP) "npm ci cannot install playwright-core (no npm registry?)"; exit 0; }; \
	$(MAKE) --no-print-directory playground && \
	cd playground && node --test --test-reporter=spec e2e/playground.test.mjs

clean:
	$(CARGO) clean
	rm -f policy.wasm annotated-policy.wasm

FORCE:
