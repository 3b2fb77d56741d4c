#!/bin/sh
# Runs a private systemd user manager in a mount namespace of its own, the
# way design.md describes ("Where a real systemd comes from in tests"), for
# the tests, the demo and the benchmarks alike.
#
#   private-manager.sh RUNTIME_DIR CONFIG_HOME [systemd options...]
#
# RUNTIME_DIR becomes XDG_RUNTIME_DIR (the manager's private bus socket is
# RUNTIME_DIR/systemd/private) and CONFIG_HOME XDG_CONFIG_HOME, where a user
# manager keeps StateDirectory=. The caller puts the process in its cgroup
# first: a manager takes the cgroup it starts in as its root.
set -eu
if [ "${LII_PRIVATE_MANAGER_NS:-}" != 1 ]; then
        LII_PRIVATE_MANAGER_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
runtime=$1
config=$2
shift 2
# The host's /run/systemd (if any) stays out of the manager's sight.
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir /run/systemd/system
# InaccessiblePaths= mounts nodes from /run/systemd/inaccessible over what it
# hides. The system manager makes them; a user manager makes its own under
# XDG_RUNTIME_DIR, which is where they are found here too.
ln -s "$runtime/systemd/inaccessible" /run/systemd/inaccessible
unset LII_PRIVATE_MANAGER_NS
XDG_RUNTIME_DIR=$runtime XDG_CONFIG_HOME=$config exec /lib/systemd/systemd --user "$@"
