/* Words for how a unit ended, from what systemd reports of it: the unit's
 * Result and its main process's exit code or signal, with systemd's own
 * exit codes (200–245: the service could not even be set up) named and
 * explained, so that a refused rollout says why without a look at the
 * journal. Pure: no bus, no loop. */
#pragma once

#include "systemd.h"

/* "203/EXEC: the executable could not be run", "exited with status 3",
 * "killed by SIGSEGV (core dumped)", "did not start in time"… followed by
 * " (result: exit-code)" when systemd gave a result. Malloc'ed; never NULL. */
char *exit_status_describe(const struct unit_status *st);
