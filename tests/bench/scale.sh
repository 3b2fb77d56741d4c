# shellcheck shell=bash
# Scenarios 4 and 5: N services changed in one document (N = 1, 10, 100,
# 500 real instances of the sample service, each with its own artifact),
# liid's memory, CPU and idle wake-ups at each size, and the API (liictl
# status against liid and against nginx serving the same bytes, liid's
# answer alone, requests per second on GET /v1/status) at 10 and 500
# services.
# Sourced by tests/bench/run.

# The artifacts s<k>-v<v>.tar that PLAN ("SIZE:REPEATS ...") needs:
# service k is in every size from k up, and a size of n services with r
# changes uses versions 1..r+1 (r+2 for PROFILE_SIZE, which changes once
# more under perf). Uncompressed, so that each costs two processes (tar
# and minisign); made and signed on every core, then hashed in one go.
declare -A B_SCALE_SHA B_SCALE_SIZE
scale_artifacts() {
	local plan=$1 profile_size=$2 cores c pids=() item n r largest=0 total=0 k
	local -a need=()
	for item in $plan; do
		n=${item%%:*}
		((n > largest)) && largest=$n
	done
	for item in $plan; do
		n=${item%%:*} r=$((${item##*:} + 1))
		((n == profile_size)) && r=$((r + 1))
		for ((k = 1; k <= n; k++)); do
			((r > ${need[k]:-0})) && need[k]=$r
		done
	done
	for ((k = 1; k <= largest; k++)); do total=$((total + need[k])); done
	say "scale: making and signing $total artifacts"
	cores=$(nproc)
	for ((c = 0; c < cores; c++)); do
		(
			tree=$B_DIR/pack-scale-$c
			mkdir -p "$tree/bin"
			cp "$B_BUILD/sample/hello" "$tree/bin/hello"
			for ((k = 1 + c; k <= largest; k += cores)); do
				for ((v = 1; v <= need[k]; v++)); do
					f=$B_WWW/s$k-v$v.tar
					echo "s$k-v$v" >"$tree/VERSION"
					tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
						-C "$tree" -cf "$f" bin VERSION
					minisign -S -s "$B_DIR/keys/artifact.key" -m "$f" -t "lii bench" >/dev/null
				done
			done
			rm -rf "$tree"
		) &
		pids+=($!)
	done
	wait "${pids[@]}"
	local sha file size
	while read -r sha file; do
		B_SCALE_SHA[${file##*/}]=$sha
	done < <(cd "$B_WWW" && sha256sum s*-v*.tar)
	while read -r file size; do
		B_SCALE_SIZE[$file]=$size
	done < <(cd "$B_WWW" && stat -c '%n %s' s*-v*.tar)
}

# The document of services 1..N at version V, built without a process per
# service. Every instance gets its port from liid ("port": "auto", the
# default), with max_parallel rollouts picking ports at once.
scale_publish() {
	local n=$1 v=$2 k f svcs= sep=
	local health='{"http":"http://127.0.0.1:${PORT}/healthz","interval":"10ms","timeout":"1s","passes":1,"deadline":"60s"}'
	for ((k = 1; k <= n; k++)); do
		f=s$k-v$v.tar
		svcs+=$sep$(printf '"s%d":{"artifact":{"url":"%s/%s","sha256":"%s","size":%s},"exec":["bin/hello","--version-name","%s"],"health":%s,"stop_timeout":"5s"}' \
			"$k" "$B_HTTP" "$f" "${B_SCALE_SHA[$f]}" "${B_SCALE_SIZE[$f]}" "$f" "$health")
		sep=,
	done
	b_publish "$svcs"
}

# Waits until COUNT lines after line FROM of liid's log match RE (any
# rollout.failed ends the wait as a failure); prints the stamp of the last.
scale_wait_count() {
	local from=$1 re=$2 count=$3 timeout=$4 line
	line=$("$B_TOOL" waitlog "$B_LOG" "$from" "$re" "$count" "$timeout" 'rollout\.failed') ||
		{ echo "bench: see $B_LOG" >&2; return 1; }
	echo "${line%% *}"
}

b_manager_cpu() {
	b_cpu "$B_MANAGER_PID"
}

# Wake-ups of an idle liid over SECONDS: context switches of its main
# thread (the loop) and of its other threads (libuv's pool), then, in a
# second window of the same length (perf's attaching switches contexts
# itself), its epoll waits counted by perf when the kernel lets it.
scale_idle() {
	local n=$1 seconds=$2 main0 main1 all0 all1
	ctxsw() { # FILES...
		cat "$@" 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }'
	}
	# Out of the way of the last rollout's stragglers (stop jobs, probes).
	sleep 1
	main0=$(ctxsw "/proc/$B_LIID_PID/status")
	all0=$(ctxsw /proc/"$B_LIID_PID"/task/*/status)
	sleep "$seconds"
	main1=$(ctxsw "/proc/$B_LIID_PID/status")
	all1=$(ctxsw /proc/"$B_LIID_PID"/task/*/status)
	record "idle.$n.ctxsw" "$((all1 - all0))"
	record "idle.$n.ctxsw_main" "$((main1 - main0))"
	record "idle.$n.seconds" "$seconds"
	if [[ -n ${B_PERF:-} ]]; then
		perf stat -x, -e 'syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait' \
			-p "$B_LIID_PID" -o "$B_DIR/idle-$n.perf" -- sleep "$seconds" 2>/dev/null
		record "idle.$n.epoll_waits" "$(awk -F, '$1 ~ /^[0-9]+$/ { s += $1 } END { print s + 0 }' \
			"$B_DIR/idle-$n.perf")"
	fi
}

# scale_api N RUNS LOAD_SECONDS PROFILE
scale_api() {
	local n=$1 runs=$2 seconds=$3 profile=$4
	# The same status documents as static files for nginx: the whole one
	# at the load generator's path, and the table view that
	# of `liictl status` asks for at the path liictl asks (nginx ignores
	# the query).
	b_api GET /v1/status >"$B_DIR/apiroot/status.json"
	mkdir -p "$B_DIR/apiroot/v1"
	b_api GET '/v1/status?view=table' >"$B_DIR/apiroot/v1/status"
	record "api.$n.status_bytes" "$(stat -c %s "$B_DIR/apiroot/status.json")"
	record "api.$n.table_bytes" "$(stat -c %s "$B_DIR/apiroot/v1/status")"

	# The floors: any small program, and liictl before it asks anything.
	b_repeat "api.$n.true" "$runs" true
	b_repeat "api.$n.liictl_version" "$runs" "$B_BUILD/liictl" --version
	b_repeat "api.$n.liictl" "$runs" "$B_BUILD/liictl" -s "$B_SOCK" status
	b_repeat "api.$n.liictl_json" "$runs" "$B_BUILD/liictl" -s "$B_SOCK" --json status
	b_repeat "api.$n.curl" "$runs" curl -fsS --unix-socket "$B_SOCK" http://lii/v1/status
	# liictl's own share: the same command and bytes, from nginx, which
	# answers in a fraction of a millisecond.
	b_repeat "api.$n.liictl_nginx" "$runs" "$B_BUILD/liictl" -s "$B_NGINX_SOCK" status

	local out cpu0 cpu1
	load_field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$2"; }
	# liid's share: its answer to one request at a time, without a
	# process start, for the table view (what liictl status asks for) and
	# for the whole document.
	out=$("$B_TOOL" load "$B_SOCK" '/v1/status?view=table' 1 "$seconds")
	echo "liid $n, table view, one connection: $out" >>"$B_DIR/load.txt"
	record "api.$n.table_p50_us" "$(load_field p50_us "$out")"
	out=$("$B_TOOL" load "$B_SOCK" /v1/status 1 "$seconds")
	echo "liid $n, one connection: $out" >>"$B_DIR/load.txt"
	record "api.$n.single_p50_us" "$(load_field p50_us "$out")"

	# Requests per second from 4 connections, against liid and against
	# nginx serving the same bytes as a static file on a Unix socket (one
	# worker, as liid has one loop).
	record "api.$n.load_seconds" "$seconds"
	cpu0=$(b_liid_cpu)
	out=$("$B_TOOL" load "$B_SOCK" /v1/status 4 "$seconds")
	cpu1=$(b_liid_cpu)
	echo "liid $n: $out" >>"$B_DIR/load.txt"
	record "api.$n.rps" "$(load_field rps "$out")"
	record "api.$n.p50_us" "$(load_field p50_us "$out")"
	record "api.$n.p99_us" "$(load_field p99_us "$out")"
	record "api.$n.requests" "$(load_field requests "$out")"
	record "api.$n.connections" "$(load_field connections "$out")"
	record "api.$n.cpu_per_req_us" "$(awk -v a="$cpu0" -v b="$cpu1" -v r="$(load_field requests "$out")" \
		'BEGIN { printf "%.1f", (b - a) * 1e6 / r }')"
	if [[ $profile == 1 && -n ${B_PROFILE:-} ]]; then
		b_profile_liid "$B_DIR/perf-api.data" "$B_TOOL" load "$B_SOCK" /v1/status 4 2 >/dev/null
		b_profile_summary "$B_DIR/perf-api.data" 10 >"$B_DIR/profile-api.txt"
		perf record -q -F 5000 --call-graph dwarf,16384 -o "$B_DIR/perf-liictl.data" -- \
			"$B_BUILD/liictl" -s "$B_SOCK" status >/dev/null 2>&1 || true
		b_profile_summary "$B_DIR/perf-liictl.data" 10 liictl >"$B_DIR/profile-liictl.txt"
		record api.profiled "$n"
	fi
	out=$("$B_TOOL" load "$B_NGINX_SOCK" /status.json 4 "$seconds")
	echo "nginx $n: $out" >>"$B_DIR/load.txt"
	record "api.$n.nginx_rps" "$(load_field rps "$out")"
	record "api.$n.nginx_p50_us" "$(load_field p50_us "$out")"
	record "api.$n.nginx_connections" "$(load_field connections "$out")"
}

# One change of every service to version V, timed; records into
# scale.N.* unless B_NORECORD is set.
scale_change() {
	local n=$1 v=$2 from t0 t_end cpu0 cpu1 m0 m1
	scale_publish "$n" "$v"
	from=$(b_log_lines)
	cpu0=$(b_liid_cpu)
	m0=$(b_manager_cpu)
	t0=$("$B_TOOL" post "$B_SOCK" /v1/sync)
	t_end=$(scale_wait_count "$from" 'instance\.stopped' "$n" 900) || die "$n services did not converge"
	cpu1=$(b_liid_cpu)
	m1=$(b_manager_cpu)
	[[ -z ${B_NORECORD:-} ]] || return 0
	record "scale.$n.converge" "$(ms_between "$t0" "$t_end")"
	record "scale.$n.per_service" "$(awk -v a="$t0" -v b="$t_end" -v n="$n" \
		'BEGIN { printf "%.3f", (b - a) * 1000 / n }')"
	record "scale.$n.cpu" "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", (b - a) * 1000 }')"
	record "scale.$n.manager_cpu" "$(awk -v a="$m0" -v b="$m1" 'BEGIN { printf "%.3f", (b - a) * 1000 }')"
}

# scale_size N REPEATS MAX_PARALLEL IDLE_SECONDS API_RUNS LOAD_SECONDS PROFILE_CHANGE
scale_size() {
	local n=$1 repeats=$2 max_parallel=$3 idle=$4 api_runs=$5 load_seconds=$6 profile=$7 v
	say "scale: $n services, $repeats changes (max_parallel $max_parallel)"
	# The instances of the size before go first: each size starts empty.
	b_systemctl stop 'lii-*' >/dev/null 2>&1 || true
	scale_publish "$n" 1
	local t_start t_deployed
	t_start=$EPOCHREALTIME
	b_liid_start "scale-$n" "$max_parallel"
	b_anon_sampler_start "$B_DIR/anon-$n"
	t_deployed=$(scale_wait_count 0 'rollout\.succeeded' "$n" 900) || die "the first deploy of $n services failed"
	record "scale.$n.deploy" "$(ms_between "$t_start" "$t_deployed")"
	for ((v = 2; v <= repeats + 1; v++)); do
		scale_change "$n" "$v"
	done
	b_anon_sampler_stop
	# Peaks over the first deploy and the changes.
	record "scale.$n.hwm" "$(b_liid_hwm)"
	record "scale.$n.anon_peak" "$(cat "$B_DIR/anon-$n")"
	record "scale.$n.rss" "$(b_liid_rss)"
	record "scale.$n.anon" "$(b_liid_anon)"
	[[ $idle == 0 ]] || scale_idle "$n" "$idle"
	[[ $api_runs == 0 ]] || scale_api "$n" "$api_runs" "$load_seconds" "${B_API_PROFILE_SIZE:-0}"
	if [[ $profile == 1 && -n ${B_PROFILE:-} ]]; then
		say "scale: profiling one more change of $n services"
		B_NORECORD=1 b_profile_liid "$B_DIR/perf-scale.data" scale_change "$n" "$((repeats + 2))"
		b_profile_summary "$B_DIR/perf-scale.data" 14 >"$B_DIR/profile-scale.txt"
		record scale.profiled "$n"
	fi
	b_liid_stop
	rm -rf "$B_STATE"
}

# scenario_scale "SIZE:REPEATS ..." MAX_PARALLEL "SIZE:IDLE_SECONDS ..." "API_SIZES" API_RUNS
#                LOAD_SECONDS PROFILE_SIZE
scenario_scale() {
	local plan=$1 max_parallel=$2 idle_plan=$3 api_sizes=$4 api_runs=$5 load_seconds=$6
	local profile_size=$7 largest_api=0 item n r idle api i
	for n in $api_sizes; do ((n > largest_api)) && largest_api=$n; done
	scale_artifacts "$plan" "$profile_size"
	record scale.max_parallel "$max_parallel"
	for item in $plan; do
		n=${item%%:*} r=${item##*:}
		idle=0
		api=0
		for i in $idle_plan; do [[ ${i%%:*} == "$n" ]] && idle=${i##*:}; done
		[[ " $api_sizes " == *" $n "* ]] && api=$api_runs
		B_API_PROFILE_SIZE=$((n == largest_api)) \
			scale_size "$n" "$r" "$max_parallel" "$idle" "$api" "$load_seconds" "$((n == profile_size))"
	done
	b_systemctl stop 'lii-*' >/dev/null 2>&1 || true
}
