#!/usr/bin/env bash
# Load callvault and the bare-receive baseline with the same simulated calls, one after the other,
# and print both reports. Usage: tests/load/compare.sh CALLS [RAMP] [HOLD] [OUT_DIR]
# Needs a release build (cargo build --release). Everything listens on loopback only.
# FRAMES_PER_WRITE=5 writes five 20 ms frames per system call (see `callvault loadgen --help`).
# CALLVAULT_SET="pci.dtmf=off" passes --set overrides to the daemon (space-separated KEY=VALUE).
set -euo pipefail
cd "$(dirname "$0")/../.."
calls=${1:?calls}; ramp=${2:-10s}; hold=${3:-20s}; out=${4:-target/load}
per_write=${FRAMES_PER_WRITE:-1}
bin=target/release/callvault
mkdir -p "$out"; state=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$state"' EXIT
cfg=(--config config/dev.toml --set state_dir="$state" --set keys.keyring="$state/keyring"
     --set secrets.webhook="$state/webhook" --set secrets.signing_key="$state/signing-key"
     --set secrets.caller_pepper="$state/pepper" --set public.listen=127.0.0.1:18443
     --set admin.listen=127.0.0.1:19464 --set log.level=warn --set recorder.max_calls=20000)
for kv in ${CALLVAULT_SET:-}; do cfg+=(--set "$kv"); done

echo "== baseline: $calls calls"
$bin loadgen-baseline --listen 127.0.0.1:18543 & base=$!
sleep 1
echo "x" > "$state/none"; chmod 600 "$state/none"
$bin loadgen --url http://127.0.0.1:18543 --token-file "$state/none" --calls "$calls" --ramp "$ramp" \
  --frames-per-write "$per_write" \
  --hold "$hold" --pid "$base" --csv "$out/baseline-$calls.csv" --prefix "base$calls" \
  --summary "$out/summary.csv" --label baseline
kill -INT $base; wait $base 2>/dev/null || true

echo "== callvault: $calls calls"
$bin "${cfg[@]}" serve & cv=$!
for _ in $(seq 50); do curl -sf 127.0.0.1:19464/readyz >/dev/null && break; sleep 0.2; done
$bin "${cfg[@]}" tokens create --role telephony --name load > "$state/tel" 2>/dev/null
$bin "${cfg[@]}" tokens create --role supervisor --name check > "$state/sup" 2>/dev/null
$bin loadgen --url http://127.0.0.1:18443 --token-file "$state/tel" --supervisor-token-file "$state/sup" \
  --calls "$calls" --ramp "$ramp" --hold "$hold" --pid "$cv" --frames-per-write "$per_write" \
  --csv "$out/callvault-$calls.csv" --prefix "cv$calls" --summary "$out/summary.csv" --label "callvault${CALLVAULT_SET:+ ($CALLVAULT_SET)}"
kill -INT $cv; wait $cv 2>/dev/null || true
