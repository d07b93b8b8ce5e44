#!/usr/bin/env bash
# Stops the S3 test server that tests/s3/start.sh started (by the pid it wrote), if it still runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=target/s3-server
if [[ -f "$DIR/pid" ]]; then
  pid=$(cat "$DIR/pid")
  kill "$pid" 2>/dev/null && echo "stopped the s3 test server (pid $pid)" || true
  rm -f "$DIR/pid" "$DIR/endpoint"
fi
