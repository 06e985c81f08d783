#!/usr/bin/env bash
# Writes seeds from fixtures/ to target/fuzz-seeds/<target>/ (not committed); `make fuzz` merges
# those that add coverage into the committed corpus, fuzz/corpus/<target>/.
# decide: <lookup byte><request.json>\0<settings.json>; settings: each settings.json;
# flyte_decoder: the fixtures' flyte.secrets/s* values plus flytekit-style encodings.
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../fixtures
out=../target/fuzz-seeds
rm -rf "$out"
mkdir -p "$out"/decide "$out"/settings "$out"/flyte_decoder
cd "$out"
fixtures=../../fixtures
printf '{}' > settings/seed-empty
n=0
for dir in "$fixtures"/*/; do
    case=$(basename "$dir")
    [ -f "$dir/request.json" ] || continue
    settings="$dir/settings.json"
    if [ -f "$settings" ]; then
        cp "$settings" "settings/seed-$case"
    else
        settings=settings/seed-empty
    fi
    # Lookup answers alternate over the four (error, every provider, none, hostile).
    { printf "\\$(printf '%03o' $((n % 4)))"; cat "$dir/request.json"; printf '\0'; cat "$settings"; } \
        > "decide/seed-$case"
    n=$((n + 1))
done
# Flyte's encoding: base32, alphabet a-z1-6, no padding.
flyte() { printf '%s' "$1" | base32 -w0 | tr -d '=' | tr 'A-Z2-7' 'a-z1-6'; }
i=0
for secret in \
    'group: "db" key: "password" mount_requirement: ENV_VAR' \
    'group: "db" key: "username" mount_requirement: ENV_VAR env_var: "DB_USER"' \
    'group: "api" group_version: "kv2" key: "token" mount_requirement: FILE' \
    $'group: "aws"\nkey: "credentials"\nmount_requirement: 2\n' \
    'key: "k" group: "g\"q\\\\x\t" mount_requirement: ANY env_var: "E"'; do
    flyte "$secret" > "flyte_decoder/seed-$i"
    i=$((i + 1))
done
grep -ho '"flyte\.secrets/s[^"]*": *"[^"]*"' "$fixtures"/*/request.json 2>/dev/null |
    sed 's/.*: *"\(.*\)"$/\1/' | sort -u | while read -r value; do
        printf '%s' "$value" > "flyte_decoder/seed-fixture-$i"
        i=$((i + 1))
    done
echo "fuzz seeds: $(ls decide | wc -l) decide, $(ls settings | wc -l) settings, $(ls flyte_decoder | wc -l) flyte_decoder"
