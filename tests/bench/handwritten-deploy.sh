#!/usr/bin/env bash
# The hand-written baseline: the replacement a team would script without
# lii. Download the artifact and its signature, check the hash and the
# signature, unpack it, start the new version as a transient unit beside
# the old one, poll its health endpoint every 10 ms (liid's interval in the
# benchmark), and stop the old unit.
#
#   handwritten-deploy.sh URL SHA256 PUBKEY DEST UNIT OLD_UNIT PORT [systemd-run -p options]
#
# Runs against the user manager named by $XDG_RUNTIME_DIR. The unit gets
# the options passed after PORT (the benchmark passes liid's sandbox, so
# that both start the same unit).
set -euo pipefail

url=$1 sha256=$2 pubkey=$3 dest=$4 unit=$5 old_unit=$6 port=$7
shift 7

tmp=$(mktemp -d "$dest.download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

curl -fsS -o "$tmp/artifact.tar.gz" "$url"
curl -fsS -o "$tmp/artifact.tar.gz.minisig" "$url.minisig"
echo "$sha256  $tmp/artifact.tar.gz" | sha256sum --check --quiet --strict
minisign -V -q -p "$pubkey" -m "$tmp/artifact.tar.gz"

mkdir -p "$dest"
tar -xzf "$tmp/artifact.tar.gz" -C "$dest"

# The unit sees the tree where liid's instances see theirs: a dynamic user
# could not walk down to $dest when the checkout is under /root. systemd-run
# looks for the program on this side of the mount, hence env(1) in front.
systemd-run --user --quiet --unit "$unit" --slice lii.slice -p Type=exec \
	-p TemporaryFileSystem=/run/lii:ro -p BindReadOnlyPaths="$dest:/run/lii/artifact" \
	-p WorkingDirectory=/run/lii/artifact -E PORT="$port" "$@" \
	/usr/bin/env /run/lii/artifact/bin/hello --version-name "$unit"

for _ in $(seq 2000); do
	curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz" 2>/dev/null && break
	sleep 0.01
done
curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz"

if [[ -n $old_unit ]]; then
	systemctl --user stop "$old_unit"
fi
