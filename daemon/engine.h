/* The engine: owns everything liid runs (systemd connection, store, curl,
 * source, API) and turns desired state into instances by reconciling. */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "config.h"

struct engine;

/* Opens the state, connects to systemd, starts the API and the source.
 * On failure the error has been logged. */
int engine_new(uv_loop_t *loop, const struct config *cfg, struct engine **ret);
/* Stops taking work, persists and closes every handle; the loop then
 * ends once libuv has closed them. Instances keep running: they belong to
 * systemd, not to liid. Accepts NULL. */
struct engine *engine_free(struct engine *e);
/* Nonzero when the engine stopped the loop because it cannot go on (it has
 * logged why); liid then exits with a failure so that systemd restarts it. */
bool engine_failed(const struct engine *e);
