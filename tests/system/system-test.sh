#!/usr/bin/env bash
# The system test: lii's Debian package on a booted Debian bookworm.
#
# Builds the .deb (twice, to check that the bytes repeat, and once more with
# a bumped version for the upgrade), makes a minimal bookworm root with
# mmdebstrap (cached per package list), boots it with systemd-nspawn and,
# inside, under the real system manager: installs the package, deploys the
# signed sample service from a file:// source and then from the host's nginx
# over HTTP, checks the instances' sandbox and the API's permissions, runs
# liid socket-activated and alone, upgrades the package while the instances
# serve (probed all along), then removes and purges it. The container shares
# the host's network, so the host probes the instances on 127.0.0.1.
#
# Usage: system-test.sh BUILD_DIR. Needs root. LII_KEEP_TEST_DIR=1 keeps
# BUILD_DIR/systest; LII_TEST_CACHE names the tarball cache folder.
set -euo pipefail

build=$(cd "${1:?usage: system-test.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$build/systest
cache=${LII_TEST_CACHE:-/var/cache/lii-tests}
suite=bookworm
machine=lii-systest-$$
# The highest systemd-analyze security exposure liid.service may have; the
# README records the figure.
max_exposure=${LII_MAX_EXPOSURE:-1.9}

say() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }
fail() {
	printf '[%4ds] FAIL: %s\n' "$SECONDS" "$*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || fail "run as root: the test boots a container"
for tool in mmdebstrap systemd-nspawn nsenter pgrep minisign nginx curl jq cpack dpkg-deb flock; do
	command -v "$tool" >/dev/null || fail "$tool is missing (run 'make deps')"
done
[[ -f $build/CPackConfig.cmake ]] || fail "$build is not a configured lii build folder"

nspawn_pid=
leader=
pidns=
nginx_pid=
prober_pid=
watchdog_pid=

# Runs a command inside the container, as root, with a clean environment so
# that nothing of the host's (LIID_SOCKET, locale, proxies) leaks in. No
# step may hang: the clean-up must get its turn.
in_ct() {
	timeout 180 nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
# The same as a given user, with that user's groups.
as_user() {
	local user=$1
	shift
	in_ct setpriv --reuid="$user" --regid="$user" --init-groups "$@"
}

cleanup() {
	local rc=$?
	set +e
	[[ -n $watchdog_pid ]] && kill "$watchdog_pid" 2>/dev/null
	[[ -n $prober_pid ]] && kill "$prober_pid" 2>/dev/null && wait "$prober_pid" 2>/dev/null
	if [[ $rc != 0 && -n $leader ]] && kill -0 "$leader" 2>/dev/null; then
		echo "---- liid's journal in the container ----" >&2
		in_ct journalctl --no-pager -o short-precise -u liid.service -u liid.socket \
			-u 'lii-*' -n 150 >&2
		echo "---- failed units ----" >&2
		in_ct systemctl --no-pager --failed >&2
	fi
	if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
		# SIGTERM makes nspawn halt the container cleanly.
		kill -TERM "$nspawn_pid"
		for _ in $(seq 300); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$nspawn_pid" 2>/dev/null; then
			echo "the container did not halt within 30 s; killing it" >&2
			kill -KILL "$nspawn_pid"
			# Without nspawn the container's init would live on; killing
			# it ends every process of its namespace.
			[[ -n $leader ]] && kill -KILL "$leader" 2>/dev/null
		fi
		wait "$nspawn_pid" 2>/dev/null
	fi
	[[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
	if [[ $rc != 0 && -f $work/console.log ]]; then
		echo "---- the container's console (last lines) ----" >&2
		tail -n 30 "$work/console.log" >&2
	fi
	if [[ -z ${LII_KEEP_TEST_DIR:-} ]]; then
		rm -rf "$work"
	else
		echo "kept $work" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# CTest kills a test that overruns its timeout without a chance to clean up,
# which would leave the container running: the test ends itself first.
watchdog() {
	local sleeper
	trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
	sleep "${LII_SYSTEST_LIMIT:-600}" &
	sleeper=$!
	wait "$sleeper" || exit 0
	echo "the system test ran for ${LII_SYSTEST_LIMIT:-600} s; stopping it" >&2
	kill -TERM $$
}
watchdog &
watchdog_pid=$!

rm -rf "$work"
mkdir -p -m 0755 "$work" "$work/share" "$work/share/www" "$work/share/deb" "$work/nginx"
mkdir -p -m 0700 "$work/keys"

# ---- the packages ---------------------------------------------------------
say "Building the Debian package"
cmake --build "$build" --target deb >"$work/build.log" 2>&1 || {
	tail -n 30 "$work/build.log" >&2
	fail "make deb failed"
}
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
deb=$build/deb/lii_${version}_amd64.deb
[[ -f $deb ]] || fail "no $deb after the build"
cp "$deb" "$work/share/deb/"
epoch=$(cat "$build/source-date-epoch")
cpack_again() { # OUTPUT_DIR [cpack args]
	local out=$1
	shift
	SOURCE_DATE_EPOCH=$epoch cpack -G DEB --config "$build/CPackConfig.cmake" -B "$out" "$@" \
		>>"$work/build.log" 2>&1 || fail "cpack failed; see $work/build.log"
}
cpack_again "$work/deb-again"
cmp "$deb" "$work/deb-again/lii_${version}_amd64.deb" ||
	fail "two builds of the package from one commit differ"
say "Built twice, same bytes: $(sha256sum <"$deb" | cut -c1-16)…"
upgrade_version=${version}+systest2
cpack_again "$work/deb-upgrade" -D CPACK_PACKAGE_VERSION="$upgrade_version"
cp "$work/deb-upgrade/lii_${upgrade_version}_amd64.deb" "$work/share/deb/"

contents=$(dpkg-deb -c "$deb")
for f in ./usr/sbin/liid ./usr/bin/liictl ./usr/libexec/lii/liictl-verify \
	./usr/libexec/lii/liictl-publish \
	./lib/systemd/system/liid.service \
	./lib/systemd/system/liid.socket ./usr/lib/sysusers.d/lii.conf ./usr/lib/tmpfiles.d/lii.conf \
	./usr/lib/sysctl.d/50-lii.conf \
	./etc/lii/liid.conf ./etc/lii/keys/desired.d/ ./etc/lii/keys/artifact.d/ \
	./usr/share/man/man8/liid.8.gz ./usr/share/man/man1/liictl.1.gz \
	./usr/share/man/man5/liid.conf.5.gz ./usr/share/man/man5/lii-desired-state.5.gz; do
	grep -q " $f\$" <<<"$contents" || fail "the package lacks $f"
done
if [[ -f $src/packaging/liictl.bash-completion ]]; then
	grep -q ' ./usr/share/bash-completion/completions/liictl$' <<<"$contents" ||
		fail "the package lacks the bash completion"
fi
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles | grep -qx /etc/lii/liid.conf ||
	fail "/etc/lii/liid.conf is not a conffile"

# ---- the root file system ---------------------------------------------------
# The package's own dependencies (alternatives left to systemd and dbus)
# come from the tarball, so that nothing is downloaded inside.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | grep -v '|' | sed 's/(.*)//; s/[[:space:]]//g')
packages=$(printf '%s\n' systemd systemd-sysv dbus passwd curl $depends | sort -u | paste -sd, -)
key=$(printf '%s %s %s\n' "$suite" "$(dpkg --print-architecture)" "$packages" | sha256sum | cut -c1-16)
tarball=$cache/$suite-$key.tar
mkdir -p "$cache"
(
	flock 9
	if [[ ! -s $tarball ]]; then
		say "Making a $suite root with mmdebstrap (cached as $tarball)"
		partial=$cache/.partial-$$.tar
		mmdebstrap --variant=minbase --format=tar --include="$packages" "$suite" "$partial" \
			>"$work/mmdebstrap.log" 2>&1 || {
			rm -f "$partial"
			tail -n 30 "$work/mmdebstrap.log" >&2
			fail "mmdebstrap failed"
		}
		mv "$partial" "$tarball"
		# Tarballs of package lists no build has asked for in a month go.
		find "$cache" -maxdepth 1 -name "$suite-*.tar" -mtime +30 -delete
	fi
	touch "$tarball"
) 9>"$cache/.lock"
root=$work/root
mkdir "$root"
tar -C "$root" -xf "$tarball"
echo lii-systest >"$root/etc/hostname"
say "Unpacked the root ($packages)"

# ---- boot -----------------------------------------------------------------
systemd-nspawn -D "$root" --boot --register=no --keep-unit -M "$machine" \
	--bind-ro="$work/share:/srv/lii-test" --console=read-only \
	</dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 100); do
	leader=$(pgrep -P "$nspawn_pid" || true)
	[[ -n $leader && $(cat "/proc/$leader/comm" 2>/dev/null) == systemd ]] && break
	leader=
	kill -0 "$nspawn_pid" 2>/dev/null || fail "systemd-nspawn exited; see the console log"
	sleep 0.1
done
[[ -n $leader ]] || fail "the container's systemd did not start"
pidns=$(readlink "/proc/$leader/ns/pid")
# systemctl answers once the manager's private socket exists, a moment
# after init starts; then it waits for the boot to finish.
state=
for _ in $(seq 100); do
	state=$(timeout 60 nsenter -t "$leader" -a systemctl is-system-running --wait 2>/dev/null || true)
	[[ -n $state ]] && break
	sleep 0.1
done
case $state in
running) ;;
degraded) in_ct systemctl --no-pager --failed ;;
*) fail "the container did not boot (state '$state')" ;;
esac
say "Booted $machine (init is host pid $leader): $state"

# ---- install --------------------------------------------------------------
in_ct dpkg -i "/srv/lii-test/deb/lii_${version}_amd64.deb" >"$work/dpkg.log" 2>&1 || {
	cat "$work/dpkg.log" >&2
	fail "dpkg -i failed"
}
in_ct systemctl enable --now liid.socket
in_ct getent group lii >/dev/null || fail "the group lii was not created"
[[ $(in_ct systemctl is-enabled liid.socket liid.service | paste -sd' ') == "enabled enabled" ]] ||
	fail "liid.socket and liid.service are not both enabled"
[[ $(in_ct systemctl is-active liid.socket liid.service | paste -sd' ') == "active active" ]] ||
	fail "liid.socket and liid.service are not both running after the installation"
[[ $(in_ct stat -c '%a %U %G' /run/lii/liid.sock) == "660 root lii" ]] ||
	fail "the socket is not 0660 root:lii"
for d in /etc/lii/keys/desired.d /etc/lii/keys/artifact.d /var/lib/lii; do
	in_ct test -d "$d" || fail "$d is missing"
done
in_ct liictl status >/dev/null || fail "liictl status fails right after the installation"
security=$(in_ct systemd-analyze security --no-pager liid.service)
exposure=$(sed -n 's/.*Overall exposure level for liid.service: \([0-9.]*\).*/\1/p' <<<"$security")
[[ -n $exposure ]] || fail "systemd-analyze security gave no figure"
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' || {
	grep '✗' <<<"$security" >&2
	fail "liid.service's exposure is $exposure, above $max_exposure"
}
say "Installed lii $version: liid.socket and liid.service run; exposure $exposure"

# ---- keys, source, first deploy -------------------------------------------
minisign -G -W -f -p "$work/keys/desired.pub" -s "$work/keys/desired.key" >/dev/null
minisign -G -W -f -p "$work/keys/artifact.pub" -s "$work/keys/artifact.key" >/dev/null
cp "$work/keys/desired.pub" "$work/keys/artifact.pub" "$work/share/"
for v in 1 2 3; do
	cp "$build/sample/hello-$v.tar.gz" "$work/share/www/"
	minisign -S -s "$work/keys/artifact.key" -m "$work/share/www/hello-$v.tar.gz" \
		-t "hello $v" >/dev/null
done

publications=0
# publish SERIAL VERSION [ARGS]: the hello service at that sample version
# (with more JSON arguments, such as ', "--crash"'; with $LISTEN set, the
# addresses it keeps, '"127.0.0.1:80"'), signed, renamed into place
# signature first.
publish() {
	local serial=$1 v=$2 args=${3:-} www=$work/share/www listen=
	[[ -z ${LISTEN:-} ]] || listen="\"listen\": [$LISTEN],"
	local art=$www/hello-$v.tar.gz
	cat >"$www/.desired.json.new" <<-EOF
		{"format": "lii.desired/1", "serial": $serial, "services": {"hello": {
		  "artifact": {"url": "hello-$v.tar.gz", "sha256": "$(sha256sum <"$art" | cut -c1-64)",
		               "size": $(stat -c %s "$art")},
		  "exec": ["bin/hello", "--version-name", "v$v"$args], $listen
		  "health": {"http": "http://127.0.0.1:\${PORT}/healthz", "interval": "200ms",
		             "passes": 2, "deadline": "30s"},
		  "stop_timeout": "5s"}}}
	EOF
	minisign -S -s "$work/keys/desired.key" -m "$www/.desired.json.new" -t "serial $serial" >/dev/null
	# nginx's ETag is the mtime in seconds and the size: every publication
	# gets its own mtime, as publications a while apart have.
	publications=$((publications + 1))
	touch -d "@$((1700000000 + publications))" "$www/.desired.json.new"
	mv "$www/.desired.json.new.minisig" "$www/desired.json.minisig"
	mv "$www/.desired.json.new" "$www/desired.json"
}

status_json() { in_ct liictl --json status; }
# expect_running GEN VERSION: hello runs generation GEN (or, with +GEN, a
# later one), healthy, serving "hello from vVERSION" to the host; sets gen,
# port, unit and main_pid.
expect_running() {
	local want=$1 v=$2 s
	s=$(status_json)
	[[ $(jq -r .services.hello.state <<<"$s") == running ]] || fail "hello is not running: $s"
	gen=$(jq -r .services.hello.current.generation <<<"$s")
	if [[ $want == +* ]]; then
		((gen > ${want#+})) || fail "hello runs generation $gen, not one after ${want#+}"
	else
		[[ $gen == "$want" ]] || fail "hello runs generation $gen, not $want"
	fi
	port=$(jq -r .services.hello.current.port <<<"$s")
	unit=$(jq -r .services.hello.current.unit <<<"$s")
	main_pid=$(jq -r .services.hello.current.main_pid <<<"$s")
	[[ $unit == "lii-hello@$gen.service" ]] || fail "unexpected unit $unit"
	local body
	body=$(curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$port/") ||
		fail "hello does not answer on 127.0.0.1:$port"
	[[ $body == "hello from v$v"* ]] || fail "hello answers '$body', not v$v"
}

in_ct cp /srv/lii-test/desired.pub /etc/lii/keys/desired.d/systest.pub
in_ct cp /srv/lii-test/artifact.pub /etc/lii/keys/artifact.d/systest.pub
# liictl verify finds its helper where the package put it.
in_ct liictl verify --key /etc/lii/keys/artifact.d /srv/lii-test/www/hello-1.tar.gz >/dev/null ||
	fail "liictl verify does not verify a signed artifact in the installed package"
in_ct sed -i -e 's|^url = .*|url = file:///srv/lii-test/www/desired.json|' \
	-e 's|^poll_interval = .*|poll_interval = 2s|' /etc/lii/liid.conf
in_ct systemctl restart liid.service
publish 1 1
in_ct liictl wait --timeout 60s --serial 1 hello || fail "v1 did not roll out"
expect_running 1 1
say "Deployed hello v1 from file:// as $unit on port $port"

# The instance runs under the system manager with the strict sandbox.
show=$(in_ct systemctl show "$unit" -p Slice -p DynamicUser -p ProtectSystem -p ProtectHome \
	-p NoNewPrivileges -p PrivateTmp -p PrivateDevices -p CapabilityBoundingSet \
	-p ProtectKernelTunables -p RestrictNamespaces -p StateDirectory -p ExecStart -p ActiveState)
for want in Slice=lii.slice DynamicUser=yes ProtectSystem=strict ProtectHome=yes \
	NoNewPrivileges=yes PrivateTmp=yes PrivateDevices=yes CapabilityBoundingSet= \
	ProtectKernelTunables=yes RestrictNamespaces=yes StateDirectory=lii/hello ActiveState=active; do
	grep -qx "$want" <<<"$show" || fail "$unit lacks $want: $show"
done
grep -q '^ExecStart={ path=/run/lii/artifact/bin/hello ' <<<"$show" ||
	fail "$unit does not run from /run/lii/artifact"
in_ct systemctl show -P BindReadOnlyPaths "$unit" |
	grep -q '^/var/lib/lii/store/sha256/[0-9a-f]\{64\}:/run/lii/artifact:rbind$' ||
	fail "$unit does not get its artifact from the store at /run/lii/artifact"
proc=$(in_ct cat "/proc/$main_pid/status")
uid=$(awk '/^Uid:/ { print $2 }' <<<"$proc")
[[ $uid != 0 ]] || fail "the instance runs as root"
grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$proc" || fail "the instance may gain privileges"
grep -q '^CapEff:[[:space:]]*0000000000000000' <<<"$proc" || fail "the instance has capabilities"
say "It runs as dynamic uid $uid in lii.slice with the strict sandbox"

# What the instance sees: its artifact, and nothing of liid's (liid.conf is
# world-readable on the host, so only the mount namespace hides it).
looks() { # PATH: whether the instance can read something there
	curl -sf --noproxy '*' --max-time 5 -o /dev/null "http://127.0.0.1:$port/look$1"
}
looks /run/lii/artifact/bin/hello || fail "the instance cannot read its own artifact"
for hidden in /var/lib/lii/state.json /var/lib/lii/state.d /var/lib/lii/store /etc/lii/liid.conf \
	/etc/lii/keys/desired.d /etc/lii/keys/artifact.d /srv/lii-test/www/desired.json; do
	in_ct test -e "$hidden" || fail "$hidden is missing in the container"
	! looks "$hidden" || fail "the instance can read $hidden"
done
say "It sees its artifact at /run/lii/artifact and none of liid's files"

publish 2 2
in_ct liictl wait --timeout 60s --serial 2 hello || fail "v2 did not roll out"
expect_running 2 2
! in_ct systemctl is-active --quiet lii-hello@1.service || fail "generation 1 still runs"
say "Replaced it with hello v2 ($unit)"

# liid's journal lines carry structured fields, so operators can select by
# service, instance and event. journald may still be writing the last lines.
in_ct journalctl --sync >/dev/null 2>&1 || true
journal_has() { # FIELD=VALUE… TEXT
	local text=${*: -1}
	in_ct journalctl --no-pager -o cat "${@:1:$#-1}" | grep -qF "$text"
}
journal_has LII_SERVICE=hello LII_EVENT=rollout.succeeded "generation 2 passed its checks" ||
	fail "journalctl LII_SERVICE=hello LII_EVENT=rollout.succeeded does not find generation 2"
journal_has LII_UNIT=lii-hello@1.service "retired lii-hello@1.service" ||
	fail "journalctl LII_UNIT=lii-hello@1.service does not find its retirement"
journal_has LII_SERVICE=hello LII_GENERATION=2 "hello v2 listening on" ||
	fail "journalctl LII_SERVICE=hello LII_GENERATION=2 does not show the instance's own output"
say "The journal answers journalctl LII_SERVICE=hello LII_EVENT=rollout.succeeded, and shows the instance's output"

# A release that crashes at start is refused with systemd's words and the
# instance's last output, read from the journal; v2 keeps serving.
publish 3 2 ', "--crash"'
in_ct liictl wait --timeout 60s --serial 3 hello >/dev/null 2>&1 || true
reason=$(status_json | jq -r .services.hello.last_rollout.reason)
[[ $reason == *"killed by SIGSEGV"* ]] || fail "the crash is not named: $reason"
[[ $reason == *'"hello: crashing as asked"'* ]] || fail "the reason does not quote the output: $reason"
[[ $(status_json | jq -r .services.hello.current.generation) == 2 ]] ||
	fail "the refused release displaced generation 2"
[[ $(curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$port/") == "hello from v2"* ]] ||
	fail "hello v2 does not answer after the refusal"
say "A crashing release was refused: $reason"

# ---- a privileged address kept through a replacement -------------------------
# The socket unit binds it as root; the DynamicUser instance only inherits.
low=
for p in 80 81 8 88 280 443; do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		low=$p
		break
	fi
done
[[ -n $low ]] || fail "no free privileged port for the listen check"
LISTEN="\"127.0.0.1:$low\"" publish 4 2
in_ct liictl wait --timeout 60s --serial 4 hello || fail "v2 with listen did not roll out"
expect_running 4 2
[[ $(curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$low/version") == v2 ]] ||
	fail "hello does not answer on its listed address 127.0.0.1:$low"
[[ $(in_ct systemctl show lii-hello@4.socket -p ActiveState --value) == active ]] ||
	fail "lii-hello@4.socket is not active"
[[ $(in_ct systemctl show "$unit" -p DynamicUser --value) == yes ]] || fail "$unit is not a DynamicUser"
in_ct liictl status hello | grep -qF "listen: [\"127.0.0.1:$low\"]" ||
	fail "liictl status hello does not list the address"
say "A DynamicUser instance serves the privileged address 127.0.0.1:$low through lii-hello@4.socket"

# ---- HTTP from the host's nginx ----------------------------------------------
http_port=
for p in $(shuf -i 20000-40000 -n 50); do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		http_port=$p
		break
	fi
done
[[ -n $http_port ]] || fail "no free port for nginx"
# Workers as root: the build may lie under a folder only root can search.
cat >"$work/nginx/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 64; }
http {
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$http_port; root $work/share/www; }
}
EOF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -e stderr -g 'daemon off;' \
	2>>"$work/nginx/error.log" &
nginx_pid=$!
for _ in $(seq 100); do
	curl -s --noproxy '*' -o /dev/null "http://127.0.0.1:$http_port/desired.json" && break
	kill -0 "$nginx_pid" 2>/dev/null || fail "nginx exited: $(cat "$work/nginx/error.log")"
	sleep 0.1
done
in_ct sed -i "s|^url = .*|url = http://127.0.0.1:$http_port/desired.json|" /etc/lii/liid.conf
in_ct systemctl restart liid.service
# The document's new URL changes where its relative artifact URLs point, so
# liid may roll the running version out again before serial 3 arrives.
publish 5 3
in_ct liictl wait --timeout 60s --serial 5 hello || fail "v3 did not roll out over HTTP"
expect_running +2 3
for path in /desired.json /desired.json.minisig /hello-3.tar.gz /hello-3.tar.gz.minisig; do
	grep -q "\"GET $path HTTP/1.1\" 200 " "$work/nginx/access.log" ||
		fail "liid did not fetch $path from nginx"
done
[[ -z $(in_ct systemctl list-units --all --plain --no-legend 'lii-*.socket') ]] ||
	fail "a socket unit is left after hello stopped listing addresses"
say "Deployed hello v3 over HTTP from the host's nginx ($unit); lii-hello@4.socket went with v2"

# ---- who may do what ---------------------------------------------------------
in_ct useradd --no-create-home --groups lii reader
in_ct useradd --no-create-home stranger
api() { # USER METHOD PATH: prints the HTTP status
	as_user "$1" curl -s -o /dev/null -w '%{http_code}' -X "$2" --unix-socket /run/lii/liid.sock \
		"http://lii$3" || true
}
in_ct liictl status >/dev/null || fail "root cannot read the status"
as_user reader liictl status >/dev/null || fail "a member of lii cannot read the status"
[[ $(api reader GET /v1/status) == 200 ]] || fail "a member of lii cannot GET /v1/status"
for path in /v1/services/hello/rollback /v1/sync /v1/pause; do
	[[ $(api reader POST $path) == 403 ]] || fail "a member of lii is not refused POST $path"
done
if as_user reader liictl rollback --help >/dev/null 2>&1; then
	rc=0
	as_user reader liictl rollback hello >/dev/null 2>&1 || rc=$?
	[[ $rc == 4 ]] || fail "liictl rollback as a member of lii exits $rc, not 4"
	rollback_by="liictl rollback (exit 4) and the API (403)"
else
	rollback_by="the API (403); this liictl has no rollback command yet"
fi
rc=0
as_user stranger liictl status >/dev/null 2>&1 || rc=$?
[[ $rc == 4 ]] || fail "liictl status as an unrelated user exits $rc, not 4"
[[ $(api stranger GET /v1/status) == 000 ]] || fail "an unrelated user can connect to the socket"
say "Root reads and acts; a lii member reads but is refused rollback by $rollback_by; others get exit 4"

# ---- socket activation and liid alone ---------------------------------------------
in_ct systemctl stop liid.socket liid.service
in_ct systemctl is-active --quiet "$unit" || fail "stopping liid stopped the instance"
in_ct systemctl start liid.service
[[ $(in_ct stat -c '%a %U %G' /run/lii/liid.sock) == "660 root lii" ]] ||
	fail "liid alone made its socket $(in_ct stat -c '%a %U %G' /run/lii/liid.sock), not 660 root lii"
as_user reader liictl status >/dev/null || fail "liid alone does not serve a member of lii"
in_ct systemctl stop liid.service
in_ct systemctl start liid.socket
in_ct systemctl is-active --quiet liid.service && fail "liid.service started without a client"
in_ct liictl status >/dev/null || fail "a client did not activate liid through the socket"
in_ct systemctl is-active --quiet liid.service || fail "liid.service is not running after activation"
in_ct liictl wait --timeout 30s hello >/dev/null || fail "hello is not running after the restarts"
http_gen=$gen
expect_running "$http_gen" 3
say "liid works alone (made its socket 0660 root:lii) and socket-activated; hello kept running"

# ---- upgrade in place while the instance serves ----------------------------------
old_liid=$(in_ct systemctl show -P MainPID liid.service)
old_unit_pid=$(in_ct systemctl show -P MainPID "$unit")
probe_log=$work/probes
(
	ok=0 failed=0
	while [[ ! -e $work/stop-probing ]]; do
		if curl -sf --noproxy '*' --max-time 2 -o /dev/null "http://127.0.0.1:$port/healthz"; then
			ok=$((ok + 1))
		else
			failed=$((failed + 1))
			echo "probe failed at $(date +%T.%N)" >>"$probe_log.failures"
		fi
		echo "$ok $failed" >"$probe_log"
		sleep 0.05
	done
) &
prober_pid=$!
sleep 1
in_ct dpkg -i "/srv/lii-test/deb/lii_${upgrade_version}_amd64.deb" >"$work/dpkg-upgrade.log" 2>&1 || {
	cat "$work/dpkg-upgrade.log" >&2
	fail "the upgrade failed"
}
[[ $(in_ct dpkg-query -W -f='${Version}' lii) == "$upgrade_version" ]] || fail "lii was not upgraded"
in_ct grep -q "^url = http://127.0.0.1:$http_port/desired.json" /etc/lii/liid.conf ||
	fail "the upgrade lost the edited /etc/lii/liid.conf"
in_ct systemctl is-active --quiet liid.service || fail "liid.service is not running after the upgrade"
new_liid=$(in_ct systemctl show -P MainPID liid.service)
[[ $new_liid != "$old_liid" ]] || fail "the upgrade did not restart liid"
for _ in $(seq 100); do
	[[ $(status_json | jq -r .services.hello.current.healthy) == true ]] && break
	sleep 0.1
done
expect_running "$http_gen" 3
[[ $main_pid == "$old_unit_pid" && $(in_ct systemctl show -P MainPID "$unit") == "$old_unit_pid" ]] ||
	fail "the instance was restarted by the upgrade (main pid $old_unit_pid, now $main_pid)"
in_ct journalctl --no-pager -u liid.service _PID="$new_liid" | grep -q "Adopting $unit" ||
	fail "the new liid did not log that it adopted $unit"
sleep 2
touch "$work/stop-probing"
wait "$prober_pid"
prober_pid=
read -r probes_ok probes_failed <"$probe_log"
((probes_failed == 0)) || fail "$probes_failed of $((probes_ok + probes_failed)) probes failed during the upgrade: $(cat "$probe_log.failures")"
((probes_ok >= 20)) || fail "only $probes_ok probes ran during the upgrade"
say "Upgraded to $upgrade_version: liid $old_liid → $new_liid adopted $unit (pid $main_pid); $probes_ok probes, none failed"

[[ $(in_ct systemctl show -P NRestarts liid.service) == 0 ]] || fail "liid.service was restarted by systemd"
[[ $(in_ct systemctl show -P WatchdogUSec liid.service) == 30s ]] || fail "WatchdogSec is not 30s"

# ---- remove and purge ----------------------------------------------------------
# Something of the service's own in its StateDirectory, which it owns.
data=/var/lib/private/lii/hello
in_ct test -L /var/lib/lii/hello || fail "/var/lib/lii/hello is not systemd's link to $data"
in_ct sh -c "echo kept >$data/marker && chown --reference=$data $data/marker"
in_ct dpkg -r lii >"$work/dpkg-remove.log" 2>&1 || fail "dpkg -r failed: $(cat "$work/dpkg-remove.log")"
! in_ct systemctl is-active --quiet liid.service || fail "liid runs after the removal"
in_ct systemctl is-active --quiet "$unit" || fail "the removal stopped the instance"
in_ct test -f /etc/lii/liid.conf || fail "the removal deleted the configuration"
in_ct dpkg --purge lii >"$work/dpkg-purge.log" 2>&1 || fail "dpkg --purge failed: $(cat "$work/dpkg-purge.log")"
! in_ct systemctl is-active --quiet "$unit" || fail "the purge left the instance running"
! in_ct test -e /var/lib/lii || fail "the purge left /var/lib/lii: $(in_ct ls -la /var/lib/lii)"
! in_ct test -e /etc/lii/liid.conf || fail "the purge left /etc/lii/liid.conf"
# What is not liid's stays, and the purge says so and how to delete it.
[[ $(in_ct cat "$data/marker") == kept ]] || fail "the purge deleted the service's data in $data"
in_ct test -f /etc/lii/keys/desired.d/systest.pub || fail "the purge deleted the installed keys"
in_ct getent group lii >/dev/null || fail "the purge deleted the group lii"
for said in "lii: kept the services' own data (StateDirectory=lii/<service>) in /var/lib/private/lii:" \
	"  $data" "  /etc/lii/keys/desired.d/systest.pub" "lii: kept the group lii (members: reader)" \
	"lii: to delete them too: rm -rf /var/lib/private/lii /etc/lii && groupdel lii"; do
	grep -qxF "$said" "$work/dpkg-purge.log" || fail "the purge did not say '$said': $(cat "$work/dpkg-purge.log")"
done
say "Removed (instances kept serving), then purged (instances stopped, state gone; service data, keys and group kept, and said so)"

# Installed again, lii hands the kept data back to the service.
in_ct dpkg -i "/srv/lii-test/deb/lii_${version}_amd64.deb" >"$work/dpkg-again.log" 2>&1 || {
	cat "$work/dpkg-again.log" >&2
	fail "installing lii again after the purge failed"
}
in_ct sed -i -e 's|^url = .*|url = file:///srv/lii-test/www/desired.json|' /etc/lii/liid.conf
in_ct systemctl restart liid.service
in_ct liictl wait --timeout 60s --serial 3 hello || fail "v3 did not roll out after installing lii again"
expect_running 1 3
uid=$(in_ct awk '/^Uid:/ { print $2 }' "/proc/$main_pid/status")
[[ $(in_ct stat -c %u "$data/marker") == "$uid" && $(in_ct cat /var/lib/lii/hello/marker) == kept ]] ||
	fail "the service (uid $uid) was not handed its kept data: $(in_ct ls -ln "$data")"
say "Installed again: $unit (uid $uid) has its kept data"

# ---- tear down -------------------------------------------------------------------
kill -TERM "$nspawn_pid"
for _ in $(seq 300); do
	kill -0 "$nspawn_pid" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$nspawn_pid" 2>/dev/null && fail "the container did not halt within 30 s"
wait "$nspawn_pid" || fail "systemd-nspawn exited with $?"
nspawn_pid=
leader=
kill "$nginx_pid"
wait "$nginx_pid" 2>/dev/null || true
nginx_pid=
for p in /proc/[0-9]*; do
	if [[ $(readlink "$p/ns/pid" 2>/dev/null) == "$pidns" ]]; then
		fail "process ${p#/proc/} ($(cat "$p/comm" 2>/dev/null)) of the container still runs"
	fi
done
say "PASS: the container halted and nothing of it runs"
