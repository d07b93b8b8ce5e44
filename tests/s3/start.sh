#!/usr/bin/env bash
# Starts the S3-compatible server the S3 tests (tests/s3.rs) run against, and leaves it running.
#
# The server is moto's standalone S3 server, from PyPI, pinned. It listens on 127.0.0.1 only. Once it
# answers, this script creates an IAM user with an access key allowed every S3 action, writes that key
# to target/s3-server/ (the tests read it from there), creates the shared bucket, and then turns on
# moto's request authentication, so from then on every request must carry a valid SigV4 signature of
# that key: a wrong secret is refused as real S3 refuses it. Each test makes its own bucket.
#
# Idempotent: a server already started by this script and still answering is reused. Stop it with
# tests/s3/stop.sh. Environment: CALLVAULT_S3_PORT (default 19900).
set -euo pipefail
cd "$(dirname "$0")/../.."

MOTO_VERSION=5.2.1
PORT=${CALLVAULT_S3_PORT:-19900}
DIR=target/s3-server
ENDPOINT="http://127.0.0.1:$PORT"
mkdir -p "$DIR"

answers() {
  python3 - "$ENDPOINT" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json", timeout=2)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

if [[ -f "$DIR/pid" ]] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null && answers \
  && [[ -s "$DIR/access_key_id" && "$(cat "$DIR/endpoint" 2>/dev/null)" == "$ENDPOINT" ]]; then
  echo "s3 test server already running at $ENDPOINT (pid $(cat "$DIR/pid"))"
  exit 0
fi
if answers; then
  echo "something else already answers at $ENDPOINT; set CALLVAULT_S3_PORT to a free port" >&2
  exit 1
fi

python3 -m pip install --quiet "moto[server]==$MOTO_VERSION"

rm -f "$DIR/access_key_id" "$DIR/secret_access_key" "$DIR/endpoint"
# nice: the server shares the machine with builds and benchmarks; setsid: it outlives this script
nice -n 19 setsid python3 -m moto.server -H 127.0.0.1 -p "$PORT" >"$DIR/server.log" 2>&1 </dev/null &
echo $! >"$DIR/pid"

for _ in $(seq 1 150); do
  answers && break
  if ! kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
    echo "the s3 test server exited; its log:" >&2
    cat "$DIR/server.log" >&2
    exit 1
  fi
  sleep 0.2
done
answers || { echo "the s3 test server did not answer at $ENDPOINT within 30s" >&2; exit 1; }

umask 077
python3 - "$ENDPOINT" "$DIR" <<'PY'
import json, os, sys, urllib.request
import boto3

endpoint, out = sys.argv[1], sys.argv[2]
# moto checks nothing yet: any key creates the user and its key
boot = dict(endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **boot)
iam.create_user(UserName="callvault-test")
iam.put_user_policy(UserName="callvault-test", PolicyName="s3", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}))
key = iam.create_access_key(UserName="callvault-test")["AccessKey"]
boto3.client("s3", **boot).create_bucket(Bucket="callvault-test")
# from now on every request must be signed with a known key
urllib.request.urlopen(urllib.request.Request(
    endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
    headers={"Content-Type": "text/plain"}), timeout=5)
for name, value in [("access_key_id", key["AccessKeyId"]),
                    ("secret_access_key", key["SecretAccessKey"]),
                    ("endpoint", endpoint)]:
    with open(os.path.join(out, name), "w") as f:
        f.write(value + "\n")
PY
echo "s3 test server (moto $MOTO_VERSION) at $ENDPOINT, pid $(cat "$DIR/pid"), bucket callvault-test"
