#!/usr/bin/env bash
# `make demo`: a signed artifact replaces another under a real systemd.
# Starts a private systemd manager when PID 1 is not systemd, generates a
# signing key, publishes hello v1 listening on a fixed address, lets liid
# deploy it, publishes v2 while a client keeps asking that address, and
# shows `liictl status` and what the client saw before, during and after.
# Cleans up after itself.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
demo="$build/demo"
bin="$build"
if [[ $(id -u) != 0 ]]; then
        echo "make demo: run as root (it starts systemd units)" >&2
        exit 1
fi

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

manager_pid=
liid_pid=
client_pid=
migrate_was=
cleanup() {
        [[ -n $client_pid ]] && kill "$client_pid" 2>/dev/null && wait "$client_pid" 2>/dev/null || true
        [[ -n $liid_pid ]] && kill "$liid_pid" 2>/dev/null && wait "$liid_pid" 2>/dev/null || true
        if [[ -n $manager_pid ]]; then
                # The private manager stops its units as it exits.
                kill "$manager_pid" 2>/dev/null || true
                wait "$manager_pid" 2>/dev/null || true
        elif [[ -n ${bus:-} ]]; then
                systemctl stop 'lii-hello@*.service' 2>/dev/null || true
        fi
        rm -f "$socket"
        [[ -z $migrate_was ]] || echo "$migrate_was" >/proc/sys/net/ipv4/tcp_migrate_req
}
trap cleanup EXIT

# The address hello keeps through every replacement: 8080, or the first of
# these that nothing listens on.
address=
for p in 8080 18080 28080 38080; do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
                address=127.0.0.1:$p
                break
        fi
done
[[ -n $address ]] || { echo "make demo: ports 8080, 18080, 28080 and 38080 are all in use" >&2; exit 1; }

rm -rf "$demo"
mkdir -p -m 0755 "$demo"/{www,keys/desired.d,keys/artifact.d,state}
socket=/run/lii-demo.sock

if [[ $(cat /proc/1/comm 2>/dev/null) == systemd ]]; then
        bus=system
        say "Using the host's systemd"
else
        say "PID 1 is not systemd: starting a private systemd manager"
        runtime="$demo/runtime"
        mkdir -m 0700 "$runtime"
        setsid "$here/private-manager.sh" "$runtime" "$demo/config" --log-level=warning &
        manager_pid=$!
        for _ in $(seq 100); do
                [[ -S $runtime/systemd/private ]] && break
                sleep 0.1
        done
        bus="unix:path=$runtime/systemd/private"
        export XDG_RUNTIME_DIR=$runtime
fi

say "Generating signing keys with minisign"
minisign -G -W -f -p "$demo/keys/desired.d/demo.pub" -s "$demo/keys/desired.key" >/dev/null
minisign -G -W -f -p "$demo/keys/artifact.d/demo.pub" -s "$demo/keys/artifact.key" >/dev/null

serial=0
publish() { # publish VERSION [ARGS]: hello-VERSION.tar.gz as the desired state, signed
        local v=$1 args=${2:-} art="hello-$1.tar.gz"
        cp "$build/sample/$art" "$demo/www/$art"
        minisign -S -s "$demo/keys/artifact.key" -m "$demo/www/$art" -t "hello v$v" >/dev/null
        serial=$((serial + 1))
        cat >"$demo/www/.desired.json" <<JSON
{
  "format": "lii.desired/1",
  "serial": $serial,
  "services": {
    "hello": {
      "artifact": { "url": "$art", "sha256": "$(sha256sum "$demo/www/$art" | cut -d' ' -f1)",
                    "size": $(stat -c %s "$demo/www/$art") },
      "exec": ["bin/hello", "--version-name", "v$v"$args],
      "listen": ["$address"],
      "env": { "GREETING": "hello from the lii demo" },
      "health": { "http": "http://127.0.0.1:\${PORT}/healthz", "interval": "200ms", "passes": 2 }
    }
  }
}
JSON
        minisign -S -s "$demo/keys/desired.key" -m "$demo/www/.desired.json" -t "demo serial $serial" >/dev/null
        mv "$demo/www/.desired.json.minisig" "$demo/www/desired.json.minisig"
        mv "$demo/www/.desired.json" "$demo/www/desired.json"
}

cat >"$demo/liid.conf" <<CONF
[source]
url = file://$demo/www/desired.json
[trust]
desired_keys = $demo/keys/desired.d
artifact_keys = $demo/keys/artifact.d
[paths]
state_dir = $demo/state
socket = $socket
[systemd]
bus = $bus
[api]
read_group =
CONF

liictl() { "$bin/liictl" -s "$socket" "$@"; }

say "Publishing hello v1 (signed) and starting liid"
publish 1
"$bin/liid" -c "$demo/liid.conf" 2>"$demo/liid.log" &
liid_pid=$!
for _ in $(seq 100); do
        [[ -S $socket ]] && break
        sleep 0.1
done
liictl wait --timeout 30s --serial "$serial" hello
liictl status
echo
echo "http://$address/ answers: $(curl -s "http://$address/")"

# What the package sets (sysctl.d): connections queued on the old
# generation's closing sockets move to the new one's instead of being reset.
migrate_was=$(cat /proc/sys/net/ipv4/tcp_migrate_req)
echo 1 >/proc/sys/net/ipv4/tcp_migrate_req

say "Publishing hello v2 while a client keeps asking http://$address/"
# A new connection for each request, for at most 60 s; stops when told.
(
        ok=0 failed=0 v1=0 v2=0 end=$((SECONDS + 60))
        trap 'echo "$ok $failed $v1 $v2" >"$demo/client.out"; exit 0' TERM
        while ((SECONDS < end)); do
                if body=$(curl -sf --max-time 5 "http://$address/version"); then
                        ok=$((ok + 1))
                        [[ $body == v1 ]] && v1=$((v1 + 1))
                        [[ $body == v2 ]] && v2=$((v2 + 1))
                else
                        failed=$((failed + 1))
                fi
        done
        echo "$ok $failed $v1 $v2" >"$demo/client.out"
) &
client_pid=$!
sleep 1
publish 2
liictl wait --timeout 30s --serial "$serial" hello
sleep 1
kill "$client_pid" && wait "$client_pid" || true
client_pid=
read -r ok failed v1 v2 <"$demo/client.out"
echo "liid started v2 beside v1 on the same address, checked it, then retired v1."
echo "The client's requests during the change: $ok answered (v1: $v1, v2: $v2), $failed failed."
liictl status
liictl status hello
echo
echo "http://$address/ answers: $(curl -s "http://$address/")"

say "Publishing hello v3, a build that crashes at start: it is refused, v2 keeps serving"
publish 3 ', "--crash"'
liictl wait --timeout 30s --serial "$serial" hello || true
liictl status hello
echo
echo "http://$address/ still answers: $(curl -s "http://$address/")"

say "Done. liid's log:"
sed 's/^/  /' "$demo/liid.log"

say "Next"
cat <<EOF
  make check                                        # every test, under a real systemd
  make deb && apt install ./build/deb/lii_*.deb     # liid as a service: README, "Install on Debian"
  man ./build/man/liictl.1.gz                       # also liid.8, liid.conf.5, lii-desired-state.5
EOF
