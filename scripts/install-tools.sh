#!/usr/bin/env bash
# Installs what `make test` can use and a fresh machine may lack, and says what it cannot install.
#
# - rustup's wasm32-wasip1 (the policy) and wasm32-unknown-unknown (the playground) targets, and
#   the rustfmt and clippy components: needed; a failure here is an error.
# - Debian's packages, each optional (the tests that need one are skipped with a NOTICE without it):
#     chromium         the browser test of the playground (make playground-test)
#     binaryen         wasm-opt: the shipped policy.wasm is the optimised module (make test-shipped)
#     docker-registry  a local OCI registry for the publish round trip (e2e-tests/tests/publish.rs)
#   They are installed with apt-get when this runs as root on a machine that has apt-get;
#   otherwise, or when apt-get fails, one NOTICE line names what is skipped and how to install it.
#
# INSTALL_TOOLS=no leaves the machine as it is (the NOTICEs are still printed).
set -uo pipefail

rustup target add wasm32-wasip1 wasm32-unknown-unknown >/dev/null 2>&1 \
    || rustup target add wasm32-wasip1 wasm32-unknown-unknown || exit 1
rustup component add rustfmt clippy >/dev/null 2>&1 || rustup component add rustfmt clippy || exit 1

# command package what-needs-it
optional=(
    "chromium chromium the playground's browser test (make playground-test) is skipped"
    "wasm-opt binaryen policy.wasm is built and tested unoptimised, as cargo builds it"
    "docker-registry docker-registry the publish round trip to a local OCI registry is skipped"
)

missing=()
for entry in "${optional[@]}"; do
    read -r command package _ <<<"$entry"
    command -v "$command" >/dev/null 2>&1 || missing+=("$package")
done

can_apt() {
    [ "${INSTALL_TOOLS:-yes}" != no ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
}

if [ "${#missing[@]}" -gt 0 ] && can_apt; then
    echo "== apt-get install ${missing[*]} (once; INSTALL_TOOLS=no to skip)"
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq >/dev/null 2>&1; then
        # One at a time: a package this machine's sources lack must not stop the others.
        for package in "${missing[@]}"; do
            apt-get install -y -qq "$package" >/dev/null 2>&1 \
                || echo "apt-get install $package failed"
        done
    else
        echo "apt-get update failed: nothing installed"
    fi
fi

for entry in "${optional[@]}"; do
    read -r command package needs <<<"$entry"
    if ! command -v "$command" >/dev/null 2>&1; then
        echo "NOTICE: no $command (Debian: apt-get install $package): $needs"
    fi
done
exit 0
