#!/usr/bin/env bash
# `make run` (after `make deps build`): the demo, on this machine alone.
#
#  1. glint-hub with a demo configuration under /tmp/glint-demo/hub (embedded
#     MQTT broker on 127.0.0.1:18830, SQLite, API on 127.0.0.1:18780);
#  2. the device provisioned with a one-time claim token (glintctl provision:
#     device key, registration, sync settings, self-test on the simulator),
#     and glintd started with configs/demo.yaml (simulated camera and screen
#     looking at a registry photo, models from make deps), syncing to the hub;
#  3. one enrolment of the same registry photo (cropped to a portrait), then
#     three sessions: bona fide, a print attack and a replay attack, each
#     verdict printed with its scores and reasons;
#  4. both daemons left serving, with a hint for running a session by hand.
#     Ctrl-C stops everything cleanly.
#
# Everything lives under /tmp/glint-demo, wiped at each start: the demo needs
# neither a camera, nor root, nor anything installed beyond make deps.
set -euo pipefail
cd "$(dirname "$0")/.."

D=/tmp/glint-demo
SOCK=$D/glintd.sock
HUB_API_PORT=18780
BROKER=127.0.0.1:18830
DEVICE_ID=demo-kiosk-1
SITE_ID=demo-site
SUBJECT=demo-customer-1
# The registry photo the simulated camera shows and the demo enrols: the
# skimage astronaut (make deps, scripts/faces.sh). Its face is too small in
# the 512x512 photo for an enrolment portrait (eyes 60 px apart, 85 needed),
# so the portrait is the square around the face scaled to 480x480.
FACE=.cache/faces/skimage/astronaut.png
FACE_CROP=125,26,200

say() { printf 'run: %s\n' "$*"; }
die() { printf 'run: %s\n' "$*" >&2; exit 1; }

for b in bin/glintd bin/glintctl bin/glint-hub; do
	[ -x "$b" ] || die "$b missing: run 'make run' (it builds first)"
done
[ -f "$FACE" ] || die "$FACE missing: run 'make deps'"
[ -f models/manifest.json ] || die "models/ missing: run 'make deps'"

# The daemons run in the background; this shell waits on them. On Ctrl-C
# (or any exit) each gets SIGTERM and we wait for both to finish their
# clean shutdown.
pids=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if ((${#pids[@]})); then
		say "stopping glintd and glint-hub"
		kill -TERM "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# glintd_up: the API answers on the socket (an unknown session: 404).
glintd_up() {
	[ -S "$SOCK" ] || return 1
	local out
	out=$(bin/glintctl session get none --socket "$SOCK" 2>&1 || true)
	[[ $out == *" 404 "* ]]
}
if glintd_up; then
	die "a demo glintd is already serving on $SOCK; stop it first"
fi
rm -rf "$D"
mkdir -p "$D/hub" "$D/state" "$D/log"
chmod 0700 "$D" "$D/hub" "$D/state"

# Secrets, as files with mode 0600 (never flags): the hub's API key, the
# enrolment store's AES-256 key.
(
	umask 077
	od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$D/hub/api-keys"
	head -c 32 /dev/urandom >"$D/enrolment.key"
)

# --- glint-hub -------------------------------------------------------------
cat >"$D/hub.yaml" <<EOF
# glint-hub demo configuration (written by scripts/run.sh)
state_dir: $D/hub
log: {level: info, format: text}
api: {addr: 127.0.0.1:$HUB_API_PORT, keys_file: $D/hub/api-keys}
mqtt: {embedded_addr: $BROKER}
provision: {hub_url: "http://127.0.0.1:$HUB_API_PORT", broker_url: "tcp://$BROKER"}
service: {watchdog: false}
EOF
bin/glint-hub config check "$D/hub.yaml" >/dev/null

# hub_api METHOD PATH [JSON]: one request to the hub's API over bash's
# /dev/tcp (a fresh Debian has no curl); prints the status code, then the
# body. HTTP/1.0: no chunked encoding, the server closes after the answer.
hub_api() {
	local method=$1 path=$2 body=${3:-} key
	key=$(cat "$D/hub/api-keys")
	exec 3<>"/dev/tcp/127.0.0.1/$HUB_API_PORT" || return 1
	printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
		"$method" "$path" "$key" "${#body}" "$body" >&3
	local resp
	resp=$(cat <&3)
	exec 3>&-
	# No pipes into head here or below: under pipefail, head leaving early
	# turns the writer's SIGPIPE into a failed request.
	local status=${resp%%$'\r'*}
	status=${status#* }
	printf '%s\n' "${status%% *}"
	printf '%s\n' "${resp#*$'\r\n\r\n'}"
}

say "starting glint-hub (log $D/log/glint-hub.log)"
bin/glint-hub --config "$D/hub.yaml" >"$D/log/glint-hub.log" 2>&1 &
pids+=($!)
for i in $(seq 1 100); do
	if resp=$(hub_api GET /api/v1/hub 2>/dev/null) && [ "${resp%%$'\n'*}" = 200 ]; then break; fi
	kill -0 "${pids[0]}" 2>/dev/null || die "glint-hub exited: $(tail -5 "$D/log/glint-hub.log")"
	((i == 100)) && die "glint-hub API not up after 20 s: $(tail -5 "$D/log/glint-hub.log")"
	sleep 0.2
done
say "glint-hub serving: API http://127.0.0.1:$HUB_API_PORT, MQTT $BROKER, SQLite $D/hub/hub.db"

# --- provisioning: glintd's device key, registered with a claim token ------
# The field technician's flow (docs/provisioning.md): operations creates a
# one-time token for the site; the device makes its key, registers it with a
# registration signed by that key, writes its sync settings (sync.env, the
# hub's receipt key) into glintd's state directory and runs its self-test
# (here on the simulated camera and screen).
token_out=$(bin/glint-hub token create --config "$D/hub.yaml" --site "$SITE_ID" --ttl 15m --note "make run demo kiosk")
link=$(sed -n 's/^link: *//p' <<<"$token_out")
[ -n "$link" ] || die "no provisioning link from glint-hub token create: $token_out"
say "provisioning $DEVICE_ID with a one-time claim token for site $SITE_ID"
bin/glintctl provision --link "$link" --state-dir "$D/state" --site "$SITE_ID" --device-id "$DEVICE_ID" \
	--sim-faces "$(dirname "$FACE")" 2>&1 | sed 's/^/     /'
((PIPESTATUS[0] == 0)) || die "provisioning failed"

# --- glintd ---------------------------------------------------------------
# configs/demo.yaml is the demo kiosk; the environment adds what this script
# made: the sync settings provisioning wrote (as systemd's EnvironmentFile=
# would), the enrolment key, the face photo.
set -a
# shellcheck disable=SC1091
. "$D/state/sync.env"
set +a
export GLINT_ENROLMENT_KEY_FILE=$D/enrolment.key GLINT_CAMERA_SIM_FACE=$FACE
export GLINT_API_SOCKET=$SOCK GLINT_STATE_DIR=$D/state
bin/glintd config check configs/demo.yaml >/dev/null
say "starting glintd with configs/demo.yaml (log $D/log/glintd.log)"
bin/glintd --config configs/demo.yaml >"$D/log/glintd.log" 2>&1 &
pids+=($!)
for i in $(seq 1 300); do
	# glintd loads the models before its API serves.
	if glintd_up; then break; fi
	kill -0 "${pids[1]}" 2>/dev/null || die "glintd exited: $(tail -5 "$D/log/glintd.log")"
	((i == 300)) && die "glintd API not up after 60 s: $(tail -5 "$D/log/glintd.log")"
	sleep 0.2
done
say "glintd serving on $SOCK"

# --- the demo ---------------------------------------------------------------
say "enrolling $SUBJECT from $FACE (square $FACE_CROP, scaled to 480x480)"
enrol=$(bin/glintctl enrol --socket "$SOCK" --subject "$SUBJECT" --crop "$FACE_CROP" "$FACE")
printf '     %s\n' "$enrol"
REF=$(sed -n 's/.*reference_id \([0-9a-f-]\{36\}\).*/\1/p' <<<"$enrol")
[ -n "$REF" ] || die "no reference_id in: $enrol"

n=0
for presentation in bona_fide print replay; do
	n=$((n + 1))
	echo
	say "session $n/3: $presentation in front of the camera"
	set +e
	bin/glintctl session start --socket "$SOCK" --subject "$SUBJECT" --reference "$REF" --sim-presentation "$presentation" |
		sed 's/^/     /'
	rc=${PIPESTATUS[0]}
	set -e
	((rc == 2)) && die "session $n failed (glintd log: $D/log/glintd.log)"
	# glintctl's exit status: 0 Approved, 1 any other verdict.
	want=1
	[ "$presentation" = bona_fide ] && want=0
	((rc == want)) || say "UNEXPECTED: $presentation got $( ((rc == 0)) && echo Approved || echo 'a refusal')"
done

# Leave the live face in front of the camera for sessions by hand.
bin/glintctl session present bona_fide --socket "$SOCK" >/dev/null

echo
# The three signed results travel to the hub; show that they arrived.
for i in $(seq 1 50); do
	stored=$(hub_api GET "/api/v1/results?device=$DEVICE_ID" | tail -n +2 | grep -o '"kid":' | wc -l || true)
	((stored >= 3)) && break
	sleep 0.2
done
say "glint-hub holds $stored signed results from $DEVICE_ID (verified against its registered key)"

cat <<HINT

run: glintd and glint-hub keep serving; Ctrl-C stops both. In another shell:
       bin/glintctl session start --socket $SOCK --subject me --reference $REF
       bin/glintctl session present screen --socket $SOCK     # or print, replay, injection, relight, mask, bona_fide
       bin/glintctl session start --socket $SOCK --subject me --reference $REF --json
       bin/glintctl enrol --socket $SOCK --subject someone --crop X,Y,SIDE PHOTO
       curl --unix-socket $SOCK http://glintd/healthz
       curl -H "Authorization: Bearer \$(cat $D/hub/api-keys)" http://127.0.0.1:$HUB_API_PORT/api/v1/results
     Kiosk API: docs/kiosk-api.md. Logs: $D/log/.
HINT

# Serve until Ctrl-C. A terminal's Ctrl-C reaches the daemons too (the
# whole process group), so one may finish before the trap runs: a daemon
# that stopped cleanly (status 0) was interrupted, any other status is a
# failure.
set +e
wait -n -p done_pid "${pids[@]}"
rc=$?
((rc == 0)) && exit 0
name=glintd
[ "${done_pid:-}" = "${pids[0]}" ] && name=glint-hub
say "$name exited with status $rc; see $D/log/$name.log"
exit 1
