# shellcheck shell=bash
# Scenario 3: a large artifact (random data and the hello binary in an
# uncompressed tar) fetched from nginx over loopback, hashed, checked
# against its signature and unpacked by liid, beside curl fetching the same
# file to /dev/null and through sha256sum. Sourced by tests/bench/run.

# large_artifact I: $B_WWW/big-I.tar, signed; the blob is shared, the
# VERSION file makes each one's hash its own.
large_artifact() {
	local i=$1 tree=$B_DIR/big-tree
	mkdir -p "$tree/bin" "$tree/data"
	[[ -e $tree/bin/hello ]] || cp "$B_BUILD/sample/hello" "$tree/bin/hello"
	[[ -e $tree/data/blob ]] || ln "$B_DIR/blob" "$tree/data/blob"
	echo "big-$i" >"$tree/VERSION"
	tar --owner=0 --group=0 --numeric-owner -C "$tree" -cf "$B_WWW/big-$i.tar" bin data VERSION
	b_sign_artifact "$B_WWW/big-$i.tar"
}

# One rollout of big-I; records the phases unless B_NORECORD is set.
large_liid() {
	local i=$1
	large_artifact "$i"
	local sha
	sha=$(sha256sum "$B_WWW/big-$i.tar" | cut -d' ' -f1)
	b_publish "$(b_service_json big "big-$i.tar")"
	local n w cpu0 cpu1
	n=$(b_log_lines)
	w=$(wc -l <"$B_DIR/watch-large.log")
	# Whatever the last rollout left to the disk is written back before this
	# one starts, so that each pays only for its own bytes.
	sync
	cpu0=$(b_liid_cpu)
	local t0 t_start t_fetched t_unpacked t_active
	t0=$("$B_TOOL" post "$B_SOCK" /v1/sync)
	t_active=$(b_log_wait "$n" 'big: instance\.started' 300) || die "the large rollout $i did not start"
	cpu1=$(b_liid_cpu)
	b_log_wait "$n" 'big: rollout\.(succeeded|failed)' 60 >/dev/null
	t_start=$(b_log_wait "$n" 'big: rollout\.started' 1)
	read -r t_fetched t_unpacked < <(b_store_marks "$B_DIR/watch-large.log" "$w" "$sha") ||
		die "no store events for the large artifact $i"
	rm -f "$B_WWW/big-$((i - 1)).tar" "$B_WWW/big-$((i - 1)).tar.minisig"
	[[ -z ${B_NORECORD:-} ]] || return 0
	record large.liid.fetch "$(ms_between "$t_start" "$t_fetched")"
	record large.liid.unpack "$(ms_between "$t_fetched" "$t_unpacked")"
	record large.liid.total "$(ms_between "$t_start" "$t_unpacked")"
	record large.liid.cpu "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", (b - a) * 1000 }')"
}

# The same file by curl, and the parts of the job one by one.
large_curl() {
	local i=$1 t0 t1
	local url=$B_HTTP/big-$i.tar
	record large.curl "$(curl -fsS -o /dev/null -w '%{time_total}' "$url" |
		awk '{ printf "%.3f", $1 * 1000 }')"
	t0=$EPOCHREALTIME
	curl -fsS "$url" | sha256sum >/dev/null
	t1=$EPOCHREALTIME
	record large.curl_sha256 "$(ms_between "$t0" "$t1")"
	# The whole job by hand, durable like liid's, each step timed: download
	# to a file, both hashes liid computes, the signature, unpack, and
	# write it all to the disk.
	local dir=$B_DIR/big-by-hand
	rm -rf "$dir"
	mkdir -p "$dir/tree"
	sync
	step() { # KEY CMD...
		local key=$1 a b
		shift
		a=$EPOCHREALTIME
		"$@"
		b=$EPOCHREALTIME
		record "large.step.$key" "$(ms_between "$a" "$b")"
		by_hand=$(awk -v s="$by_hand" -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", s + (b - a) * 1000 }')
	}
	local by_hand=0
	step download curl -fsS -o "$dir/a.tar" "$url"
	step sha256 openssl dgst -sha256 -out /dev/null "$dir/a.tar"
	step blake2b openssl dgst -blake2b512 -out /dev/null "$dir/a.tar"
	curl -fsS -o "$dir/a.tar.minisig" "$url.minisig"
	step minisign minisign -V -q -p "$B_ARTIFACT_PUB" -m "$dir/a.tar"
	step untar tar -xf "$dir/a.tar" -C "$dir/tree"
	step sync sync -f "$dir/tree"
	record large.by_hand "$by_hand"
	rm -rf "$dir"
}

scenario_large() {
	local repeats=$1 mib=$2 i
	say "large artifact: ${mib} MiB, $repeats repeats"
	head -c "$((mib * 1024 * 1024))" /dev/urandom >"$B_DIR/blob"
	record large.mib "$mib"
	large_artifact 0
	b_publish "$(b_service_json big big-0.tar)"
	b_liid_start large 4
	b_log_wait 0 'big: rollout\.succeeded' 300 >/dev/null || die "the first large rollout failed"
	"$B_TOOL" watch "$B_STATE/store/tmp" "$B_STATE/store/sha256" >"$B_DIR/watch-large.log" &
	B_WATCH_PID=$!
	until grep -q watching "$B_DIR/watch-large.log" 2>/dev/null; do sleep 0.01; done

	for i in $(seq "$repeats"); do
		if ((i % 2)); then
			large_liid "$i"
			large_curl "$i"
		else
			large_curl "$((i - 1))"
			large_liid "$i"
		fi
	done
	# One more rollout under perf, for the profile in BENCHMARKS.md.
	if [[ -n ${B_PROFILE:-} ]]; then
		B_NORECORD=1 b_profile_liid "$B_DIR/perf-large.data" large_liid "$((repeats + 1))"
		b_profile_summary "$B_DIR/perf-large.data" 14 >"$B_DIR/profile-large.txt"
		b_profile_threads "$B_DIR/perf-large.data" "$B_LIID_PID" >>"$B_DIR/profile-large.txt"
	fi

	kill "$B_WATCH_PID" 2>/dev/null || true
	wait "$B_WATCH_PID" 2>/dev/null || true
	B_WATCH_PID=
	b_liid_stop
	b_systemctl stop 'lii-big@*' >/dev/null 2>&1 || true
	rm -rf "$B_DIR/blob" "$B_DIR/big-tree" "$B_WWW"/big-*.tar* "$B_STATE"
}
