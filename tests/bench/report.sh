# shellcheck shell=bash
# BENCHMARKS.md from the run's results (B_RESULTS): the machine, the
# targets, one section per scenario, the profiles and the analysis.
# Sourced by tests/bench/run.

b_facts_start() {
	record fact.date "$(date -u +'%Y-%m-%d %H:%M UTC')"
	record fact.cores "$(nproc)"
	record fact.cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	record fact.kernel "$(uname -sr)"
	record fact.memory "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	record fact.fs "$(findmnt -n -o FSTYPE,SOURCE -T "$B_BUILD" | tr -s ' ')"
	record fact.os "$(. /etc/os-release && echo "$PRETTY_NAME")"
	record fact.systemd "$(systemctl --version | head -n1)"
	record fact.nginx "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
	record fact.curl "$(curl --version | head -n1 | cut -d' ' -f1-2)"
	record fact.openssl "$(openssl version | cut -d' ' -f1-2)"
	record fact.liid "$("$B_BUILD/liid" --version 2>&1 | head -n1)"
	local bt
	bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$B_BUILD/CMakeCache.txt")
	record fact.build_type "${bt:-RelWithDebInfo (the project default)}"
	record fact.commit "$(git -C "$B_SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	record fact.load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
	record fact.perf "${B_PERF:+yes}"
	record fact.mode "$B_MODE"
}

b_facts_end() {
	record fact.load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
	record fact.elapsed "$B_ELAPSED"
}

fact() {
	values "fact.$1" | head -n1
}

# A number as a table shows it: 3 significant digits or so.
num() {
	awk -v x="$1" 'BEGIN {
		if (x == "") { print "–"; exit }
		a = x < 0 ? -x : x
		if (a >= 100) printf "%.0f", x; else if (a >= 10) printf "%.1f", x; else printf "%.2f", x }'
}

# "median (min–max)" of KEY, or "median" alone for a single value.
cell() {
	local m lo hi n
	read -r m lo hi n <<<"$(stats "$1")"
	if [[ -z ${m:-} ]]; then
		echo "–"
	elif ((n == 1)); then
		num "$m"
	else
		echo "$(num "$m") ($(num "$lo")–$(num "$hi"))"
	fi
}

count() {
	stats "$1" | awk '{ print $4 + 0 }'
}

# Arithmetic on medians and numbers: calc 'EXPR' with a, b, c … bound.
calc() {
	local expr=$1
	shift
	awk -v a="${1:-0}" -v b="${2:-0}" -v c="${3:-0}" -v d="${4:-0}" -v e="${5:-0}" -v f="${6:-0}" \
		"BEGIN { x = $expr; print x }"
}

pos() { # max(0, x)
	awk -v x="$1" 'BEGIN { print x < 0 ? 0 : x }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "–"; else printf "%.2f×", a / b }'
}

verdict() { # verdict CONDITION(awk expr over a, b) A B
	awk -v a="$2" -v b="${3:-0}" "BEGIN { exit !($1) }" && echo "**met**" || echo "**missed**"
}

# ": LeaseKeepAlive 12.0, Put 6.00 a node and minute", from the idle
# window's counts by gRPC method (nothing when there were none).
fleet_idle_methods() {
	local k list=''
	for k in $(cut -f1 "$B_RESULTS" | sed -n 's/^fleet\.idle\.method\.//p' | sort -u); do
		list+="${list:+, }$k $(num "$(median "fleet.idle.method.$k")")"
	done
	[[ -z $list ]] || echo "; by request, a node and minute: $list"
}

# Section 7: the fleet on etcd (tests/bench/fleet.sh).
fleet_section() {
	cat <<EOF

## 7. A fleet on etcd

$(median fleet.nodes | cut -d. -f1) real liid nodes on this machine, each under a private systemd user manager of
its own (its own mount namespace and cgroup) with its own state folder, all watching one
3-member etcd cluster on loopback (the integration tests' fleet, [fleet.h](tests/harness/fleet.h),
driven by [fleetbench.c](tests/bench/fleetbench.c)). Each publish is a new signed document
with a new spec for the one service (\`hello\`, health check every 100 ms, 2 passes), at 100%
with no rollout block: every node replaces its instance at once. The clock starts when the
transaction that writes document and signature is sent to etcd; the harness is woken by each
node's event stream and reads its status. $(count fleet.replace.all_running) replacements after a first deployment.

| from the etcd transaction until | first deployment | replacement |
|---|---|---|
| etcd answered the transaction | $(cell fleet.first.txn) | $(cell fleet.replace.txn) |
| every node accepted the document (watch event, read, verify) | $(cell fleet.first.accepted) | $(cell fleet.replace.accepted) |
| **every node runs the new spec, healthy** | **$(cell fleet.first.all_running)** | **$(cell fleet.replace.all_running)** |

**etcd requests per node**: $(num "$(median fleet.publish.requests_per_node)") per publish besides the publisher's
transaction, and **$(num "$(median fleet.idle.per_node_minute)") per idle minute** ($(median fleet.idle.requests | cut -d. -f1) requests from
the whole fleet in $(num "$(median fleet.idle.seconds)") s with nothing published$(fleet_idle_methods)). Counted by etcd
itself (its members' \`grpc_server_started_total\`, which every request through the JSON gateway
goes through; a watch or a lease keepalive counts once each time one starts). A node's watches
are long requests that etcd answers as events happen; what a node sends while idle is its
lease's keepalive, every third of \`[etcd] lease_ttl\` (15 s by default: 12 a minute), and what
the fleet module writes on its own.
EOF
}

report() {
	local m
	# ---- the limit of scenario 1, from the medians of its components ----
	local dl hash unpack start healthz stop noop limit total script overhead
	dl=$(median limit.download)
	hash=$(pos "$(calc 'a - b' "$(median tool.openssl.file)" "$(median tool.openssl.empty)")")
	unpack=$(pos "$(calc 'a - b' "$(median tool.tar.file)" "$(median tool.tar.empty)")")
	noop=$(median tool.systemctl_noop)
	start=$(pos "$(calc 'a - b' "$(median tool.systemd_run)" "$noop")")
	healthz=$(median limit.healthz)
	stop=$(pos "$(calc 'a - b' "$(median tool.systemctl_stop)" "$noop")")
	limit=$(calc 'a + b + c + d + e + f' "$dl" "$hash" "$unpack" "$start" "$healthz" "$stop")
	total=$(median liid.total)
	script=$(median script.total)
	overhead=$(calc 'a - b' "$total" "$limit")
	local prep prep_tmpfs prep_limit
	prep=$(calc 'a + b + c + d' "$(median liid.noticed)" "$(median liid.planned)" \
		"$(median liid.fetched)" "$(median liid.unpacked)")
	prep_tmpfs=$(calc 'a + b + c + d' "$(median tmpfs.noticed)" "$(median tmpfs.planned)" \
		"$(median tmpfs.fetched)" "$(median tmpfs.unpacked)")
	prep_limit=$(calc 'a + b + c' "$dl" "$hash" "$unpack")
	local syncs state_write durable
	syncs=$(median disk.syncs_per_rollout)
	state_write=$(median disk.state_write)
	durable=$(calc 'a * b / 2' "${syncs:-0}" "${state_write:-0}")

	# ---- large ----
	local l_curl l_liid l_sha mib
	l_curl=$(median large.curl)
	l_liid=$(median large.liid.total)
	l_sha=$(median large.curl_sha256)
	mib=$(median large.mib)
	local floor
	floor=$(calc 'a + b + c' "$l_curl" "$(median large.step.untar)" "$(median large.step.sync)")

	# ---- scale ----
	local sizes largest small api_sizes api_large
	run_sizes

	cat <<EOF
# Benchmarks

Written by \`make bench\` ([tests/bench/run](tests/bench/run)) on $(fact date), commit
\`$(fact commit)\`, $(fact mode) run. Every figure comes from this one run, measured side by side
with its baseline; cells read **median (min–max)** over the repeats, in milliseconds unless
marked. This run took $(fact elapsed) s. Re-run with \`make bench\`, or \`make bench QUICK=1\` (each
scenario once and small, for CI; it writes \`build/bench/BENCHMARKS.quick.md\`).

## Machine

| | |
|---|---|
| cores | $(fact cores) × $(fact cpu) |
| kernel | $(fact kernel) ($(fact os)) |
| memory | $(fact memory) |
| file system of the state folder | $(fact fs) |
| systemd (private user manager) | $(fact systemd) |
| nginx / curl / OpenSSL | $(fact nginx) / $(fact curl) / $(fact openssl) |
| liid | $(fact liid), CMake build type $(fact build_type) |
| load average before / after | $(fact load_before) / $(fact load_after) |
| perf (idle counts, profiles) | $(fact perf || true) |
| starting a small program (\`true\`) | $(cell "api.$small.true") ms, $(num "$(median "api.$small.true.faults")") page faults, $(num "$(calc 'a * 1000 / b' "$(median "api.$small.true.cpu")" "$(median "api.$small.true.faults")")") µs of CPU per fault |
| one durable small-file replace (write, fsync, rename, fsync folder) | $(cell disk.state_write) ms |

This is a 2-core virtual machine shared with other work: process start-up and page faults
are several times dearer here than on bare metal (last two rows), which weighs on every
row that starts a process.

## Targets

| # | target | measured | |
|---|---|---|---|
| 1 | liid's overhead (total − physical limit) under 20 ms at the median | $(num "$total") − $(num "$limit") = **$(num "$overhead") ms** | $(verdict 'a < 20' "$overhead") |
| 2 | liid at least as fast as the hand-written script at the median | liid $(num "$total") ms, script $(num "$script") ms (script / liid = $(ratio "$script" "$total")) | $(verdict 'a <= b' "$total" "$script") |
| 3 | ${mib} MiB artifact within 1.2× of the plain download | liid $(num "$l_liid") ms, curl $(num "$l_curl") ms: **$(ratio "$l_liid" "$l_curl")** (download, unpack and sync by hand, the floor once unpacking waits for the signature check: $(ratio "$floor" "$l_curl")) | $(verdict 'a <= 1.2 * b' "$l_liid" "$l_curl") |
EOF
	if [[ -n $largest ]]; then
		local hwm anon t_small t_large c_small c_large exp_t exp_c
		hwm=$(median "scale.$largest.hwm")
		anon=$(median "scale.$largest.anon_peak")
		t_small=$(median "scale.$small.per_service")
		t_large=$(median "scale.$largest.per_service")
		c_small=$(calc 'a / b' "$(median "scale.$small.cpu")" "$small")
		c_large=$(calc 'a / b' "$(median "scale.$largest.cpu")" "$largest")
		cat <<EOF
| 4a | peak RSS under 16 MiB at $largest services | VmHWM **$(num "$(calc 'a / 1024' "$hwm")") MiB** (private part, RssAnon: $(num "$(calc 'a / 1024' "$anon")") MiB; the rest is shared libraries) | $(verdict 'a < 16 * 1024' "$hwm") |
| 4b | linear growth | per service: $(num "$t_small") ms of time and $(num "$c_small") ms of liid CPU at $small services, $(num "$t_large") ms and $(num "$c_large") ms at $largest ($(ratio "$c_large" "$c_small") the CPU per service) | $(verdict 'a <= 1.5 * b' "$c_large" "$c_small") |
EOF
		local idle_line= n
		for n in $(cut -f1 "$B_RESULTS" | sed -n 's/^idle\.\([0-9]*\)\.ctxsw$/\1/p' | sort -un); do
			idle_line+="$n services: $(median "idle.$n.ctxsw") context switches ($(median "idle.$n.ctxsw_main") on the loop's thread)"
			[[ -z $(values "idle.$n.epoll_waits") ]] || idle_line+=", $(median "idle.$n.epoll_waits") epoll waits"
			idle_line+=" in $(median "idle.$n.seconds") s; "
		done
		local wakeups
		wakeups=$(cut -f1 "$B_RESULTS" | { grep -E '^idle\.[0-9]+\.(ctxsw|epoll_waits)$' || true; } | sort -u |
			while read -r k; do median "$k"; done | awk '{ s += $1 } END { print s + 0 }')
		cat <<EOF
| 4c | no wake-ups while idle beyond the poll timer (30 min here) | ${idle_line%; } | $(verdict 'a == 0' "$wakeups") |
EOF
	fi
	if [[ -n $api_large ]]; then
		cat <<EOF
| 5a | \`liictl status\` at most 5 ms at the median at $api_large services | **$(num "$(median "api.$api_large.liictl")") ms** (liid's answer alone: $(num "$(calc 'a / 1000' "$(median "api.$api_large.table_p50_us")")") ms for the table view it asks for; the same \`liictl status\` from nginx serving the same bytes: $(num "$(median "api.$api_large.liictl_nginx")") ms) | $(verdict 'a <= 5' "$(median "api.$api_large.liictl")") |
| 5b | \`liictl --version\` within 2× of \`true\` | $(num "$(median "api.$api_large.liictl_version")") ms against $(num "$(median "api.$api_large.true")") ms: **$(ratio "$(median "api.$api_large.liictl_version")" "$(median "api.$api_large.true")")** | $(verdict 'a <= 2 * b' "$(median "api.$api_large.liictl_version")" "$(median "api.$api_large.true")") |
EOF
	fi
	if [[ -n $(values listen.migrate.failed) ]]; then
		cat <<EOF
| 6 | no request fails while liid replaces a service that lists its address, with \`tcp_migrate_req = 1\` (as the package sets it) | **$(total listen.migrate.failed) failed** of $(total listen.migrate.requests) requests over $(count listen.migrate.failed) × $(median listen.replacements) replacements under load (section 6) | $(verdict 'a == 0' "$(total listen.migrate.failed)") |
EOF
	fi
	cat <<EOF

The gaps are explained under [Where the time goes](#where-the-time-goes), with profiles.

## 1. Replacement latency, phase by phase

One replacement of the sample service (\`hello\`, a 12 KiB tar.gz with its signature, served by
nginx on loopback; liid's source is the same nginx, health check \`http\` every 10 ms with
\`passes: 1\`, \`sandbox: strict\`), $(count liid.total) times, each with a new artifact so that every
rollout downloads and unpacks. The clock starts when \`POST /v1/sync\` is sent (the publisher
telling liid the document changed) and stops when liid reports the old unit gone. The marks
come from liid's own log lines (\`source.accepted\`, \`rollout.started\`, \`instance.started\`,
\`rollout.succeeded\`, \`instance.stopped\`, time-stamped as they reach a pipe) and from the
store's folders (inotify: a private folder appears in \`store/tmp\` once the download is verified;
the finished tree is renamed into \`store/sha256\`). The second column repeats the replacement
$(count tmpfs.total) times with liid's state folder (store and state files) on a tmpfs, where \`fsync\` is free
and nothing is written back to the disk: the difference is what durability costs.

| phase | ms | state folder on a tmpfs, ms | what liid does |
|---|---|---|---|
| change noticed | $(cell liid.noticed) | $(cell tmpfs.noticed) | answer the sync, fetch document and signature (conditional GET), verify, persist the serial (\`state.json\`, fsync) |
| ↳ until nginx served document and signature | $(cell liid.noticed.served) | $(cell tmpfs.noticed.served) | (nginx's \`\$msec\`, 1 ms resolution) |
| ↳ then until accepted | $(cell liid.noticed.after) | $(cell tmpfs.noticed.after) | verify, persist the serial |
| rollout planned | $(cell liid.planned) | $(cell tmpfs.planned) | reconcile, record the new generation (the service's state file, fsync) |
| artifact fetched and verified | $(cell liid.fetched) | $(cell tmpfs.fetched) | store lookup (thread pool), fetch the signature, check its key, download while hashing (SHA-256 and BLAKE2b-512), verify |
| ↳ until the artifact's signature was served | $(cell liid.fetched.sig) | $(cell tmpfs.fetched.sig) | store lookup on the thread pool, the signature's GET |
| ↳ the artifact served | $(cell liid.fetched.artifact) | $(cell tmpfs.fetched.artifact) | check the signature's key, the artifact's GET |
| ↳ then until verified | $(cell liid.fetched.verified) | $(cell tmpfs.fetched.verified) | finish the hashes, verify, queue the unpacking |
| unpacked | $(cell liid.unpacked) | $(cell tmpfs.unpacked) | libarchive with lii's policy, make read-only, record the signature, syncfs (tree and record), rename, sync the store folder |
| new unit active | $(cell liid.active) | $(cell tmpfs.active) | fsync the tree and the store folder, \`StartTransientUnit\` with the sandbox, wait for the job |
| first passing probe | $(cell liid.probed) | $(cell tmpfs.probed) | probe \`/healthz\` (every 10 ms once it listens, sooner before), commit (the service's state file, fsync) |
| ↳ probing until a pass | $(cell liid.probed.probing) | $(cell tmpfs.probed.probing) | until the state write that commits begins (inotify on \`state.d\`) |
| ↳ commit | $(cell liid.probed.commit) | $(cell tmpfs.probed.commit) | the service's state file written and synced, \`rollout.succeeded\` |
| old unit gone | $(cell liid.retired) | $(cell tmpfs.retired) | \`StopUnit\` on the old generation, wait for the job |
| **total** | **$(cell liid.total)** | **$(cell tmpfs.total)** | |

**The physical limit**, built from the same run's components on the same machine, each
timed $(count limit.download) times. A tool's own start-up is taken out (the same tool on empty
input, or for systemd a \`systemctl show-environment\` call), so that the limit is the work
itself and not the cost of starting processes, which liid does not pay.

| component | tool, as run | tool start-up | the work (limit) |
|---|---|---|---|
| loopback download of document, signature, artifact signature, artifact (one curl, one connection; curl's own \`time_total\`) | – | – | $(num "$dl") |
| hashing: \`openssl dgst -sha256\` and \`-blake2b512\` | $(cell tool.openssl.file) | $(cell tool.openssl.empty) | $(num "$hash") |
| unpacking: \`tar -xzf\` | $(cell tool.tar.file) | $(cell tool.tar.empty) | $(num "$unpack") |
| \`systemd-run\` of the same command with liid's sandbox on the same manager, until active | $(cell tool.systemd_run) | $(cell tool.systemctl_noop) | $(num "$start") |
| the application's own time to answer \`/healthz\` once active (probed every 200 µs) | – | – | $(num "$healthz") |
| \`systemctl stop\` of that unit | $(cell tool.systemctl_stop) | $(cell tool.systemctl_noop) | $(num "$stop") |
| **limit** | | | **$(num "$limit")** |

Starting the unit, split by the manager's own timestamps of the unit (\`ExecMainStartTimestamp\`
when it forked the main process, \`ActiveEnterTimestamp\` when that process had exec'd), liid
beside \`systemd-run\` (whose first part includes starting the \`systemd-run\` process):

| | liid | liid, state on a tmpfs | \`systemd-run\` |
|---|---|---|---|
| until the manager forks the main process | $(cell liid.active.before) | $(cell tmpfs.active.before) | $(cell tool.systemd_run.before) |
| fork → exec: the child sets up the sandbox | $(cell liid.active.exec) | $(cell tmpfs.active.exec) | $(cell tool.systemd_run.exec) |
| until the caller knows | $(cell liid.active.after) | $(cell tmpfs.active.after) | $(cell tool.systemd_run.after) |

Where liid's time goes against the limit, part by part (sums of the phases' medians, so the
rows add up only roughly to the medians of the totals):

| part | liid | liid, state on a tmpfs | the limit's work | liid − limit |
|---|---|---|---|---|
| document to verified, unpacked tree (noticed … unpacked) | $(num "$prep") | $(num "$prep_tmpfs") | $(num "$prep_limit") (download, hashes, unpack) | $(num "$(calc 'a - b' "$prep" "$prep_limit")") |
| new unit active | $(num "$(median liid.active)") | $(num "$(median tmpfs.active)") | $(num "$start") (\`systemd-run\`) | $(num "$(calc 'a - b' "$(median liid.active)" "$start")") |
| first passing probe and commit | $(num "$(median liid.probed)") | $(num "$(median tmpfs.probed)") | $(num "$healthz") (the app's answer) | $(num "$(calc 'a - b' "$(median liid.probed)" "$healthz")") |
| old unit gone | $(num "$(median liid.retired)") | $(num "$(median tmpfs.retired)") | $(num "$stop") (\`systemctl stop\`) | $(num "$(calc 'a - b' "$(median liid.retired)" "$stop")") |

**liid's overhead: $(num "$total") − $(num "$limit") = $(num "$overhead") ms at the median** (total / limit
= $(ratio "$total" "$limit")). Of it, durability is a known part: liid made $(num "${syncs:-0}") \`fsync\`/\`syncfs\`
calls per rollout (counted with strace on an extra rollout), about $(num "$durable") ms at this
disk's $(num "$(calc 'a / 2' "${state_write:-0}")") ms per sync; nothing in the limit writes to the disk durably.

What the manager did for it: its CPU time per replacement by liid, beside one \`systemd-run\`
start plus one \`systemctl stop\` (the limit's) and the hand-written script's replacement; and
the D-Bus messages each side exchanged with it (sendmsg/recvmsg calls, counted with strace on
one more replacement).

| | manager CPU ms | bus messages |
|---|---|---|
| liid's replacement | $(cell liid.manager_cpu) | $(median bus.liid_msgs) |
| \`systemd-run\` + \`systemctl stop\` | $(cell tool.manager_cpu) | $(median bus.tools_msgs) |
| the hand-written script | $(cell script.manager_cpu) | |

## 2. The hand-written baseline

[handwritten-deploy.sh](tests/bench/handwritten-deploy.sh) does what a team would script: \`curl\`
the artifact and its signature, \`sha256sum --check\`, \`minisign -V\`, \`tar -xzf\`, \`systemd-run\`
(with the same sandbox options as liid, on the same manager), a \`curl\` loop on \`/healthz\`
every 10 ms, \`systemctl stop\` of the old unit. It runs in the same repeats as liid, in
alternating order, each with a new artifact. The script checks less than liid: no signed
document, no anti-rollback serial, no durable record, no unpacking policy.

| | ms | ratio to liid |
|---|---|---|
| liid (every check on) | $(cell liid.total) | 1.00× |
| hand-written script | $(cell script.total) | $(ratio "$script" "$total") |

Most of the script's time is starting about $(grep -cE '^\s*(curl|echo|minisign|mkdir|tar|systemd-run|systemctl|sha256sum)|for _ in' "$B_SRC/tests/bench/handwritten-deploy.sh") processes and a
health loop that spawns \`curl\` and \`sleep\` (see the process start-up cost under Machine).

## 3. Large artifact

A ${mib} MiB uncompressed tar (random data, the \`hello\` binary and a \`VERSION\` file; \`type:
"tar"\`) served by nginx on loopback, $(count large.liid.total) times, each a new artifact, alternating with
the curl runs. The page cache is written back (\`sync\`) before each, so that each run pays only
for its own bytes. liid's marks: \`rollout.started\` → verified download (a private folder appears
in \`store/tmp\`) → tree renamed into \`store/sha256\`.

| | ms | MiB/s | ratio to \`curl -o /dev/null\` |
|---|---|---|---|
| \`curl -o /dev/null\` | $(cell large.curl) | $(num "$(calc 'a * 1000 / b' "$mib" "$l_curl")") | 1.00× |
| \`curl \| sha256sum\` | $(cell large.curl_sha256) | $(num "$(calc 'a * 1000 / b' "$mib" "$l_sha")") | $(ratio "$l_sha" "$l_curl") |
| by hand, durable, step by step (sum) | $(cell large.by_hand) | $(num "$(calc 'a * 1000 / b' "$mib" "$(median large.by_hand)")") | $(ratio "$(median large.by_hand)" "$l_curl") |
| ↳ \`curl -o FILE\` | $(cell large.step.download) | $(num "$(calc 'a * 1000 / b' "$mib" "$(median large.step.download)")") | |
| ↳ \`openssl dgst -sha256\` | $(cell large.step.sha256) | $(num "$(calc 'a * 1000 / b' "$mib" "$(median large.step.sha256)")") | |
| ↳ \`openssl dgst -blake2b512\` (minisign's prehash) | $(cell large.step.blake2b) | $(num "$(calc 'a * 1000 / b' "$mib" "$(median large.step.blake2b)")") | |
| ↳ \`minisign -V\` (hashes the file again) | $(cell large.step.minisign) | | |
| ↳ \`tar -xf\` | $(cell large.step.untar) | $(num "$(calc 'a * 1000 / b' "$mib" "$(median large.step.untar)")") | |
| ↳ \`sync -f\` | $(cell large.step.sync) | | |
| **floor under the design's rules**: download (hashes overlapped with it), then unpack, then sync | $(num "$floor") | $(num "$(calc 'a * 1000 / b' "$mib" "$floor")") | $(ratio "$floor" "$l_curl") |
| liid: download, hashing both ways, signature check | $(cell large.liid.fetch) | $(num "$(calc 'a * 1000 / b' "$mib" "$(median large.liid.fetch)")") | $(ratio "$(median large.liid.fetch)" "$l_curl") |
| liid: unpack, read-only, record, syncfs, rename | $(cell large.liid.unpack) | | $(ratio "$(median large.liid.unpack)" "$l_curl") |
| **liid: all of it** | **$(cell large.liid.total)** | $(num "$(calc 'a * 1000 / b' "$mib" "$l_liid")") | **$(ratio "$l_liid" "$l_curl")** |
| liid's CPU time for it | $(cell large.liid.cpu) | | |

EOF
	if [[ -n $largest ]]; then
		cat <<EOF
## 4. Scale

N services, each with its own artifact (the sample service with its own \`VERSION\`), first
deployed and then all changed at once in one document, the change timed from \`POST
/v1/sync\` until the N-th old unit is gone. Real instances: every service runs the \`hello\`
server under the strict sandbox on the same private manager (not a stub), with
\`max_parallel = $(median scale.max_parallel)\` and an HTTP check every 10 ms. Each size starts a fresh
liid with an empty state folder, so its peak memory is its own. Every instance gets its
port from liid (\`"port": "auto"\`), up to $(median scale.max_parallel) rollouts picking ports at once.

| services | first deploy ms | changes | converge ms | per service ms | liid CPU ms | liid CPU per service ms | manager CPU ms | VmHWM KiB | RssAnon peak KiB |
|---|---|---|---|---|---|---|---|---|---|
EOF
		for n in $sizes; do
			echo "| $n | $(cell "scale.$n.deploy") | $(count "scale.$n.converge") | $(cell "scale.$n.converge") | $(cell "scale.$n.per_service") | $(cell "scale.$n.cpu") | $(num "$(calc 'a / b' "$(median "scale.$n.cpu")" "$n")") | $(cell "scale.$n.manager_cpu") | $(num "$(median "scale.$n.hwm")") | $(num "$(median "scale.$n.anon_peak")") |"
		done
		cat <<EOF

Growth from $small to $largest services ($(calc 'a / b' "$largest" "$small")× the services): converge time
$(ratio "$(median "scale.$largest.converge")" "$(median "scale.$small.converge")"), liid CPU $(ratio "$(median "scale.$largest.cpu")" "$(median "scale.$small.cpu")"), the manager's CPU $(ratio "$(median "scale.$largest.manager_cpu")" "$(median "scale.$small.manager_cpu")"). Linear
growth would be $(calc 'a / b' "$largest" "$small").00× for all three. "liid CPU" is the CPU time of all of
liid's threads over the change (the scheduler's counters, /proc/PID/task/*/schedstat); "manager
CPU" the private systemd manager's. "First deploy" runs from liid's start with an empty state
folder until the N-th instance passed its check.

**Idle.** After the last change, liid is left alone (poll interval 30 min, no requests) and its
wake-ups are counted: context switches of its threads (/proc/PID/task/*/status), then, in a
second window of the same length, with perf, its \`epoll_wait\`/\`epoll_pwait\` calls. Every
change is announced with \`POST /v1/sync\`, so the poll timer is set long enough that its
own, expected, firing stays out of the windows (with 60 s it fell into one at 500 services).

| services | seconds | context switches, all threads | of them, the loop's thread | epoll waits (next window) |
|---|---|---|---|---|
EOF
		for n in $(cut -f1 "$B_RESULTS" | sed -n 's/^idle\.\([0-9]*\)\.ctxsw$/\1/p' | sort -un); do
			echo "| $n | $(median "idle.$n.seconds") | $(median "idle.$n.ctxsw") | $(median "idle.$n.ctxsw_main") | $(values "idle.$n.epoll_waits" | head -n1 | grep . || echo "not counted (no perf)") |"
		done
	fi
	if [[ -n $api_large ]]; then
		cat <<EOF

## 5. API

\`liictl status\` from process start to exit (human table, stdout not a terminal; it asks for
\`GET /v1/status?view=table\`, one row of cells per service with what the table shows), and its
\`--json\` form (the whole document), beside \`curl\` fetching the whole \`GET /v1/status\` and the floors: \`true\` and
\`liictl --version\` (which asks nothing). Each $(count "api.$api_large.liictl") times with posix_spawn from
[liibench](tests/bench/liibench.c), which also reports the page faults. The time splits in
two: liid's answer alone (the median of one request at a time on one kept-alive connection,
no process started), for the table view and for the whole document, and liictl's own share
(\`liictl status\` asking nginx, which serves the same table view's bytes as a static file on a Unix
socket).

| services | status JSON bytes: whole / table view | \`true\` | \`liictl --version\` | \`liictl status\` | \`liictl --json status\` | \`curl\` | liid's answer alone: table view / whole | \`liictl status\` from nginx | page faults of \`liictl status\` |
|---|---|---|---|---|---|---|---|---|---|
EOF
		for n in $api_sizes; do
			echo "| $n | $(median "api.$n.status_bytes") / $(median "api.$n.table_bytes") | $(cell "api.$n.true") | $(cell "api.$n.liictl_version") | $(cell "api.$n.liictl") | $(cell "api.$n.liictl_json") | $(cell "api.$n.curl") | $(num "$(calc 'a / 1000' "$(median "api.$n.table_p50_us")")") / $(num "$(calc 'a / 1000' "$(median "api.$n.single_p50_us")")") | $(cell "api.$n.liictl_nginx") | $(num "$(median "api.$n.liictl.faults")") (\`--version\`: $(num "$(median "api.$n.liictl_version.faults")")) |"
		done
		cat <<EOF

**Requests per second** on \`GET /v1/status\`: liibench's load generator (4 threads, one
connection each, HTTP/1.1 with keep-alive, a Unix socket; wrk and ab do not speak Unix
sockets) for $(median "api.$api_large.load_seconds") s per row, against liid and against nginx (one worker)
serving the same bytes as a static file on a Unix socket. The generator shares the 2 cores.

| services | liid req/s | p50 / p99 µs | liid CPU per request µs | connections opened | nginx req/s (same bytes) | nginx p50 µs | liid / nginx |
|---|---|---|---|---|---|---|---|
EOF
		for n in $api_sizes; do
			echo "| $n | $(median "api.$n.rps") | $(median "api.$n.p50_us") / $(median "api.$n.p99_us") | $(median "api.$n.cpu_per_req_us") | $(median "api.$n.connections") for $(median "api.$n.requests") requests | $(median "api.$n.nginx_rps") | $(median "api.$n.nginx_p50_us") | $(ratio "$(median "api.$n.rps")" "$(median "api.$n.nginx_rps")") |"
		done
	fi
	[[ -z $(values listen.replacements) ]] || listen_section
	[[ -z $(values fleet.nodes) ]] || fleet_section
	cat <<EOF

## Where the time goes

EOF
	local p
	for p in large scale api liictl; do
		[[ -s $B_PROFILES/profile-$p.txt ]] || continue
		case $p in
		large) echo "**Profile: liid during one ${mib} MiB rollout** (perf, 199 Hz, DWARF call stacks; an extra rollout, not one of the timed ones)" ;;
		scale) echo "**Profile: liid during one change of $(median scale.profiled) services** (an extra change after the timed ones)" ;;
		api) echo "**Profile: liid answering GET /v1/status at $(median api.profiled) services under load**" ;;
		liictl) echo "**Profile: one \`liictl status\` at $(median api.profiled) services** (5 kHz)" ;;
		esac
		echo
		echo '```'
		cat "$B_PROFILES/profile-$p.txt"
		echo '```'
		echo
	done
	ls "$B_PROFILES"/profile-*.txt >/dev/null 2>&1 ||
		echo "(No profiles in this run: perf did not work, or it was a quick run.)"
	echo
	analysis
}

# "median (min–max)" of a count, as whole numbers.
icell() {
	local m lo hi n
	read -r m lo hi n <<<"$(stats "$1")"
	if [[ -z ${m:-} ]]; then
		echo "–"
	elif ((n == 1)); then
		printf '%.0f\n' "$m"
	else
		printf '%.0f (%.0f–%.0f)\n' "$m" "$lo" "$hi"
	fi
}

# The sum of KEY's values (0 when there is none).
total() {
	values "$1" | awk '{ s += $1 } END { print s + 0 }'
}

# Section 6: what clients saw through replacements of a service that
# lists its address, by liid with and without tcp_migrate_req and by
# stopping and starting it.
listen_section() {
	local n rounds
	n=$(median listen.replacements)
	rounds=$(count listen.stopstart.failed)
	cat <<EOF

## 6. A listed address through replacements, under load

The sample service lists \`"listen": ["127.0.0.1:P"]\`: liid gives each generation a socket
unit of its own (\`lii-hello@<generation>.socket\`, \`SO_REUSEPORT\`, the address then a private probe
port), the instance serves the sockets it inherits, and once the new generation has passed its
check liid stops the old generation's socket unit, then its service. On \`SIGTERM\` the sample
closes its listening sockets, answers the request in hand and exits. Meanwhile
[liibench](tests/bench/liibench.c) \`hammer\` asks \`GET /\` on the address from $(median listen.clients) threads as fast as
they can, a new connection for every request (HTTP/1.0, every step bounded by 5 s); a request
counts as answered only with a 200 and the whole body. Each round is $n replacements in a
row under that load (\`POST /v1/services/hello/replace\`, the next one sent once liid reports the
old instance gone), $rounds rounds per row, one value per round.

The last row is the same sample replaced by hand the plain way: a \`systemd-run\` unit with the
same sandbox that binds the address itself, replaced by \`systemctl stop\`, then \`systemd-run\` of
the next one, then waiting until it answers (asked every 200 µs).

| | answered per round | failed per round | of them refused / reset / timed out / other (medians) | requests/s | longest time without an answer, ms | latency p99 / max, ms | one replacement, ms |
|---|---|---|---|---|---|---|---|
EOF
	local key label
	for key in migrate nomigrate kernel stopstart steady; do
		[[ -n $(values "listen.$key.failed") ]] || continue
		case $key in
		migrate) label="liid, \`tcp_migrate_req = 1\`" ;;
		nomigrate) label="liid, \`tcp_migrate_req = 0\`" ;;
		kernel) label="liid (this kernel has no \`tcp_migrate_req\`)" ;;
		steady) label="no replacement: the load alone, as long as a round of liid's" ;;
		stopstart) label="stop, then start (by hand)" ;;
		esac
		echo "| $label | $(icell "listen.$key.ok") | **$(icell "listen.$key.failed")** | $(median "listen.$key.refused") / $(median "listen.$key.reset") / $(median "listen.$key.timeout") / $(median "listen.$key.other") | $(cell "listen.$key.rps") | $(cell "listen.$key.longest_gap_ms") | $(num "$(calc 'a / 1000' "$(median "listen.$key.p99_us")")") / $(num "$(calc 'a / 1000' "$(median "listen.$key.max_us")")") | $(cell "listen.$key.replace") |"
	done
	cat <<EOF

"One replacement" runs, for liid, from the request until liid reports the old instance gone
(the new one took over before that), and by hand from \`systemctl stop\` until the new instance
answers. "Longest time without an answer" is the longest stretch in which none of the clients got
one. The load shares the 2 cores with liid, the manager and the instances, hence fewer requests
per second while replacements run than alone.

- **\`tcp_migrate_req = 1\`** (the package sets it in \`sysctl.d\`): the connections waiting in the old
  generation's accept queue when it closes its listening socket move to the new generation's
  socket of the same \`SO_REUSEPORT\` group, and no request fails.
- **\`tcp_migrate_req = 0\`**: the kernel resets those connections instead, $(median listen.nomigrate.reset) per round of $n here:
  the requests that happened to be queued at the moment each old generation closed.
- **Stop, then start**: between the two nothing listens on the address, for $(num "$(median listen.stopstart.longest_gap_ms)") ms at the
  median of the longest stretches; the requests queued at the stop are reset (no other socket to
  move them to) and new ones are refused until the next instance binds. How many fail depends
  on how often the clients try: here each retries at once, but on loopback the clients' ports
  were used moments before and the server still holds them in \`TIME_WAIT\`, so a connection to
  the closed address takes a SYN retransmission (milliseconds) rather than an immediate refusal,
  and fewer attempts fail than the length of the gap would allow.
- **Latency through liid's replacements**: nothing fails, but some requests wait. The new
  generation's socket joins the address's \`SO_REUSEPORT\` group when its socket unit starts,
  before its instance runs, and the kernel hands it its share of new connections at once; they
  wait in its queue until the instance accepts them. So the longest stretch without an answer
  ($(num "$(median listen.migrate.longest_gap_ms)") ms at the median) and the highest latency ($(num "$(calc 'a / 1000' "$(median listen.migrate.max_us)")") ms) are about the time the manager
  takes to start the sandboxed instance (each such stretch checked while this was written
  ended as liid reported the new instance active); the load alone sees $(num "$(median listen.steady.longest_gap_ms)") ms and $(num "$(calc 'a / 1000' "$(median listen.steady.max_us)")") ms on this shared machine.

The kernel setting is the machine's: the scenario sets it for each row and puts the old value
back.
EOF
}

# The verdict on target 1 in words: OVERHEAD PROBE_EXCESS DURABILITY.
verdict_text() {
	awk -v o="$1" -v p="$2" -v d="$3" 'BEGIN {
		if (o < 20) { printf "So the 20 ms target is met, with %.1f ms to spare.\n", 20 - o; exit }
		printf "So the 20 ms target is missed by %.1f ms. ", o - 20
		if (o - d < 20)
			print "Without the syncs that durability asks for, liid would be under it."
		else
			print "Even without the syncs liid would stay above it."
	}'
}

# The sizes the run measured, set in the caller's variables: sizes (the
# scale sizes, ascending), largest, small (the first of at least 10
# services, else the largest), api_sizes and api_large.
run_sizes() {
	sizes=$(cut -f1 "$B_RESULTS" | sed -n 's/^scale\.\([0-9]*\)\.converge$/\1/p' | sort -un | tr '\n' ' ')
	largest=$(tr ' ' '\n' <<<"$sizes" | sed '/^$/d' | tail -n1)
	small=$(tr ' ' '\n' <<<"$sizes" | sed '/^$/d' | awk '$1 >= 10' | head -n1 || true)
	: "${small:=$largest}"
	api_sizes=$(cut -f1 "$B_RESULTS" | sed -n 's/^api\.\([0-9]*\)\.liictl$/\1/p' | sort -un | tr '\n' ' ')
	api_large=$(tr ' ' '\n' <<<"$api_sizes" | sed '/^$/d' | tail -n1)
}

# The scale section's title: how liid's CPU grew from SMALL to LARGE
# services, against the number of services.
growth_title() {
	local small=$1 large=$2
	awk -v c="$(calc 'a / b' "$(median "scale.$large.cpu")" "$(median "scale.$small.cpu")")" \
		-v n="$(calc 'a / b' "$large" "$small")" 'BEGIN {
		if (c <= n * 1.5) print "about linear in liid, as in systemd"
		else print "faster than linear in liid, linear in systemd"
	}'
}

# What the tables and profiles say, with this run's numbers. The causes
# named here were found by reading liid's code at the commit this file
# was last changed in; the numbers come from the run.
analysis() {
	local total dl limit overhead durability probing healthz rest
	total=$(median liid.total)
	dl=$(median limit.download)
	limit=$(calc 'a + b + c + d + e + f' "$dl" \
		"$(pos "$(calc 'a - b' "$(median tool.openssl.file)" "$(median tool.openssl.empty)")")" \
		"$(pos "$(calc 'a - b' "$(median tool.tar.file)" "$(median tool.tar.empty)")")" \
		"$(pos "$(calc 'a - b' "$(median tool.systemd_run)" "$(median tool.systemctl_noop)")")" \
		"$(median limit.healthz)" \
		"$(pos "$(calc 'a - b' "$(median tool.systemctl_stop)" "$(median tool.systemctl_noop)")")")
	overhead=$(calc 'a - b' "$total" "$limit")
	probing=$(median liid.probed.probing)
	healthz=$(median limit.healthz)
	local prep_tmpfs prep_limit
	prep_tmpfs=$(calc 'a + b + c + d' "$(median tmpfs.noticed)" "$(median tmpfs.planned)" \
		"$(median tmpfs.fetched)" "$(median tmpfs.unpacked)")
	prep_limit=$(calc 'a + b + c' "$dl" \
		"$(pos "$(calc 'a - b' "$(median tool.openssl.file)" "$(median tool.openssl.empty)")")" \
		"$(pos "$(calc 'a - b' "$(median tool.tar.file)" "$(median tool.tar.empty)")")")
	# Durability: what the state on a tmpfs saves before the unit starts
	# and at the commit (the unit's start is the noisiest phase and has
	# no sync of liid's in it after the store's).
	durability=$(calc '(a - b) + (c - d)' "$(calc 'a + b + c + d' "$(median liid.noticed)" \
		"$(median liid.planned)" "$(median liid.fetched)" "$(median liid.unpacked)")" "$prep_tmpfs" \
		"$(median liid.probed.commit)" "$(median tmpfs.probed.commit)")
	rest=$(calc 'a - b - (c - d)' "$overhead" "$durability" "$probing" "$healthz")
	local mib l_curl sha b2 untar syncs fetch unpack fetch_floor
	mib=$(median large.mib)
	l_curl=$(median large.curl)
	sha=$(median large.step.sha256)
	b2=$(median large.step.blake2b)
	untar=$(median large.step.untar)
	syncs=$(median large.step.sync)
	fetch=$(median large.liid.fetch)
	unpack=$(median large.liid.unpack)
	fetch_floor=$(calc 'a > b ? (a > c ? a : c) : (b > c ? b : c)' "$l_curl" "$sha" "$b2")
	local sizes small largest api_sizes api_large
	run_sizes

	cat <<EOF
### 1. Replacement: $(num "$overhead") ms over the limit

The limit counts the work only; liid pays two more things on the critical path, both visible
in the tables, and little else:

- **Durability, about $(num "$durability") ms** (disk minus tmpfs, before the unit starts and at the commit).
  liid makes $(num "$(median disk.syncs_per_rollout)") \`fsync\`/\`syncfs\` calls per rollout, one after the other: the node's
  \`state.json\` is replaced durably when the document is accepted (serial), the service's
  \`state.d/hello.json\` when the generation is recorded and at the commit, 2 syncs each
  (file, then folder); the store syncs the file system once (\`syncfs\`: the new tree and
  the record of its signature) and the store folder after the renames. The state syncs run on the event loop
  thread (\`engine_save_node()\`, \`engine_save_service()\`), so everything else waits for
  them. This is what the design asks for (every transition on disk before its side effect).
- **Probe cadence, about $(num "$(calc 'a - b' "$probing" "$healthz")") ms.** The first probe goes out the moment systemd
  reports the unit active, which for \`Type=exec\` is right after \`exec\`, before the
  application has bound its port. Until the instance first accepts a connection, liid
  retries a refused probe after 1 ms, then 2, 4 … up to the interval (10 ms here), so its
  "probing until a pass" is $(num "$probing") ms where the application itself answers $(num "$healthz") ms after
  \`systemd-run\` returns; \`ready: "notify"\` avoids even that for applications that notify.
- **The rest, about $(num "$rest") ms**, is mostly before the unit starts: with the state on a
  tmpfs, getting from the sync to a verified, unpacked tree still takes $(num "$prep_tmpfs") ms for
  $(num "$prep_limit") ms of work (the document and the artifact each fetched over a new connection,
  the store's lookup and its unpacking handed to the thread pool and back, the signature's
  key checked between two GETs). Starting the unit costs liid about what it costs
  \`systemd-run\`: the manager's child spends $(num "$(median liid.active.exec)") ms (liid) and $(num "$(median tool.systemd_run.exec)") ms (\`systemd-run\`)
  between fork and exec setting up the sandbox, which is most of the limit; and liid's stop
  is no slower than \`systemctl stop\`. (The tmpfs column is measured after the disk one and
  is noisier; its differences to the disk column are estimates.)

$(verdict_text "$overhead" "$(calc 'a - b' "$probing" "$healthz")" "$durability")

A lesson about the measuring itself: an earlier version of this harness waited for liid's
log lines with a \`tail | grep\` loop every 20 ms. On 2 cores that loop took CPU from the
manager's child while it set up the sandbox and added about 15 ms to liid's "new unit
active" phase (and to nothing in the limit, where the harness just waits for \`systemd-run\`).
The harness now waits through inotify (\`liibench waitlog\`) and samples memory from C.

### 2. The script is $(ratio "$(median script.total)" "$total") slower

Not because its steps are slow but because each is a process: \`curl\` twice,
\`sha256sum\`, \`minisign\`, \`tar\` (and \`gzip\`), \`systemd-run\`, \`curl\` and \`sleep\` per health
probe, \`systemctl\`, each paying process start-up ($(num "$(median tool.openssl.empty)") ms for an \`openssl\` that hashes nothing,
$(num "$(median tool.systemctl_noop)") ms for a \`systemctl\` that asks one thing) on a machine where a page fault costs
tens of µs. liid pays none of that and checks more.

### 3. Large artifact: $(ratio "$(median large.liid.total)" "$l_curl") of the plain download

- **Download phase, $(num "$fetch") ms against curl's $(num "$l_curl") ms.** curl's write callback on the loop
  thread only copies each chunk into a ring of 256 KiB buffers; one worker thread hashes
  SHA-256 and writes the temporary file, another hashes BLAKE2b-512 (minisign's prehash),
  side by side and while the transfer goes on (the transfer pauses when the ring is full).
  No second pass over the bytes, and the loop stays free for the API and other rollouts.
  On this CPU \`openssl dgst\` needs $(num "$sha") ms for SHA-256 and $(num "$b2") ms for BLAKE2b-512 over the
  same bytes, so the phase cannot be shorter than about $(num "$fetch_floor") ms (the slowest of
  download and the two hashes), plus writing the file.
- **Unpack phase, $(num "$unpack") ms**, is the second pass that a tar needs (the design
  unpacks only what is verified, so it cannot overlap the download), writing the tree, and
  the \`syncfs\` that puts both the tree and the still-open temporary download on the disk.
  By hand, \`tar -xf\` and \`sync -f\` take $(num "$untar") ms and $(num "$syncs") ms.
- **The 1.2× target cannot be met under the design's own rules.** Verifying before unpacking
  and a durable store mean download, then unpack, then sync: by hand that floor is already
  $(ratio "$(calc 'a + b + c' "$l_curl" "$untar" "$syncs")" "$l_curl") of the plain download on this disk, and the hashes alone are
  $(ratio "$fetch_floor" "$l_curl") of it. Getting to 1.2× would need a design change: unpack into a private folder
  while downloading and rename it into the store only once the signature verifies (nothing
  unverified is ever run), and let the data reach the disk in the background rather than
  syncing before the start.

### 4. Scale: $(growth_title "$small" "$largest")

The manager's CPU per service stays about flat ($(num "$(calc 'a / b' "$(median "scale.$largest.manager_cpu")" "$largest")") ms at $largest services). liid's is
$(num "$(calc 'a / b' "$(median "scale.$small.cpu")" "$small")") ms per service at $small and $(num "$(calc 'a / b' "$(median "scale.$largest.cpu")" "$largest")") ms at $largest. What used to make it grow faster than
the number of services, and how it is now:

- Every transition of a service used to rewrite one state file holding **every** service
  (json-c tree, print, free, 2 syncs): O(N) per save, two saves per service and change,
  O(N²) per change. Each service now has a file of its own (\`state.d/<service>.json\`) and a
  transition rewrites only that one: O(1) per save.
- The store was swept after every commit against a keep list searched with \`strcmp\`
  (O(N²) per sweep, O(N³) per change). It is now swept once the last rollout of a batch
  has ended, with a sorted keep list searched by bisection.
- Services were found by linear search (\`state_find()\`, for every service on every
  reconcile and every status); both lists are now kept sorted and searched by bisection.
- Every UnitNew and UnitRemoved signal of the manager, for any unit, looked its unit up in
  a linked list of liid's unit watches (about 2N of them during a change): O(N) per signal.
  The watches are now kept sorted by unit name and found by bisection.
- What is still O(N) per event: each finished rollout reconciles every service (to start
  the next queued one), about a microsecond per service; the walk no longer copies every
  name nor looks each service up again. The profile above shows where
  the rest of liid's time goes at $(median scale.profiled) services.
- Not liid's, but on its account: this machine's ext4 has no journal, and without one the
  kernel's inode allocator passes over every inode freed in about the last 30 s
  (\`vm.dirty_expire_centisecs\`; \`recently_deleted()\`, one buffer lookup each) before it
  hands one out. liid creates and frees a few files per service and change (a state file's
  replacement, the download, the unpacked tree, the store's record), so during a change of N
  services each new file costs in proportion to N: O(N²) per change, in the kernel, a few
  per cent of liid's CPU at 500 services in the profile (\`recently_deleted\`,
  \`find_get_block_common\`) and nothing at 10. Files that other work on the machine
  deleted in those 30 s count too, which makes this row vary from run to run.

**Memory.** VmHWM counts the pages of shared libraries liid maps: at one service it is
already $(num "$(calc 'a / 1024' "$(median scale.1.hwm)")") MiB, of which liid's own (RssAnon) is $(num "$(calc 'a / 1024' "$(median scale.1.anon_peak)")") MiB; the rest is libcrypto,
GnuTLS (pulled in by libmicrohttpd), libstdc++ and ICU (pulled in by libarchive's libxml2),
libsystemd, libcurl's dependency tree and so on, mapped by the kernel several pages at a time
around each page touched and shared with every other process using them. So the 16 MiB
target for VmHWM is out of reach with these libraries linked; liid's private memory at
$largest services peaks at $(num "$(calc 'a / 1024' "$(median "scale.$largest.anon_peak")")") MiB. Its peak follows the rollouts in flight ($(median scale.max_parallel) at most) more than
the number of services: a heap profile (heaptrack, at 100 and 500 services) found curl's
handles and receive buffers of the downloads and probes in flight, the json-c tree of a
status answer while it is built, about 1.4 MiB of relocated library pages, and freed heap
that glibc keeps. liid gives probes and signature downloads 1 KiB receive buffers, grows a
signature's buffer as it arrives, keeps one malloc arena (libuv's pool threads each kept
their last buffers in arenas of their own), and hands the heap back to the system when a
batch of rollouts ends; between batches it keeps at most 4 MiB of free heap (section 5).

**Idle:** met, at every size: nothing wakes liid between polls.

**A correctness bug found on the way, fixed:** with \`"port": "auto"\` liid took a free
port from the kernel (bind to port 0, close) and two rollouts running at once could be
handed the same one before either instance had bound it (at 300 services, \`s21\` and
\`s23\` both got port 38839 in a prototype of this benchmark; one instance failed to bind).
liid now skips every port it has given to an instance it knows of (current, pending,
previous), keeping each skipped port bound while it asks for another; the scale scenario
above runs with \`"port": "auto"\` and $(median scale.max_parallel) rollouts at once.

### 5. API

- **\`liictl status\`** links no libcurl and no OpenSSL (\`verify\`, the one command that needs
  it, runs in liictl-verify): $(ldd "$B_BUILD/liictl" 2>/dev/null | grep -c '=>') shared objects, and $(num "$(median "api.$api_large.liictl_version")") ms and $(num "$(median "api.$api_large.liictl_version.faults")") page faults before it asks
  anything (\`liictl --version\`), on a machine where a page fault costs about $(num "$(calc 'a * 1000 / b' "$(median "api.$api_large.true.cpu")" "$(median "api.$api_large.true.faults")")") µs of CPU. At
  $api_large services the table needs a few fields of each service, so liictl asks for the
  table view (\`GET /v1/status?view=table\`: $(num "$(calc 'a / 1024' "$(median "api.$api_large.table_bytes")")") KiB instead of the whole document's
  $(num "$(calc 'a / 1024' "$(median "api.$api_large.status_bytes")")") KiB, one array of cells per service instead of six nested objects, each
  of which costs json-c a hash table to build and liictl one to parse). liid answers it in
  $(num "$(calc 'a / 1000' "$(median "api.$api_large.table_p50_us")")") ms, and liictl's own work takes $(num "$(median "api.$api_large.liictl_nginx")") ms when it asks nginx for the same bytes: it
  parses the answer once into a json-c tree ($(num "$(median "api.$api_large.liictl_nginx.faults")") page faults in all, most of them for json-c's
  objects) and prints the table from it, borrowing the cells' text from the tree and writing
  through stdio without a format string. \`liictl --json status\`
  prints the whole document, as before.
- **liid's \`GET /v1/status\`** costs $(num "$(median "api.$api_large.cpu_per_req_us")") µs of CPU at $api_large services: it builds a json-c tree of every
  service, prints it, copies it once into the answer and frees it, for every request, about
  1.5 MiB of heap. glibc used to hand that memory back to the kernel after each request and
  fault it in again on the next, which on this VM tripled the CPU per request; liid now keeps
  up to 4 MiB of free heap (and hands back what a batch of rollouts leaves when it ends).
  Caching the document between changes would cut the rest to the copy.
- **Keep-alive:** the load generator's $(median "api.$api_large.connections") connections carried all its requests: liid answers
  once the request is read, and keeps HTTP/1.1 connections open (idle ones close after 10 s).

### How these were measured

Marks come from liid's log lines as they reach a pipe (\`liibench stamp\`), the store's and
state folder's inotify events (\`liibench watch\`), nginx's access log and the manager's own
unit timestamps, all on \`CLOCK_REALTIME\`. The harness waits without polling. The limit and
the baselines run in the same repeats as liid, in alternating order, with a new artifact each
time. Profiles: \`perf record -F 199 --call-graph dwarf\` on liid (the build has no frame
pointers), on an extra rollout or change that is not among the timed ones. This machine is a
shared 2-core VM: load averages are in the first table, and single runs vary by tens of
percent; the medians over repeats are what to compare.
EOF
}
