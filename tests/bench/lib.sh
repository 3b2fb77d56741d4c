# shellcheck shell=bash
# What the benchmark scenarios share: the private systemd manager, nginx,
# signing keys, liid, publishing signed documents and artifacts, reading
# liid's time-stamped log, and the statistics. Sourced by tests/bench/run.
#
# Every time here is CLOCK_REALTIME in seconds with six decimals
# ($EPOCHREALTIME, liibench's stamps, nginx's $msec), so that marks taken by
# the shell, by liid's log and by the file system line up.

# ---- results ----

# One measurement: `record KEY VALUE`; repeated runs append more values.
record() {
	printf '%s\t%s\n' "$1" "$2" >>"$B_RESULTS"
}

# Every value of KEY, one a line.
values() {
	awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$B_RESULTS"
}

# "median min max n" of KEY's values (nothing when there is none).
stats() {
	values "$1" | sort -g | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) exit
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%s %s %s %d\n", m, v[1], v[NR], NR
		}'
}

median() {
	stats "$1" | awk '{ print $1 }'
}

# repeat KEY RUNS CMD...: runs CMD RUNS times through `liibench repeat`
# and records KEY (wall ms), KEY.cpu (ms) and KEY.faults per run.
b_repeat() {
	local key=$1 runs=$2 wall cpu faults
	shift 2
	while read -r wall cpu faults; do
		record "$key" "$(awk -v t="$wall" 'BEGIN { printf "%.3f", t / 1000 }')"
		record "$key.cpu" "$(awk -v t="$cpu" 'BEGIN { printf "%.3f", t / 1000 }')"
		record "$key.faults" "$faults"
	done < <("$B_TOOL" repeat "$runs" "$@")
}

# Difference of two $EPOCHREALTIME-style stamps in milliseconds.
ms_between() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) * 1000 }'
}

say() {
	printf '%s bench: %s\n' "$(date +%T)" "$*" >&2
}

die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

# ---- the private systemd manager ----

# A manager takes the cgroup it starts in as its root; one of its own keeps
# its units apart from those of test runs on the same machine.
b_cgroup_dirs() {
	if [[ -e /sys/fs/cgroup/cgroup.procs ]]; then
		echo "/sys/fs/cgroup/$B_CGROUP"
	else
		for h in /sys/fs/cgroup/*/; do
			echo "${h%/}/$B_CGROUP"
		done
	fi
}

b_manager_start() {
	B_RUNTIME=$B_DIR/runtime
	mkdir -p -m 0700 "$B_RUNTIME"
	B_BUS="unix:path=$B_RUNTIME/systemd/private"
	B_CGROUP="lii-bench-$$"
	local cg
	cg=$(b_cgroup_dirs | tr '\n' ' ')
	setsid bash -c '
		for d in '"$cg"'; do
			mkdir -p "$d" 2>/dev/null && echo $$ >"$d/cgroup.procs" 2>/dev/null
		done
		exec "'"$B_SRC"'/tests/private-manager.sh" "'"$B_RUNTIME"'" "'"$B_DIR"'/config" \
			--log-target=console --log-level=${B_MANAGER_LOG_LEVEL:-warning}
	' >"$B_DIR/manager.log" 2>&1 &
	B_MANAGER_PID=$!
	local i
	for i in $(seq 150); do
		[[ -S $B_RUNTIME/systemd/private ]] && break
		kill -0 "$B_MANAGER_PID" 2>/dev/null || die "the private manager exited; see $B_DIR/manager.log"
		sleep 0.1
	done
	[[ -S $B_RUNTIME/systemd/private ]] || die "the private manager did not come up"
	b_systemctl is-system-running --wait >/dev/null 2>&1 || true
}

b_systemctl() {
	XDG_RUNTIME_DIR=$B_RUNTIME systemctl --user --no-pager "$@"
}

b_systemd_run() {
	XDG_RUNTIME_DIR=$B_RUNTIME systemd-run --user --quiet "$@"
}

# The file system liid gives an instance (daemon/instance.c): the tree DIR at
# /run/lii/artifact, on an empty read-only /run/lii, also when DIR is out of a
# dynamic user's reach (a checkout under /root). Sets B_VIEW to the options
# and B_EXE to the program: systemd-run looks for a program on this side of
# the mount, hence env(1) in front of it.
b_view() {
	B_VIEW=(-p TemporaryFileSystem=/run/lii:ro -p "BindReadOnlyPaths=$1:/run/lii/artifact"
		-p WorkingDirectory=/run/lii/artifact)
	B_EXE=(/usr/bin/env /run/lii/artifact/bin/hello)
}

# The properties liid gives an instance with "sandbox": "strict" under a
# user manager (daemon/systemd.c, append_sandbox), so that a unit started
# by hand is the same unit (with a StateDirectory= of its own, as liid's
# instances have).
B_SANDBOX=(-p DynamicUser=yes -p NoNewPrivileges=yes -p PrivateTmp=yes -p PrivateDevices=yes
	-p ProtectKernelModules=yes -p ProtectControlGroups=yes -p LockPersonality=yes
	-p RestrictRealtime=yes -p RestrictSUIDSGID=yes -p ProtectClock=yes -p ProtectHostname=yes
	-p ProtectSystem=strict -p RestrictNamespaces=yes -p CapabilityBoundingSet=
	-p UMask=0077 -p SystemCallArchitectures=native
	-p "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" -p CollectMode=inactive-or-failed)

# ---- nginx ----

# Plain HTTP on loopback for documents and artifacts, and a Unix socket
# that serves a static file for the API comparison. One worker, like
# liid's one loop.
b_nginx_start() {
	local dir=$B_DIR/nginx
	mkdir -p "$dir" "$B_WWW" "$B_DIR/apiroot"
	B_NGINX_PORT=$("$B_TOOL" port)
	B_NGINX_SOCK=/run/lii-bench.$$.nginx.sock
	# Workers as root: the build may lie under a folder only root can
	# search (a clone in /root). Loopback only.
	cat >"$dir/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
  log_format bench '\$msec \$request_time \$status \$body_bytes_sent \$request_uri';
  access_log $dir/access.log bench;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$B_NGINX_PORT; root $B_WWW; }
  server { listen unix:$B_NGINX_SOCK; root $B_DIR/apiroot; access_log off;
           default_type application/json; }
}
EOF
	nginx -c "$dir/nginx.conf" -p "$dir" -e stderr -g 'daemon off;' 2>"$dir/stderr.log" &
	B_NGINX_PID=$!
	local i
	for i in $(seq 100); do
		[[ -e $dir/nginx.pid ]] && break
		kill -0 "$B_NGINX_PID" 2>/dev/null || die "nginx exited; see $dir/stderr.log"
		sleep 0.05
	done
	B_HTTP="http://127.0.0.1:$B_NGINX_PORT"
}

# ---- keys, artifacts, documents ----

b_keys() {
	mkdir -p -m 0700 "$B_DIR/keys"
	mkdir -p "$B_DIR/keys/desired.d" "$B_DIR/keys/artifact.d"
	minisign -G -W -f -p "$B_DIR/keys/desired.d/bench.pub" -s "$B_DIR/keys/desired.key" >/dev/null
	minisign -G -W -f -p "$B_DIR/keys/artifact.d/bench.pub" -s "$B_DIR/keys/artifact.key" >/dev/null
	B_ARTIFACT_PUB=$B_DIR/keys/artifact.d/bench.pub
}

b_sign_artifact() {
	minisign -S -s "$B_DIR/keys/artifact.key" -m "$1" -t "lii bench" >/dev/null
}

# make_artifact NAME TAG: $B_WWW/NAME.tar.gz with bin/hello and a VERSION
# file saying TAG, so that every artifact has its own hash, as releases do.
b_make_artifact() {
	local name=$1 tag=$2 tree=$B_DIR/pack/$1
	mkdir -p "$tree/bin"
	cp "$B_BUILD/sample/hello" "$tree/bin/hello"
	echo "$tag" >"$tree/VERSION"
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$tree" \
		-czf "$B_WWW/$name.tar.gz" bin VERSION
	rm -rf "$tree"
	b_sign_artifact "$B_WWW/$name.tar.gz"
}

# The JSON of one service entry: service NAME ARTIFACT_FILE [HEALTH_JSON]
b_service_json() {
	local name=$1 file=$2
	local health=${3:-'{"http":"http://127.0.0.1:${PORT}/healthz","interval":"10ms","timeout":"1s","passes":1,"deadline":"20s"}'}
	local sha size
	sha=$(sha256sum "$B_WWW/$file" | cut -d' ' -f1)
	size=$(stat -c %s "$B_WWW/$file")
	printf '"%s":{"artifact":{"url":"%s/%s","sha256":"%s","size":%s},' \
		"$name" "$B_HTTP" "$file" "$sha" "$size"
	printf '"exec":["bin/hello","--version-name","%s"],"health":%s,"stop_timeout":"5s"}' \
		"$file" "$health"
}

# publish SERVICES_JSON: the next serial of desired.json, signed, moved
# into place with its signature. Each document gets an mtime of its own:
# nginx's ETag is mtime and size, and two documents of one size published
# within a second would look the same to a conditional GET.
B_SERIAL=0
b_publish() {
	B_SERIAL=$((B_SERIAL + 1))
	local tmp=$B_WWW/.desired.json.new
	printf '{"format":"lii.desired/1","serial":%d,"services":{%s}}\n' "$B_SERIAL" "$1" >"$tmp"
	minisign -S -s "$B_DIR/keys/desired.key" -m "$tmp" -t "bench serial $B_SERIAL" >/dev/null
	touch -d "@$((1700000000 + B_SERIAL))" "$tmp"
	mv "$tmp.minisig" "$B_WWW/desired.json.minisig"
	mv "$tmp" "$B_WWW/desired.json"
}

# ---- liid ----

# Prints when the store began to unpack the verified download of artifact
# SHA (a private folder appears in store/tmp) and when the tree was
# complete, read-only and synced (renamed into store/sha256), from the
# lines after line FROM of liibench watch's log WATCHLOG.
b_store_marks() { # WATCHLOG FROM SHA
	local fetched unpacked
	fetched=$(tail -n +"$(($2 + 1))" "$1" | awk -v s="/tmp/$3." \
		'$2 == "create" && index($3, s) { print $1; exit }')
	unpacked=$(tail -n +"$(($2 + 1))" "$1" | awk -v s="/sha256/$3" \
		'$2 == "moved_to" && substr($3, length($3) - length(s) + 1) == s { print $1; exit }')
	[[ -n $fetched && -n $unpacked ]] || return 1
	echo "$fetched $unpacked"
}

# start_liid NAME MAX_PARALLEL [STATE_DIR]: a fresh liid with its own
# state folder (STATE_DIR, empty, or a new one in the run's folder); its
# log (stderr) goes through `liibench stamp`, so every line carries the
# time it was written.
b_liid_start() {
	local name=$1 max_parallel=${2:-4} state=${3:-}
	B_STATE=${state:-$B_DIR/state-$name}
	B_SOCK=/run/lii-bench.$$.sock
	B_LOG=$B_DIR/liid-$name.log
	[[ -n $state ]] || rm -rf "$B_STATE"
	rm -f "$B_SOCK"
	# Every change is announced with POST /v1/sync: the poll timer is
	# long, so that it does not fire into the idle windows.
	cat >"$B_DIR/liid-$name.conf" <<EOF
; written by tests/bench
[source]
url = $B_HTTP/desired.json
poll_interval = 30m
[trust]
desired_keys = $B_DIR/keys/desired.d
artifact_keys = $B_DIR/keys/artifact.d
[node]
name = bench
[paths]
state_dir = $B_STATE
socket = $B_SOCK
[systemd]
bus = $B_BUS
[rollout]
max_parallel = $max_parallel
keep_revisions = 1
[api]
read_group =
[log]
level = info
EOF
	: >"$B_LOG"
	# The stamper outlives liid's pipe by a moment; its pid is not needed.
	env -u JOURNAL_STREAM -u NOTIFY_SOCKET "$B_BUILD/liid" -c "$B_DIR/liid-$name.conf" \
		2> >("$B_TOOL" stamp >>"$B_LOG") &
	B_LIID_PID=$!
	local i
	for i in $(seq 200); do
		[[ -S $B_SOCK ]] && b_api GET /v1/status >/dev/null 2>&1 && return 0
		kill -0 "$B_LIID_PID" 2>/dev/null || die "liid exited; see $B_LOG"
		sleep 0.05
	done
	die "liid did not answer on $B_SOCK"
}

b_liid_stop() {
	[[ -n ${B_LIID_PID:-} ]] || return 0
	kill "$B_LIID_PID" 2>/dev/null || true
	wait "$B_LIID_PID" 2>/dev/null || true
	B_LIID_PID=
}

b_api() { # METHOD PATH
	curl -sS --fail -X "$1" --unix-socket "$B_SOCK" "http://lii$2"
}

b_sync() {
	b_api POST /v1/sync >/dev/null
}

b_liictl() {
	"$B_BUILD/liictl" -s "$B_SOCK" "$@"
}

# The stamp of the first line of liid's log after line FROM that matches
# the extended regular expression RE; waits up to TIMEOUT seconds for it,
# woken by inotify (a polling loop of tail and grep would compete for the
# CPU with what is being timed).
b_log_wait() {
	local line
	line=$(b_log_line "$@") || return 1
	echo "${line%% *}"
}

# The same, printing the whole line.
b_log_line() {
	local from=$1 re=$2 timeout=${3:-60}
	"$B_TOOL" waitlog "$B_LOG" "$from" "$re" 1 "$timeout"
}

# When the manager took UNIT out of "inactive", when it forked the main
# process and when the unit reached "active" (for Type=exec: the process
# has exec'd), as "$EPOCHREALTIME"-style stamps: the manager's own share of
# a start. (systemd 252 stamps the first after the fork.)
b_unit_times() {
	local k v exit= fork= enter=
	while IFS== read -r k v; do
		v=$(date -d "${v#* }" +%s.%6N)
		case $k in
		InactiveExitTimestamp) exit=$v ;;
		ExecMainStartTimestamp) fork=$v ;;
		ActiveEnterTimestamp) enter=$v ;;
		esac
	done < <(b_systemctl show -p InactiveExitTimestamp -p ExecMainStartTimestamp \
		-p ActiveEnterTimestamp --timestamp=us+utc "$1")
	echo "$exit $fork $enter"
}

b_log_lines() {
	wc -l <"$B_LOG"
}

# CPU seconds of a process, all its threads, from the scheduler's
# nanosecond counters (/proc/PID/stat has 10 ms ticks).
b_cpu() {
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.6f", s / 1e9 }'
}
b_liid_cpu() {
	b_cpu "$B_LIID_PID"
}
b_liid_hwm() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$B_LIID_PID/status"
}
b_liid_rss() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$B_LIID_PID/status"
}
b_liid_anon() {
	awk '/^RssAnon:/ { print $2 }' "/proc/$B_LIID_PID/status"
}

# Samples liid's private memory (RssAnon: heap and stacks, what liid
# itself allocates; VmHWM also counts the shared libraries' pages) every
# 20 ms into FILE until stopped.
b_anon_sampler_start() {
	"$B_TOOL" peak "$B_LIID_PID" RssAnon "$1" &
	B_SAMPLER_PID=$!
}
b_anon_sampler_stop() {
	[[ -n ${B_SAMPLER_PID:-} ]] || return 0
	kill "$B_SAMPLER_PID" 2>/dev/null || true
	wait "$B_SAMPLER_PID" 2>/dev/null || true
	B_SAMPLER_PID=
}

# profile OUT.data CMD...: samples liid (with DWARF call stacks, as the
# build has no frame pointers) while CMD runs.
b_profile_liid() {
	local data=$1 perf_pid
	shift
	perf record -q -F 199 --call-graph dwarf,16384 -p "$B_LIID_PID" -o "$data" >/dev/null 2>&1 &
	perf_pid=$!
	sleep 0.5
	"$@"
	kill -INT "$perf_pid" 2>/dev/null || true
	wait "$perf_pid" 2>/dev/null || true
}

# The summary of a profile: the functions of lii's own code by the share of
# samples spent in them and below (inclusive), and the symbols where the
# samples landed (self), each limited to the top N.
b_profile_summary() {
	local data=$1 n=${2:-12} comm=${3:-liid}
	echo "inclusive: lii's own functions, with what they call"
	perf report -i "$data" --stdio --children --sort dso,symbol -g none --comms "$comm" 2>/dev/null |
		awk '/^ +[0-9.]+%/ && ($3 == "liid" || $3 == "liictl") {
			sym = $0; sub(/^.*\] /, "", sym); sub(/ +- +- *$/, "", sym)
			if (sym ~ /^(main|_start|0x[0-9a-f]+)$/) next
			printf "  %7s  %s\n", $1, sym }' | head -n "$n" || true
	echo "self: where the samples landed"
	perf report -i "$data" --stdio --no-children --sort dso,symbol -g none --comms "$comm" 2>/dev/null |
		awk '/^ +[0-9.]+%/ {
			sym = $0; sub(/^.*\] /, "", sym); sub(/ +- +- *$/, "", sym)
			printf "  %7s  %-20s %s\n", $1, $2, sym }' | head -n "$n" || true
}

# The share of a profile's samples taken on liid's loop thread (its tid is
# its pid) and on its other threads (libuv's pool).
b_profile_threads() {
	local data=$1 pid=$2
	perf report -i "$data" --stdio --no-children --sort pid -g none 2>/dev/null |
		awk -v pid="$pid" '/^ +[0-9.]+%/ { split($2, t, ":"); v = $1; sub(/%/, "", v)
			if (t[1] == pid) main += v; else other += v }
			END { printf "threads: %.1f%% of the samples on the loop thread, %.1f%% on the pool\n", main, other }' || true
}

# ---- teardown ----

B_MOUNTS=()

b_cleanup() {
	local status=$?
	# What fails while tearing down is no failure of the run.
	trap - ERR
	set +e
	[[ -n ${B_WATCH_PID:-} ]] && kill "$B_WATCH_PID" 2>/dev/null
	[[ -n ${B_HAMMER_PID:-} ]] && kill "$B_HAMMER_PID" 2>/dev/null
	# The listen scenario changes a sysctl of the whole machine.
	[[ -n ${B_MIGRATE_SAVED:-} ]] && echo "$B_MIGRATE_SAVED" >/proc/sys/net/ipv4/tcp_migrate_req
	b_anon_sampler_stop
	b_liid_stop
	if [[ -n ${B_MANAGER_PID:-} ]]; then
		# The manager stops every unit it runs as it exits.
		kill "$B_MANAGER_PID" 2>/dev/null
		wait "$B_MANAGER_PID" 2>/dev/null
		local d
		for d in $(b_cgroup_dirs); do
			[[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
		done
	fi
	if [[ -n ${B_NGINX_PID:-} ]]; then
		kill "$B_NGINX_PID" 2>/dev/null
		wait "$B_NGINX_PID" 2>/dev/null
	fi
	local m
	for m in "${B_MOUNTS[@]}"; do
		umount "$m" 2>/dev/null
	done
	rm -f "${B_SOCK:-}" "${B_NGINX_SOCK:-}"
	if ((status != 0)); then
		# A failed run keeps its folder and shows what liid said last.
		if [[ -n ${B_LOG:-} && -f $B_LOG ]]; then
			echo "bench: the end of $B_LOG:" >&2
			tail -n 30 "$B_LOG" >&2
		fi
		echo "bench: kept $B_DIR for inspection" >&2
	elif [[ -z ${B_KEEP:-} ]]; then
		rm -rf "$B_DIR"
	fi
}
