/* A cgroup of its own for each private systemd manager a test starts.
 * A manager takes the cgroup it starts in as its root, so managers started
 * side by side from one cgroup (test runs in parallel on one machine) would
 * share unit cgroups such as lii.slice/lii-hello@1.service, and stopping a
 * unit in one would kill its namesake's processes in the other. */
#pragma once

/* Moves the calling process into <hierarchy>/<name> of every cgroup
 * hierarchy (the one of a cgroup v2 mount, or each of a v1/hybrid one).
 * Best effort: a hierarchy that refuses (v1 cpuset wants its cpus set
 * first) is left as it is. Meant for the forked child before it execs. */
void h_cgroup_enter(const char *name);
/* Removes those cgroups (once the manager has exited). */
void h_cgroup_remove(const char *name);
