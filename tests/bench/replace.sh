# shellcheck shell=bash
# Scenarios 1 and 2: one replacement of the sample service, timed phase by
# phase from liid's log, beside the physical limit built from the same
# run's components and beside the hand-written script doing the same
# replacement. Sourced by tests/bench/run; uses lib.sh.
#
# Each repeat publishes a new artifact (so that every rollout fetches and
# unpacks) and runs, in alternating order, liid's replacement and the
# script's, then times the components once each.

# The phase marks of one liid rollout, in this order.
B_PHASES=(noticed planned fetched unpacked active probed retired)

# Times the components of the limit for artifact FILE once each, recording
# raw wall times; the report subtracts the tools' own start-up (measured
# with the same tools on empty input) to get the work.
replace_components() {
	local file=$1 i=$2 port t0 t1 out
	local art=$B_WWW/$file dir=$B_DIR/limit-$i
	mkdir -p "$dir"

	# Loopback downloads: document, its signature, the artifact's signature
	# and the artifact, in one curl (one connection), as liid fetches them.
	out=$(curl -fsS -w '%{time_total}\n' -o /dev/null "$B_HTTP/desired.json" \
		-o /dev/null "$B_HTTP/desired.json.minisig" -o /dev/null "$B_HTTP/$file.minisig" \
		-o /dev/null "$B_HTTP/$file")
	record limit.download "$(awk '{ s += $1 } END { printf "%.3f", s * 1000 }' <<<"$out")"

	t0=$EPOCHREALTIME
	openssl dgst -sha256 "$art" >/dev/null
	openssl dgst -blake2b512 "$art" >/dev/null
	t1=$EPOCHREALTIME
	record tool.openssl.file "$(ms_between "$t0" "$t1")"
	t0=$EPOCHREALTIME
	openssl dgst -sha256 /dev/null >/dev/null
	openssl dgst -blake2b512 /dev/null >/dev/null
	t1=$EPOCHREALTIME
	record tool.openssl.empty "$(ms_between "$t0" "$t1")"

	t0=$EPOCHREALTIME
	tar -xzf "$art" -C "$dir"
	t1=$EPOCHREALTIME
	record tool.tar.file "$(ms_between "$t0" "$t1")"
	t0=$EPOCHREALTIME
	tar -xzf "$B_DIR/empty.tar.gz" -C "$dir"
	t1=$EPOCHREALTIME
	record tool.tar.empty "$(ms_between "$t0" "$t1")"

	# The same command with liid's sandbox on the same manager; then the
	# application's own time to answer, probed every 200 µs.
	port=$("$B_TOOL" port)
	local m0 m1
	m0=$(b_cpu "$B_MANAGER_PID")
	t0=$EPOCHREALTIME
	b_view "$dir"
	b_systemd_run --unit "bench-limit-$i" --slice lii.slice -p Type=exec -p TimeoutStopSec=5 \
		"${B_VIEW[@]}" -p StateDirectory=lii/bench-limit -E PORT="$port" \
		"${B_SANDBOX[@]}" "${B_EXE[@]}" --version-name "limit-$i"
	t1=$EPOCHREALTIME
	record tool.systemd_run "$(ms_between "$t0" "$t1")"
	out=$("$B_TOOL" probe "$port" /healthz 10000)
	record limit.healthz "$(awk '{ printf "%.3f", $1 / 1000 }' <<<"$out")"
	local u_exit u_fork u_enter # the first is not used: the manager stamps it after the fork
	read -r u_exit u_fork u_enter <<<"$(b_unit_times "bench-limit-$i.service")"
	record tool.systemd_run.before "$(ms_between "$t0" "$u_fork")"
	record tool.systemd_run.exec "$(ms_between "$u_fork" "$u_enter")"
	record tool.systemd_run.after "$(ms_between "$u_enter" "$t1")"
	t0=$EPOCHREALTIME
	b_systemctl stop "bench-limit-$i"
	t1=$EPOCHREALTIME
	m1=$(b_cpu "$B_MANAGER_PID")
	record tool.systemctl_stop "$(ms_between "$t0" "$t1")"
	record tool.manager_cpu "$(ms_between "$m0" "$m1")"
	# What a systemctl or systemd-run process costs before it asks for
	# anything: start, connect to the manager, one call.
	t0=$EPOCHREALTIME
	b_systemctl show-environment >/dev/null
	t1=$EPOCHREALTIME
	record tool.systemctl_noop "$(ms_between "$t0" "$t1")"
	rm -rf "$dir"
}

# One replacement by liid; records each phase and the total under
# $B_KEY.* (liid.*), unless B_NORECORD is set.
B_KEY=liid
replace_liid() {
	local i=$1
	local file=hello-${B_KEY}-$i
	b_make_artifact "$file" "liid-$i"
	local sha
	sha=$(sha256sum "$B_WWW/$file.tar.gz" | cut -d' ' -f1)
	b_publish "$(b_service_json hello "$file.tar.gz")"
	local n w g
	n=$(b_log_lines)
	w=$(wc -l <"$B_DIR/watch.log")
	g=$(wc -l <"$B_DIR/nginx/access.log")

	local t0
	local m0 m1
	m0=$(b_cpu "$B_MANAGER_PID")
	t0=$("$B_TOOL" post "$B_SOCK" /v1/sync)
	local t_acc t_start t_fetched t_unpacked t_active t_ok t_gone
	t_gone=$(b_log_wait "$n" 'hello: instance\.stopped' 60) || return 1
	m1=$(b_cpu "$B_MANAGER_PID")
	t_acc=$(b_log_wait "$n" 'source\.accepted' 1)
	local started gen
	started=$(b_log_line "$n" 'hello: rollout\.started' 1)
	t_start=${started%% *}
	gen=$(sed -n 's/.*generation \([0-9]*\).*/\1/p' <<<"$started")
	t_active=$(b_log_wait "$n" 'hello: instance\.started' 1)
	t_ok=$(b_log_wait "$n" 'hello: rollout\.succeeded' 1)
	# The store's folders say when the verified download begins to be
	# unpacked (a private folder appears in store/tmp) and when the tree
	# is complete, read-only and synced (it is renamed into store/sha256).
	read -r t_fetched t_unpacked < <(b_store_marks "$B_DIR/watch.log" "$w" "$sha") ||
		die "no store events for $sha in $B_DIR/watch.log"
	# Finer marks: when nginx finished serving each file (its $msec, in
	# ms), and when liid began the state write that commits the new
	# generation (the last state.d/hello.json.tmp created before rollout.succeeded).
	local t_docsig t_artsig t_art t_commit
	served() {
		tail -n +"$((g + 1))" "$B_DIR/nginx/access.log" | awk -v u="$1" '$5 == u { print $1; exit }'
	}
	t_docsig=$(served /desired.json.minisig)
	t_artsig=$(served "/$file.tar.gz.minisig")
	t_art=$(served "/$file.tar.gz")
	t_commit=$(tail -n +"$((w + 1))" "$B_DIR/watch.log" | awk -v ok="$t_ok" \
		'$2 == "create" && $3 ~ /\/state\.d\/hello\.json\.tmp$/ && $1 < ok { t = $1 } END { print t }')
	[[ -z ${B_NORECORD:-} ]] || return 0
	if [[ -n $t_docsig && -n $t_artsig && -n $t_art && -n $t_commit ]]; then
		record "$B_KEY".noticed.served "$(ms_between "$t0" "$t_docsig")"
		record "$B_KEY".noticed.after "$(ms_between "$t_docsig" "$t_acc")"
		record "$B_KEY".fetched.sig "$(ms_between "$t_start" "$t_artsig")"
		record "$B_KEY".fetched.artifact "$(ms_between "$t_artsig" "$t_art")"
		record "$B_KEY".fetched.verified "$(ms_between "$t_art" "$t_fetched")"
		record "$B_KEY".probed.probing "$(ms_between "$t_active" "$t_commit")"
		record "$B_KEY".probed.commit "$(ms_between "$t_commit" "$t_ok")"
	fi

	record "$B_KEY".noticed "$(ms_between "$t0" "$t_acc")"
	record "$B_KEY".planned "$(ms_between "$t_acc" "$t_start")"
	record "$B_KEY".fetched "$(ms_between "$t_start" "$t_fetched")"
	record "$B_KEY".unpacked "$(ms_between "$t_fetched" "$t_unpacked")"
	record "$B_KEY".active "$(ms_between "$t_unpacked" "$t_active")"
	local u_exit u_fork u_enter # the first is not used: the manager stamps it after the fork
	read -r u_exit u_fork u_enter <<<"$(b_unit_times "lii-hello@$gen.service")"
	record "$B_KEY".active.before "$(ms_between "$t_unpacked" "$u_fork")"
	record "$B_KEY".active.exec "$(ms_between "$u_fork" "$u_enter")"
	record "$B_KEY".active.after "$(ms_between "$u_enter" "$t_active")"
	record "$B_KEY".probed "$(ms_between "$t_active" "$t_ok")"
	record "$B_KEY".retired "$(ms_between "$t_ok" "$t_gone")"
	record "$B_KEY".total "$(ms_between "$t0" "$t_gone")"
	record "$B_KEY".manager_cpu "$(ms_between "$m0" "$m1")"
}

# One replacement by the hand-written script; records its total.
B_SCRIPT_OLD=
replace_script() {
	local i=$1
	local file=hello-h$i
	b_make_artifact "$file" "script-$i"
	local sha port t0 t1
	sha=$(sha256sum "$B_WWW/$file.tar.gz" | cut -d' ' -f1)
	port=$("$B_TOOL" port)
	local m0 m1
	m0=$(b_cpu "$B_MANAGER_PID")
	t0=$EPOCHREALTIME
	XDG_RUNTIME_DIR=$B_RUNTIME "$B_SRC/tests/bench/handwritten-deploy.sh" \
		"$B_HTTP/$file.tar.gz" "$sha" "$B_ARTIFACT_PUB" "$B_DIR/script/$file" \
		"bench-script-$i" "$B_SCRIPT_OLD" "$port" -p TimeoutStopSec=5 \
		-p StateDirectory=lii/bench-script "${B_SANDBOX[@]}" ||
		die "the hand-written script failed"
	t1=$EPOCHREALTIME
	m1=$(b_cpu "$B_MANAGER_PID")
	[[ $i == 0 ]] || record script.total "$(ms_between "$t0" "$t1")"
	[[ $i == 0 ]] || record script.manager_cpu "$(ms_between "$m0" "$m1")"
	B_SCRIPT_OLD=bench-script-$i
}

# scenario_replace REPEATS TMPFS_REPEATS
scenario_replace() {
	local repeats=$1 i
	say "replacement: $repeats repeats of liid, the hand-written script and the components"
	mkdir -p "$B_DIR/script" "$B_DIR/empty"
	tar -czf "$B_DIR/empty.tar.gz" -C "$B_DIR/empty" .

	b_make_artifact hello-liid-0 liid-0
	b_publish "$(b_service_json hello hello-liid-0.tar.gz)"
	b_liid_start replace 4
	b_log_wait 0 'hello: rollout\.succeeded' 60 >/dev/null || die "the first rollout did not succeed"
	"$B_TOOL" watch "$B_STATE/store/tmp" "$B_STATE/store/sha256" "$B_STATE/state.d" >"$B_DIR/watch.log" &
	B_WATCH_PID=$!
	until grep -q watching "$B_DIR/watch.log" 2>/dev/null; do sleep 0.01; done
	replace_script 0

	for i in $(seq "$repeats"); do
		if ((i % 2)); then
			replace_liid "$i" || die "liid's replacement $i did not finish"
			replace_script "$i"
		else
			replace_script "$i"
			replace_liid "$i" || die "liid's replacement $i did not finish"
		fi
		replace_components "hello-liid-$i.tar.gz" "$i"
	done

	# What one durable state write costs on this disk (liid's state file:
	# write, fsync, rename, fsync of the folder), to weigh the fsyncs in
	# liid's phases.
	for i in $(seq 5); do
		record disk.state_write "$("$B_TOOL" fsync "$B_STATE")"
	done
	# What one rollout asks of the disk and of the bus, counted on an extra
	# rollout under strace (its times are not used): fsync()/syncfs()
	# calls, and sendmsg()/recvmsg() calls, which liid makes for D-Bus only
	# (but for the one reply to the sync), beside those of systemd-run and
	# systemctl stop doing the same start and stop.
	if command -v strace >/dev/null; then
		strace -f -c -e trace=fsync,fdatasync,syncfs,sendmsg,recvmsg -p "$B_LIID_PID" \
			-o "$B_DIR/strace-rollout.txt" 2>/dev/null &
		local strace_pid=$!
		sleep 0.3
		B_NORECORD=1 replace_liid "$((repeats + 1))" || true
		sleep 0.1
		kill -INT "$strace_pid" 2>/dev/null
		wait "$strace_pid" 2>/dev/null || true
		syscalls() { # FILE NAME-RE
			awk -v re="$2" '$NF ~ re { n += $4 } END { print n + 0 }' "$1"
		}
		record disk.syncs_per_rollout "$(syscalls "$B_DIR/strace-rollout.txt" '^(fsync|fdatasync|syncfs)$')"
		record bus.liid_msgs "$(syscalls "$B_DIR/strace-rollout.txt" '^(sendmsg|recvmsg)$')"
		local dir=$B_DIR/limit-strace port
		mkdir -p "$dir"
		tar -xzf "$B_WWW/hello-liid-1.tar.gz" -C "$dir"
		port=$("$B_TOOL" port)
		b_view "$dir"
		XDG_RUNTIME_DIR=$B_RUNTIME strace -f -c -e trace=sendmsg,recvmsg -o "$B_DIR/strace-run.txt" \
			systemd-run --user --quiet --unit bench-limit-strace --slice lii.slice -p Type=exec \
			"${B_VIEW[@]}" -p StateDirectory=lii/bench-limit -E PORT="$port" \
			"${B_SANDBOX[@]}" "${B_EXE[@]}" 2>/dev/null
		XDG_RUNTIME_DIR=$B_RUNTIME strace -f -c -e trace=sendmsg,recvmsg -o "$B_DIR/strace-stop.txt" \
			systemctl --user stop bench-limit-strace 2>/dev/null
		record bus.tools_msgs "$(($(syscalls "$B_DIR/strace-run.txt" '^(sendmsg|recvmsg)$') +
			$(syscalls "$B_DIR/strace-stop.txt" '^(sendmsg|recvmsg)$')))"
		rm -rf "$dir"
	fi

	kill "$B_WATCH_PID" 2>/dev/null || true
	wait "$B_WATCH_PID" 2>/dev/null || true
	B_WATCH_PID=
	b_liid_stop
	b_systemctl stop "$B_SCRIPT_OLD" 'lii-hello@*' >/dev/null 2>&1 || true

	# The same replacement with liid's state folder (store and state file)
	# on a tmpfs (B_TMPFS, mounted by the run before the manager started, so
	# that the manager's namespace has it too), where fsync() costs nothing
	# and nothing is written back to the disk: the difference is what
	# durability costs, phase by phase.
	local tmpfs_repeats=$2
	((tmpfs_repeats > 0)) || return 0
	say "replacement: $tmpfs_repeats more by liid with its state folder on a tmpfs"
	b_liid_start replace-tmpfs 4 "$B_TMPFS"
	b_log_wait 0 'hello: rollout\.succeeded' 60 >/dev/null || die "the first rollout on tmpfs did not succeed"
	"$B_TOOL" watch "$B_STATE/store/tmp" "$B_STATE/store/sha256" "$B_STATE/state.d" >"$B_DIR/watch.log" &
	B_WATCH_PID=$!
	until grep -q watching "$B_DIR/watch.log" 2>/dev/null; do sleep 0.01; done
	for i in $(seq "$tmpfs_repeats"); do
		B_KEY=tmpfs replace_liid "$i" || die "liid's replacement $i on tmpfs did not finish"
	done
	kill "$B_WATCH_PID" 2>/dev/null || true
	wait "$B_WATCH_PID" 2>/dev/null || true
	B_WATCH_PID=
	b_liid_stop
	b_systemctl stop 'lii-hello@*' >/dev/null 2>&1 || true
}
