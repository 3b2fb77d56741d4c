#!/usr/bin/env bash
# `make demo-fleet`: a fleet of three lii nodes on one machine, watching one
# 3-member etcd cluster. Each node is a real liid under a private systemd
# manager of its own (its own mount namespace and cgroup), with its own state
# folder, socket and node name. Publishes hello v1 (signed with minisign) into
# etcd, then v2 as a canary on the one node whose bucket a computed
# percentage picks, then v2 everywhere; shows each node's `liictl status` and
# the fleet's `liictl fleet` table. Checks what each node's instance answers.
# Cleans up after itself.
#
#   tests/demo-fleet.sh [BUILD_DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
bin=$build
if [[ $(id -u) != 0 ]]; then
        echo "make demo-fleet: run as root (it starts systemd managers and units)" >&2
        exit 1
fi
for t in etcd curl jq minisign sha256sum base64 unshare setsid; do
        command -v "$t" >/dev/null || { echo "make demo-fleet: $t is missing (make deps)" >&2; exit 1; }
done
for f in "$bin/liid" "$bin/liictl" "$bin/bench/liibench" "$build/sample/hello-1.tar.gz"; do
        [[ -e $f ]] || { echo "make demo-fleet: $f is missing: build first" >&2; exit 1; }
done

# Instances run as dynamic users with a private /tmp: their artifacts must
# live outside /tmp and /var/tmp, wherever the clone is.
case $build/ in
/tmp/* | /var/tmp/*) demo=/var/lib/lii-demo-fleet ;;
*) demo=$build/demo-fleet ;;
esac
NODES=(n1 n2 n3)
PREFIX=lii/demo
SERVICE=hello

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() {
        printf 'demo-fleet: %s\n' "$*" >&2
        exit 1
}

# ---- cleanup ----

declare -A liid_pid manager_pid
etcd_pids=()
finished=
cleanup() {
        local status=$? n p d
        set +e
        for n in "${!liid_pid[@]}"; do
                kill "${liid_pid[$n]}" 2>/dev/null && wait "${liid_pid[$n]}" 2>/dev/null
        done
        # A manager stops every unit it runs as it exits.
        for n in "${!manager_pid[@]}"; do
                kill "${manager_pid[$n]}" 2>/dev/null && wait "${manager_pid[$n]}" 2>/dev/null
        done
        for n in "${NODES[@]}"; do
                for d in $(cgroup_dirs "$n"); do
                        [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
                done
                rm -f "$(socket_of "$n")"
        done
        for p in "${etcd_pids[@]}"; do
                kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
        done
        if [[ -z $finished ]]; then
                echo "demo-fleet: failed (status $status); logs kept in $demo" >&2
        else
                rm -rf "$demo"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$demo"
mkdir -p -m 0755 "$demo"/{www,keys/desired.d,keys/artifact.d}
chmod 0700 "$demo/keys"

port() { "$bin/bench/liibench" port; }

# ---- etcd: three members on loopback ----

etcd_ports=()
start_etcd() {
        local i cluster='' peers=() client
        for i in 0 1 2; do
                etcd_ports[i]=$(port)
                peers[i]=$(port)
                cluster+="${cluster:+,}m$i=http://127.0.0.1:${peers[i]}"
        done
        for i in 0 1 2; do
                client=http://127.0.0.1:${etcd_ports[i]}
                etcd --name "m$i" --data-dir "$demo/etcd/m$i" \
                        --listen-client-urls "$client" --advertise-client-urls "$client" \
                        --listen-peer-urls "http://127.0.0.1:${peers[i]}" \
                        --initial-advertise-peer-urls "http://127.0.0.1:${peers[i]}" \
                        --initial-cluster "$cluster" --initial-cluster-token "lii-demo-$$" \
                        --initial-cluster-state new >"$demo/etcd-m$i.log" 2>&1 &
                etcd_pids+=($!)
        done
        for i in 0 1 2; do
                for _ in $(seq 200); do
                        curl -sf "http://127.0.0.1:${etcd_ports[i]}/health" | grep -q '"true"' && continue 2
                        sleep 0.1
                done
                die "etcd member m$i did not become healthy; see $demo/etcd-m$i.log"
        done
}

# etcd://… with the members in an order of the node's own, so that the
# nodes' watches spread over the cluster.
etcd_url() { # NODE_INDEX
        local k list=
        for k in 0 1 2; do
                list+="${list:+,}127.0.0.1:${etcd_ports[($1 + k) % 3]}"
        done
        echo "etcd://$list/$PREFIX"
}

b64() { base64 -w0 "$@"; }

# Puts the document and its signature in one transaction, as a publisher
# does (liictl publish --etcd will do this).
etcd_publish() { # DOC SIG
        local body
        body=$(printf '{"success":[{"request_put":{"key":"%s","value":"%s"}},{"request_put":{"key":"%s","value":"%s"}}]}' \
                "$(printf %s "$PREFIX/desired/doc" | b64)" "$(b64 "$1")" \
                "$(printf %s "$PREFIX/desired/sig" | b64)" "$(b64 "$2")")
        local p
        for p in "${etcd_ports[@]}"; do
                curl -sf -X POST "http://127.0.0.1:$p/v3/kv/txn" -d "$body" >/dev/null && return 0
        done
        die "no etcd member took the document"
}

# ---- nodes: a private systemd manager and a liid each ----

socket_of() { echo "/run/lii-demo-fleet.$1.sock"; }

# A manager takes the cgroup it starts in as its root: each gets its own,
# or two managers' unit cgroups (lii.slice/lii-hello@1.service) would be
# the same folder.
cgroup_dirs() { # NODE
        local name="lii-demo-fleet-$$-$1" h
        if [[ -e /sys/fs/cgroup/cgroup.procs ]]; then
                echo "/sys/fs/cgroup/$name"
        else
                for h in /sys/fs/cgroup/*/; do
                        echo "${h%/}/$name"
                done
        fi
}

start_manager() { # NODE
        local n=$1 dir=$demo/$1 cg
        mkdir -p -m 0755 "$dir"
        mkdir -p -m 0700 "$dir/runtime"
        cg=$(cgroup_dirs "$n" | tr '\n' ' ')
        setsid bash -c '
                for d in '"$cg"'; do
                        mkdir -p "$d" 2>/dev/null && echo $$ >"$d/cgroup.procs" 2>/dev/null
                done
                exec "'"$here"'/private-manager.sh" "'"$dir"'/runtime" "'"$dir"'/config" \
                        --log-target=console --log-level=warning
        ' >"$dir/manager.log" 2>&1 &
        manager_pid[$n]=$!
}

wait_manager() { # NODE
        local n=$1
        for _ in $(seq 200); do
                [[ -S $demo/$n/runtime/systemd/private ]] && return 0
                kill -0 "${manager_pid[$n]}" 2>/dev/null || die "$n's manager exited; see $demo/$n/manager.log"
                sleep 0.1
        done
        die "$n's manager did not come up"
}

start_liid() { # NODE INDEX
        local n=$1 dir=$demo/$1 sock
        sock=$(socket_of "$n")
        rm -f "$sock"
        cat >"$dir/liid.conf" <<CONF
[source]
url = $(etcd_url "$2")
poll_interval = 1h
[trust]
desired_keys = $demo/keys/desired.d
artifact_keys = $demo/keys/artifact.d
[node]
name = $n
[paths]
state_dir = $dir/state
socket = $sock
[systemd]
bus = unix:path=$dir/runtime/systemd/private
[rollout]
keep_revisions = 1
[api]
read_group =
CONF
        env -u NOTIFY_SOCKET "$bin/liid" -c "$dir/liid.conf" 2>"$dir/liid.log" &
        liid_pid[$n]=$!
        for _ in $(seq 200); do
                [[ -S $sock ]] && node_liictl "$n" status >/dev/null 2>&1 && return 0
                kill -0 "${liid_pid[$n]}" 2>/dev/null || die "liid on $n exited; see $dir/liid.log"
                sleep 0.05
        done
        die "liid on $n did not answer"
}

node_liictl() { # NODE ARGS…
        local n=$1
        shift
        "$bin/liictl" -s "$(socket_of "$n")" "$@"
}

# Every node's own view, one after another.
show_nodes() {
        local n
        for n in "${NODES[@]}"; do
                printf '\n\033[1m%s\033[0m\n' "$n"
                node_liictl "$n" status | sed 's/^/  /'
        done
}

# The fleet as etcd holds it: every node's status, read through one liid.
# A node writes its status there a while after it changed, so this waits
# (20 s at most) until every node's row says hello runs, healthy, on the
# generation the node itself reports.
show_fleet() {
        local want='' n view
        for n in "${NODES[@]}"; do
                want+="$n $(node_liictl "$n" --json status "$SERVICE" | jq -r '.current.generation') "
        done
        for _ in $(seq 100); do
                view=$(node_liictl "${NODES[0]}" --json fleet | jq -r --arg s "$SERVICE" \
                        '[.nodes | to_entries[] | select(.value.services[$s].state == "running"
                          and .value.services[$s].healthy) | "\(.key) \(.value.services[$s].generation) "]
                         | sort | join("")')
                [[ $view == "$want" ]] && break
                sleep 0.2
        done
        [[ $view == "$want" ]] || echo "  (etcd's view has not caught up with every node yet)"
        echo
        node_liictl "${NODES[0]}" fleet | sed 's/^/  /'
}

# Waits until every node settled on the newest serial (a node held back by
# a canary counts as settled).
wait_fleet() { # TIMEOUT
        local n
        for n in "${NODES[@]}"; do
                node_liictl "$n" wait --timeout "$1" --serial "$serial" "$SERVICE" || return 1
        done
}

what_runs() { # NODE: what the node's instance answers on /version
        local port
        port=$(node_liictl "$1" --json status "$SERVICE" | jq -r '.current.port')
        curl -s "http://127.0.0.1:$port/version"
}

# ---- documents ----

serial=0
# publish VERSION [ROLLOUT_JSON]: hello-VERSION.tar.gz as the desired state,
# signed, written into etcd.
publish() {
        local v=$1 rollout=${2:-} art="hello-$1.tar.gz"
        cp "$build/sample/$art" "$demo/www/$art"
        minisign -S -s "$demo/keys/artifact.key" -m "$demo/www/$art" -t "hello v$v" >/dev/null
        serial=$((serial + 1))
        cat >"$demo/www/desired.json" <<JSON
{
  "format": "lii.desired/1",
  "serial": $serial,
  "services": {
    "$SERVICE": {
      "artifact": { "url": "file://$demo/www/$art",
                    "sha256": "$(sha256sum "$demo/www/$art" | cut -d' ' -f1)",
                    "size": $(stat -c %s "$demo/www/$art") },
      "exec": ["bin/hello", "--version-name", "v$v"],
      "env": { "GREETING": "hello from the lii fleet demo" },
      "health": { "http": "http://127.0.0.1:\${PORT}/healthz", "interval": "200ms", "passes": 2 }${rollout:+,
      \"rollout\": $rollout}
    }
  }
}
JSON
        minisign -S -s "$demo/keys/desired.key" -m "$demo/www/desired.json" \
                -t "fleet demo serial $serial" >/dev/null
        etcd_publish "$demo/www/desired.json" "$demo/www/desired.json.minisig"
}

# The canary bucket of a node (design.md, "Fleet mode on etcd"): the first 8
# bytes of SHA-256(node NUL service NUL id) as a big-endian integer, mod
# 10000. Bash's integers are signed, so the 64-bit value is taken in two
# 32-bit halves: (hi × 2^32 + lo) mod 10000, with 2^32 mod 10000 = 7296.
bucket() { # NODE SERVICE ID
        local hex hi lo
        hex=$(printf '%s\0%s\0%s' "$1" "$2" "$3" | sha256sum | cut -c1-16)
        hi=$((16#${hex:0:8}))
        lo=$((16#${hex:8:8}))
        echo $((((hi % 10000) * 7296 + lo) % 10000))
}

# The smallest percentage that picks exactly one node (the one with the
# lowest bucket; a node takes the new spec when bucket < percent × 100), as
# "PERCENT NODE": a whole percent when one tells the lowest bucket from the
# next, else one with two decimals (percent × 100 = lowest + 1).
canary_percent() { # ID
        local n b lowest='' second='' pick=''
        for n in "${NODES[@]}"; do
                b=$(bucket "$n" "$SERVICE" "$1")
                if [[ -z $lowest ]] || ((b < lowest)); then
                        second=$lowest lowest=$b pick=$n
                elif [[ -z $second ]] || ((b < second)); then
                        second=$b
                fi
        done
        ((lowest < second)) || die "two nodes share bucket $lowest of rollout $1"
        local whole=$((lowest / 100 + 1))
        if ((whole * 100 <= second)); then
                echo "$whole $pick"
        else
                printf '%d.%02d %s\n' $(((lowest + 1) / 100)) $(((lowest + 1) % 100)) "$pick"
        fi
}

# ---- the demo ----

say "Starting a 3-member etcd cluster on loopback"
start_etcd
echo "  members on ports ${etcd_ports[*]}"

say "Generating signing keys with minisign"
minisign -G -W -f -p "$demo/keys/desired.d/demo.pub" -s "$demo/keys/desired.key" >/dev/null
minisign -G -W -f -p "$demo/keys/artifact.d/demo.pub" -s "$demo/keys/artifact.key" >/dev/null

say "Starting ${#NODES[@]} nodes (${NODES[*]}): a private systemd manager and a liid each"
for n in "${NODES[@]}"; do
        start_manager "$n"
done
for i in "${!NODES[@]}"; do
        wait_manager "${NODES[i]}"
        start_liid "${NODES[i]}" "$i"
done

say "Publishing hello v1 (signed) into etcd: every node's watch sees it"
publish 1
wait_fleet 60s
show_nodes
say "The same fleet as etcd holds it (liictl fleet, through n1)"
show_fleet

read -r percent canary <<<"$(canary_percent hello-v2)"
say "Publishing hello v2 to $percent% of the fleet (rollout hello-v2): only $canary's bucket is below $percent × 100"
for n in "${NODES[@]}"; do
        echo "  bucket of $n: $(bucket "$n" "$SERVICE" hello-v2)"
done
publish 2 "{ \"id\": \"hello-v2\", \"percent\": $percent }"
wait_fleet 60s || die "the canary did not settle; see $demo/*/liid.log"
show_fleet
for n in "${NODES[@]}"; do
        answer=$(what_runs "$n")
        echo "  $n answers: $answer"
        want=v1
        [[ $n == "$canary" ]] && want=v2
        [[ $answer == "$want" ]] || die "$n should run $want during the canary, not ${answer:-nothing}"
done

say "Raising hello-v2 to 100%: the other nodes follow"
publish 2 '{ "id": "hello-v2", "percent": 100 }'
wait_fleet 60s || die "v2 did not reach every node; see $demo/*/liid.log"
show_fleet
for n in "${NODES[@]}"; do
        answer=$(what_runs "$n")
        echo "  $n answers: $answer"
        [[ $answer == v2 ]] || die "$n should run v2, not ${answer:-nothing}"
done

finished=1
say "Done: every node runs v2. Stopping the nodes (their managers stop every unit) and etcd."
