#!/usr/bin/env bash
# The whole test suite, with the real peers it needs: the pinned Python clients of the telephony
# tests, PostgreSQL on 127.0.0.1:5432 (started if it is down) and the S3 test server
# (tests/s3/start.sh). Then `cargo test`, and the counts. Arguments go to `cargo test`.
# This is the README's test command; .ci/run runs it after the lints.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> python peers of the telephony tests (pinned)"
python3 -m pip install --quiet --disable-pip-version-check twilio==9.13.0 streamdouble==0.3.0

echo "==> sox and multimon-ng (a DTMF decoder this project did not write) for tests/dtmf_live.rs"
if ! command -v multimon-ng >/dev/null 2>&1 || ! command -v sox >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq sox multimon-ng >/dev/null
fi
echo "==> sipp (Debian's sip-tester) as the SIPREC recording client of tests/siprec.rs"
if ! command -v sipp >/dev/null; then
  apt-get install -y sip-tester || { apt-get update && apt-get install -y sip-tester; }
fi
{ sipp -v 2>&1 || true; } | head -2

echo "==> postgresql for the postgres catalog tests (trust auth on 127.0.0.1:5432, database test)"
if ! pg_isready -q -h 127.0.0.1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1

echo "==> S3-compatible test server (moto, pinned) for tests/s3.rs and tests/completeness.rs"
bash tests/s3/start.sh

echo "==> the web console's browser tests: chromium and its driver (Debian), oidc-provider and axe-core (npm, pinned)"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi
if ! command -v node >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi
(cd tests/console && npm ci --no-audit --no-fund --silent)
echo "==> tools that make the import fixtures (fixtures/import/make.sh), when missing"
if ! command -v sox >/dev/null || ! command -v ffmpeg >/dev/null || ! command -v espeak-ng >/dev/null; then
  apt-get install -y -qq sox libsox-fmt-all ffmpeg espeak-ng >/dev/null || {
    apt-get update -qq && apt-get install -y -qq sox libsox-fmt-all ffmpeg espeak-ng >/dev/null; }
fi

echo "==> cargo test"
mkdir -p target
cargo test --no-fail-fast "$@" 2>&1 | tee target/test.log
echo
grep -E '^test result:' target/test.log |
  awk '{p+=$4; f+=$6; i+=$8} END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, i}'
