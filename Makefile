# workload-identity-policy: build, run and test the Kubewarden policy.
# Every target that builds wasm adds the wasm32-wasip1 target itself, so a
# fresh machine with only the Rust toolchain is enough.

CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM_OUT := target/$(WASM_TARGET)/release/workload_identity_policy.wasm
POLICY_RUN := target/release/policy-run
# The example `make run` evaluates; override with EXAMPLE=fixtures/<case>.
EXAMPLE ?= fixtures/both-providers

.PHONY: all target run test test-shipped unit-tests e2e-tests fmt lint clean policy-run bench bench-kwctl fuzz fuzz-smoke FORCE

all: policy.wasm

target:
	@rustup target add $(WASM_TARGET) >/dev/null 2>&1 || rustup target add $(WASM_TARGET)

# wasm-opt (binaryen; Debian: apt-get install -y binaryen) makes the shipped
# module smaller and faster (BENCHMARKS.md). Without it policy.wasm is the
# cargo build as is. binaryen 108 must be told the features rustc enables.
WASM_OPT ?= wasm-opt
WASM_OPT_FLAGS ?= -O3 --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
	--enable-mutable-globals --enable-multivalue --enable-reference-types

policy.wasm: target FORCE
	$(CARGO) build --locked --release --target $(WASM_TARGET) -p workload-identity-policy --lib
	@if command -v $(WASM_OPT) >/dev/null 2>&1; then \
		echo "$(WASM_OPT) $(WASM_OPT_FLAGS) -o policy.wasm $(WASM_OUT)"; \
		$(WASM_OPT) $(WASM_OPT_FLAGS) -o policy.wasm $(WASM_OUT); \
	else \
		echo "wasm-opt not found (Debian: apt-get install -y binaryen): policy.wasm is not optimised"; \
		cp $(WASM_OUT) policy.wasm; \
	fi
	@echo "policy.wasm: $$(wc -c < policy.wasm) bytes"

annotated-policy.wasm: policy.wasm policy-metadata.yml README.md
	@if command -v kwctl >/dev/null 2>&1; then \
		kwctl annotate -m policy-metadata.yml -u README.md -o annotated-policy.wasm policy.wasm; \
	else \
		echo "kwctl is not installed: cannot write annotated-policy.wasm (see https://github.com/kubewarden/kwctl/releases)"; \
		exit 1; \
	fi

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
test: target fmt lint
	$(CARGO) test --locked --workspace
	@$(MAKE) --no-print-directory test-shipped

# The shipped policy.wasm (wasm-opt'ed when wasm-opt is there) answers every
# fixture exactly as the cargo build the other tests use (and as the core
# natively: the fixtures harness compares both).
test-shipped: policy.wasm
	POLICY_WASM=$(CURDIR)/policy.wasm $(CARGO) test --locked -p e2e-tests --test fixtures

unit-tests:
	$(CARGO) test --locked -p workload-identity-policy

e2e-tests: target
	$(CARGO) test --locked -p e2e-tests

fmt:
	@rustup component add rustfmt >/dev/null 2>&1 || true
	$(CARGO) fmt --all -- --check

lint:
	@rustup component add clippy >/dev/null 2>&1 || true
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

# Per-request cost of the shipped policy.wasm in the native host (a fresh
# instance per request, as policy-server), side by side with Kubewarden's own
# mutating pod policy on the same requests (PEER_WASM, default
# ../shared/bench/peer-capabilities-psp/capabilities-psp-policy-v1.0.8.wasm;
# without it its rows are skipped), and against the same core natively and
# parsing and re-serialising the JSON (e2e-tests/benches/policy.rs, BENCHMARKS.md).
# The bench profile would inherit the release profile, which is tuned for the
# wasm module (fat LTO, one codegen unit): the native side is measured, and
# built, as a native service is instead. Build and criterion output go to
# target/bench.log; the table is printed at the end (and kept in
# target/bench-table.md).
BENCH_PROFILE := CARGO_PROFILE_BENCH_OPT_LEVEL=3 CARGO_PROFILE_BENCH_LTO=false \
	CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
bench: policy.wasm
	@mkdir -p target && rm -f target/bench-table.md
	@echo "== cargo bench -p e2e-tests --bench policy (about two minutes after the build; output: target/bench.log)"
	@POLICY_WASM=$(CURDIR)/policy.wasm $(BENCH_PROFILE) $(CARGO) bench --locked -p e2e-tests --bench policy > target/bench.log 2>&1 \
		|| { tail -n 40 target/bench.log; echo "bench failed (log: target/bench.log)"; exit 1; }
	@grep '^NOTICE' target/bench.log || true
	@echo
	@cat target/bench-table.md

# The same scenarios under the real engine's `kwctl bench` (one warm instance
# for every call), ours and the peer (e2e-tests/benches/kwctl.rs). KWCTL is
# the kwctl to run (a relative path is taken from this directory).
KWCTL ?= ../shared/tools/kwctl
bench-kwctl: policy.wasm
	@mkdir -p target && rm -f target/bench-kwctl-table.md
	@echo "== cargo bench -p e2e-tests --bench kwctl (a few minutes; output: target/bench-kwctl.log)"
	@KWCTL=$(KWCTL) POLICY_WASM=$(CURDIR)/policy.wasm $(BENCH_PROFILE) $(CARGO) bench --locked -p e2e-tests --bench kwctl > target/bench-kwctl.log 2>&1 \
		|| { tail -n 40 target/bench-kwctl.log; echo "bench-kwctl failed (log: target/bench-kwctl.log)"; exit 1; }
	@grep '^NOTICE' target/bench-kwctl.log || true
	@echo
	@cat target/bench-kwctl-table.md

# Fuzzing (fuzz/, cargo-fuzz on nightly): every target in turn for FUZZ_SECONDS,
# seeded from fixtures/ (fuzz/seed.sh). Without a sanitizer (the policy is safe
# Rust; panics and aborts are what we look for), with debug assertions
# (overflow checks). A crash stops the run; its input is in
# fuzz/artifacts/<target>/ and the log in target/fuzz-<target>.log.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := --sanitizer none --debug-assertions
fuzz:
	@$(CARGO) +nightly --version >/dev/null 2>&1 || { echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly --profile minimal)"; exit 1; }
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@mkdir -p target
	fuzz/seed.sh
	cd fuzz && $(CARGO) +nightly fuzz build $(FUZZ_FLAGS)
	@set -e; for t in $$(cd fuzz && $(CARGO) +nightly fuzz list); do \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		if (cd fuzz && $(CARGO) +nightly fuzz run $(FUZZ_FLAGS) $$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) \
			> target/fuzz-$$t.log 2>&1; then \
			grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus)' target/fuzz-$$t.log || true; \
		else \
			tail -n 40 target/fuzz-$$t.log; \
			echo "fuzz $$t FAILED: input in fuzz/artifacts/$$t/, log in target/fuzz-$$t.log"; exit 1; \
		fi; \
	done

# A short run of every fuzz target (CI).
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20

clean:
	$(CARGO) clean
	rm -f policy.wasm annotated-policy.wasm

FORCE:
