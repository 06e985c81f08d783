# workload-identity-policy: build, run and test the Kubewarden policy.
# Every target that builds wasm adds the wasm32-wasip1 target itself, so a
# fresh machine with only the Rust toolchain is enough.

CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM_OUT := target/$(WASM_TARGET)/release/workload_identity_policy.wasm
POLICY_RUN := target/release/policy-run
# The example `make run` evaluates; override with EXAMPLE=fixtures/<case>.
EXAMPLE ?= fixtures/both-providers

.PHONY: all target run test unit-tests e2e-tests fmt lint clean policy-run FORCE

all: policy.wasm

target:
	@rustup target add $(WASM_TARGET) >/dev/null 2>&1 || rustup target add $(WASM_TARGET)

policy.wasm: target FORCE
	$(CARGO) build --locked --release --target $(WASM_TARGET) -p workload-identity-policy --lib
	cp $(WASM_OUT) policy.wasm
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

clean:
	$(CARGO) clean
	rm -f policy.wasm annotated-policy.wasm

FORCE:
