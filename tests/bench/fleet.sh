# shellcheck shell=bash
# Scenario 7: a fleet on one machine. Five real liid nodes, each under a
# private systemd manager of its own, watching one 3-member etcd cluster
# (the integration tests' fleet, tests/harness/fleet.h, driven by
# fleetbench.c): the time from the etcd transaction that publishes a
# document until every node runs it (100% at once, no rollout block), and
# the requests the fleet makes to etcd while idle. Sourced by
# tests/bench/run; uses lib.sh.

# scenario_fleet NODES REPEATS IDLE_SECONDS
scenario_fleet() {
	local nodes=$1 repeats=$2 idle=$3 out=$B_DIR/fleet.tsv
	local tool=$B_BUILD/bench/fleetbench
	[[ -x $tool ]] || die "$tool is missing: build first"
	command -v etcd >/dev/null || die "etcd is missing (make deps installs etcd-server)"
	say "fleet: $nodes nodes, $repeats replacements, ${idle}s idle"
	: >"$out"
	# fleetbench keeps its folder under the build's itest/ while it runs,
	# and removes it (with every unit, cgroup and etcd member) at the end.
	LII_BENCH_FLEET_OUT=$out LII_BENCH_FLEET_NODES=$nodes LII_BENCH_FLEET_REPEATS=$repeats \
		LII_BENCH_FLEET_IDLE=$idle "$tool" >"$B_DIR/fleetbench.log" 2>&1 ||
		{
			cat "$B_DIR/fleetbench.log" >&2
			die "fleet: fleetbench failed"
		}
	cat "$out" >>"$B_RESULTS"
}
