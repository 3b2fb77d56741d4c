# shellcheck shell=bash
# Scenario 6: a service keeps its address through replacements (issue 13).
# A steady load of new connections on the address (liibench hammer) while
# liid replaces the sample service, which lists the address in "listen",
# N times in a row: in each round once with net.ipv4.tcp_migrate_req on
# and once with it off, then the load alone for as long. Then the same
# sample as a unit that binds the address itself, replaced N times the way
# it is done by hand: stop the unit, start it again. Records what the
# clients saw each time. Sourced by tests/bench/run; uses lib.sh.
#
# The sysctl is the kernel's, for every program on the machine (of this
# network namespace): its value is put back when the scenario ends, or the
# run fails (b_cleanup), and a load that finds it changed by someone else
# meanwhile fails the run rather than report numbers taken under another
# value.

B_MIGRATE=/proc/sys/net/ipv4/tcp_migrate_req

listen_set_migrate() {
	echo "$1" >"$B_MIGRATE"
}

# listen_hammer_start [SECONDS]: the load on the address, in the
# background, until listen_hammer_stop or SECONDS (600 at most); returns
# once its clients have started. (Until the shell's child has become
# liibench, a signal would run the run's traps in it.)
listen_hammer_start() {
	: >"$B_DIR/hammer.out"
	B_HAMMER_MIGRATE=
	[[ ! -r $B_MIGRATE ]] || B_HAMMER_MIGRATE=$(<"$B_MIGRATE")
	"$B_TOOL" hammer "$B_LISTEN_PORT" / "${1:-600}" "$B_LISTEN_CLIENTS" >"$B_DIR/hammer.out" &
	B_HAMMER_PID=$!
	"$B_TOOL" waitlog "$B_DIR/hammer.out" 0 '^hammering ' 1 10 >/dev/null ||
		die "listen: the load generator did not start"
}

# listen_hammer_stop KEY: stops the load and records what it counted as
# KEY.requests, KEY.ok, KEY.failed … (liibench hammer's names).
listen_hammer_stop() {
	local key=$1 out k
	local -A v
	if [[ -n $B_HAMMER_PID ]]; then
		kill -TERM "$B_HAMMER_PID"
		wait "$B_HAMMER_PID" || die "listen: nothing answered the load on 127.0.0.1:$B_LISTEN_PORT"
		B_HAMMER_PID=
	fi
	if [[ -n $B_HAMMER_MIGRATE && $(<"$B_MIGRATE") != "$B_HAMMER_MIGRATE" ]]; then
		die "listen: net.ipv4.tcp_migrate_req changed from $B_HAMMER_MIGRATE to $(<"$B_MIGRATE") under the load (another program set it)"
	fi
	out=$(grep '^requests=' "$B_DIR/hammer.out") || die "listen: no report from the load generator"
	for k in requests ok failed refused reset timeout other rps p50_us p99_us max_us longest_gap_ms \
		longest_gap_end seconds; do
		v[$k]=$(sed -n "s/.* $k=\([^ ]*\).*/\1/p" <<<" ${out%% first_failure_at=*}")
		[[ -n ${v[$k]} ]] || die "listen: no $k in the load generator's report: $out"
		record "$key.$k" "${v[$k]}"
	done
	say "listen: $key: ${v[ok]} answered, ${v[failed]} failed (${v[refused]} refused," \
		"${v[reset]} reset, ${v[timeout]} timed out, ${v[other]} other), longest wait" \
		"${v[longest_gap_ms]} ms; the first failure: ${out##*first_failure=}"
}

# listen_steady KEY SECONDS: the same load for SECONDS with nothing
# replaced: what the load alone sees on this machine.
listen_steady() {
	listen_hammer_start "$2"
	wait "$B_HAMMER_PID" || die "listen: nothing answered the load on 127.0.0.1:$B_LISTEN_PORT"
	B_HAMMER_PID=
	listen_hammer_stop "$1"
}

# listen_liid KEY REPLACEMENTS: liid replaces the service (a fresh instance
# of the same spec, POST /v1/services/hello/replace) REPLACEMENTS times
# under the load, each waited for until the old instance is gone; records
# each replacement's time as KEY.replace.
listen_liid() {
	local key=$1 n=$2 i from t0 line
	listen_hammer_start
	for ((i = 1; i <= n; i++)); do
		from=$(b_log_lines)
		t0=$("$B_TOOL" post "$B_SOCK" /v1/services/hello/replace)
		line=$("$B_TOOL" waitlog "$B_LOG" "$from" 'hello: instance\.stopped' 1 60 \
			'hello: rollout\.(failed|reverted)') || die "listen: liid's replacement $i under load did not finish"
		record "$key.replace" "$(ms_between "$t0" "${line%% *}")"
	done
	listen_hammer_stop "$key"
}

# listen_unit I: the sample as unit bench-stopstart-I, binding the address
# itself, with liid's sandbox; returns once it answers there, asked every
# 200 µs (liibench probe), as a script would wait for it.
listen_unit() {
	b_systemd_run --unit "bench-stopstart-$1" --slice lii.slice -p Type=exec -p TimeoutStopSec=5 \
		"${B_VIEW[@]}" -p StateDirectory=lii/bench-stopstart -E PORT="$B_LISTEN_PORT" \
		"${B_SANDBOX[@]}" "${B_EXE[@]}" --version-name "stopstart-$1"
	"$B_TOOL" probe "$B_LISTEN_PORT" /healthz 10000 >/dev/null ||
		die "listen: bench-stopstart-$1 does not answer on 127.0.0.1:$B_LISTEN_PORT"
}

# listen_stopstart KEY REPLACEMENTS: the hand-written replacement,
# `systemctl stop` then `systemd-run`, REPLACEMENTS times under the load;
# records each replacement's time as KEY.replace.
listen_stopstart() {
	local key=$1 n=$2 i t0 t1
	listen_unit 0
	listen_hammer_start
	for ((i = 1; i <= n; i++)); do
		t0=$EPOCHREALTIME
		b_systemctl stop "bench-stopstart-$((i - 1))"
		listen_unit "$i"
		t1=$EPOCHREALTIME
		record "$key.replace" "$(ms_between "$t0" "$t1")"
	done
	listen_hammer_stop "$key"
	b_systemctl stop "bench-stopstart-$n"
}

# scenario_listen REPLACEMENTS ROUNDS CLIENTS
scenario_listen() {
	local n=$1 rounds=$2 r
	B_LISTEN_CLIENTS=$3
	B_LISTEN_PORT=$("$B_TOOL" port)
	record listen.replacements "$n"
	record listen.clients "$B_LISTEN_CLIENTS"
	local migrate=
	if [[ -w $B_MIGRATE ]]; then
		B_MIGRATE_SAVED=$(<"$B_MIGRATE")
		migrate=1
	else
		say "listen: $B_MIGRATE is missing (a kernel before 5.14): liid is measured once, as the kernel is"
	fi
	say "listen: $rounds × $n replacements under load on 127.0.0.1:$B_LISTEN_PORT ($B_LISTEN_CLIENTS clients)"

	b_make_artifact hello-listen listen
	local svc
	svc=$(b_service_json hello hello-listen.tar.gz)
	b_publish "${svc%\}},\"listen\":[\"127.0.0.1:$B_LISTEN_PORT\"]}"
	b_liid_start listen 4
	b_log_wait 0 'hello: rollout\.succeeded' 60 >/dev/null || die "listen: the first rollout did not succeed"
	"$B_TOOL" probe "$B_LISTEN_PORT" / 10000 >/dev/null || die "listen: nothing answers on 127.0.0.1:$B_LISTEN_PORT"

	local dir=$B_DIR/stopstart
	mkdir -p "$dir"
	tar -xzf "$B_WWW/hello-listen.tar.gz" -C "$dir"
	b_view "$dir"

	local key=listen.kernel
	[[ -z $migrate ]] || key=listen.migrate
	for ((r = 1; r <= rounds; r++)); do
		if [[ -n $migrate ]]; then
			# In turns, so that neither always comes first.
			local order="1 0" m
			((r % 2)) || order="0 1"
			for m in $order; do
				listen_set_migrate "$m"
				if ((m)); then
					listen_liid listen.migrate "$n"
				else
					listen_liid listen.nomigrate "$n"
				fi
			done
			listen_set_migrate "$B_MIGRATE_SAVED"
		else
			listen_liid listen.kernel "$n"
		fi
		# The load alone, as long as the round with replacements took.
		listen_steady listen.steady "$(values "$key.seconds" | tail -n1)"
	done
	# liid lets go of the address before the hand-written unit binds it.
	b_liid_stop
	b_systemctl stop 'lii-hello@*.socket' >/dev/null 2>&1 || true
	b_systemctl stop 'lii-hello@*.service' >/dev/null 2>&1 || true
	for ((r = 1; r <= rounds; r++)); do
		listen_stopstart listen.stopstart "$n"
	done
	rm -rf "$dir"
	B_MIGRATE_SAVED=
}
