#!/usr/bin/env bash
# SIPREC ingest cost: CALLS concurrent sipp sessions, each sending two RTP streams (50 packets a
# second each) for SECONDS, against `callvault serve` (release build, embedded default: SQLite
# catalog, local object store). Over the stretch when every call is up it samples the daemon's and
# sipp's CPU (user + system, /proc/PID/stat), the daemon's RSS, and the UDP datagrams the host
# delivered (/proc/net/snmp: what sipp managed to send, which on a small machine is less than asked);
# cost per packet is the daemon's CPU over the packets delivered, and a call's share of a core at
# full rate is that times 100 packets a second. Then every recording is checked through the API
# (sealed, two channels). Prints one summary line and appends it to OUT/summary.csv.
#   Usage: tests/siprec/load.sh CALLS [SECONDS] [OUT]        (needs root for sipp's raw socket)
set -euo pipefail
cd "$(dirname "$0")/../.."
calls=${1:?calls}; secs=${2:-40}; out=${3:-target/siprec-load}
rate=100
bin=target/release/callvault
mkdir -p "$out" target/siprec-load
state=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$state"' EXIT
python3 fixtures/siprec/make_pcaps.py --long "$secs" target/siprec-load/long.pcap
cfg=(--config config/dev.toml --set state_dir="$state" --set keys.keyring="$state/keyring"
     --set secrets.webhook="$state/webhook" --set secrets.signing_key="$state/signing-key"
     --set secrets.caller_pepper="$state/pepper" --set public.listen=127.0.0.1:18443
     --set admin.listen=127.0.0.1:19464 --set log.level=warn --set recorder.max_calls=20000
     --set siprec.udp=127.0.0.1:15060 --set siprec.rtp_ports=20000-29999
     --set siprec.max_sessions=5000 --set siprec.max_new_per_second=1000
     --set 'siprec.call_id=["element:ucid", "call-id"]')
$bin "${cfg[@]}" serve & cv=$!
for _ in $(seq 100); do curl -sf 127.0.0.1:19464/readyz >/dev/null && break; sleep 0.2; done
$bin "${cfg[@]}" tokens create --role supervisor --name check > "$state/sup" 2>/dev/null
tag="load$calls-$$"
sipp -sf tests/siprec/load.xml -key ucid "$tag" -i 127.0.0.1 -mi 127.0.0.1 -p 15070 \
  -m "$calls" -l "$calls" -r "$rate" -d "$((secs * 1000 + 300))" -timeout "$((secs + 120))s" \
  -max_retrans 3 -nostdin -bg -trace_stat -stf "$state/sipp.csv" 127.0.0.1:15060 > "$state/sipp.out" || true
# in the background, sipp exits 99 after printing "Background mode - PID=[N]"
sp=$(grep -o 'PID=\[[0-9]*\]' "$state/sipp.out" | tr -dc 0-9)
[ -n "$sp" ] || { cat "$state/sipp.out"; exit 1; }
ramp=$(( (calls + rate - 1) / rate ))
python3 - "$cv" "$sp" "$calls" "$ramp" "$secs" "$out" "$state" "$tag" <<'PY'
import csv, json, os, sys, time, urllib.request
cv, sp, calls, ramp, secs, out, state, tag = sys.argv[1:]
calls, ramp, secs = int(calls), int(ramp), int(secs)
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def udp():
    # delivered and dropped UDP datagrams on this host (the RTP is nearly all of it)
    lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
    d = dict(zip(lines[0][1:], map(int, lines[1][1:])))
    return d["InDatagrams"], d["RcvbufErrors"]
rss0 = rss(cv)
time.sleep(ramp + 2)
start = time.time(); c0, s0 = cpu(cv), cpu(sp); u0, e0 = udp()
window = max(5, secs - ramp - 6)
time.sleep(window)
w = time.time() - start; c1, s1 = cpu(cv), cpu(sp); rss1 = rss(cv); u1, e1 = udp()
expected = calls * 2 * 50 * w
packets = u1 - u0
us = 1e6 * (c1 - c0) / max(packets, 1)
line = dict(calls=calls, window_s=round(w, 1),
            packets_per_s=round(packets / w), expected_per_s=round(expected / w),
            udp_drops=e1 - e0, callvault_cpu_pct=round(100 * (c1 - c0) / w, 1),
            sipp_cpu_pct=round(100 * (s1 - s0) / w, 1), us_per_packet=round(us, 2),
            cpu_pct_per_call_at_full_rate=round(us * 100 * 1e-4, 3),
            rss_kib_per_call=round((rss1 - rss0) / calls, 1),
            load_avg=open("/proc/loadavg").read().split()[0])
# wait for sipp to finish and the recordings to seal, then check every one
while os.path.exists(f"/proc/{sp}"):
    time.sleep(1)
token = open(f"{state}/sup").read().strip()
def check():
    ok = bad = 0
    for i in range(1, calls + 1):
        try:
            req = urllib.request.Request(f"http://127.0.0.1:18443/v1/recordings?call_id={tag}-{i}",
                                         headers={"Authorization": f"Bearer {token}"})
            recs = json.load(urllib.request.urlopen(req, timeout=10))["recordings"]
            if recs and recs[0]["status"] == "sealed" and recs[0]["channels"] == 2:
                ok += 1
            else:
                bad += 1
        except Exception:
            bad += 1
    return ok, bad
# sealing waits out the look-back window and the spool's backlog: up to a minute
deadline = time.time() + 60
while True:
    ok, bad = check()
    if bad == 0 or time.time() > deadline:
        break
    time.sleep(5)
line["recordings_sealed"] = ok
line["recordings_bad"] = bad
print(json.dumps(line))
path = f"{out}/summary.csv"
new = not os.path.exists(path)
with open(path, "a") as f:
    wr = csv.DictWriter(f, fieldnames=list(line))
    if new:
        wr.writeheader()
    wr.writerow(line)
PY
kill -INT $cv; wait $cv 2>/dev/null || true
