#!/usr/bin/env bash
# How a test suite in any language uses the emulator: start it in the background, wait
# for its ready file, drive it over the admin API, stop it. (tests/test_ci_example.py
# runs this script; the README's GitHub Actions step runs it too.)
set -euo pipefail
EMU="${SMBRDP_EMU:-smbrdp-emu}"       # e.g. "python3 -m emulator" from a checkout
WORK="$(mktemp -d)"
TOKEN="ci-token"
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/lab.toml" <<TOML
smb_port = 0
netbios_port = 0
rdp_port = 0
nbns_port = -1
virtual_clock = true
[users]
alice = "Passw0rd!"
[[host]]
name = "fileserver"
address = "127.0.0.1"
edition = "win10"
TOML

# 1. Start in the background; the ready file appears (atomically) once it listens.
$EMU lab "$WORK/lab.toml" --admin-port 0 --admin-token "$TOKEN" \
    --ready-file "$WORK/ready.json" > "$WORK/stdout" 2> "$WORK/stderr" &
PID=$!
for _ in $(seq 200); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
[ -s "$WORK/ready.json" ] || { echo "no ready file"; cat "$WORK/stderr"; exit 1; }

# 2. Read the addresses from the JSON (python3 here; jq, or your language's JSON parser).
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" \
              "$WORK/ready.json" "$1"; }
ADMIN="$(field 'd["admin"]')"
SMB="$(field 'd["hosts"][0]["smb"]')"
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" "$@"; }

# 3. Drive it: a logon on the win10 host, then a host added for this test alone.
smbclient -p "${SMB##*:}" -U 'alice%Passw0rd!' "//${SMB%:*}/public" -c 'ls' > /dev/null
api "$ADMIN/api/hosts/FILESERVER/events" | grep -q '"user": "alice"'   # its logon and logoff
api -X POST "$ADMIN/api/hosts" \
    -d '{"name": "homebox", "edition": "xp-home", "smb_port": 0, "nbns_port": -1}' \
    | grep -q '"name": "HOMEBOX"'
api "$ADMIN/api/hosts/HOMEBOX/limits" | grep -q '"limit": 5'
api -X DELETE "$ADMIN/api/hosts/HOMEBOX" > /dev/null

# 4. Stop it: SIGTERM, and it exits 0.
kill -TERM "$PID"
wait "$PID"
echo "ci-smoke: ok"
