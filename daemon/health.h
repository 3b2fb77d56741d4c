/* Health checking of an instance: probes (http: a 2xx answer passes; tcp: a
 * connection passes) repeated every interval until `passes` consecutive
 * passes, or until the deadline, whichever comes first. HTTP probes run
 * through curl multi on the loop, TCP probes through libuv. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "curlm.h"
#include "desired.h"

struct health_check;

/* ok: the instance passed. Otherwise reason says why the last probe failed
 * ("GET http://127.0.0.1:4000/healthz: HTTP 503 (2 of 2 passes needed, 0 in a row)").
 * reason is valid only during the call. */
typedef void (*health_done_cb)(struct health_check *h, bool ok, const char *reason,
                               void *userdata);

/* Starts checking against target (already expanded: a URL for http,
 * "host:port" for tcp). deadline_mono_usec is the CLOCK_MONOTONIC time by
 * which the passes must be in; the first probe runs at once. cb is called
 * exactly once, later, unless this returns an error or the check is
 * cancelled. HEALTH_NONE passes on the next loop iteration. */
int health_check_start(uv_loop_t *loop, struct curlm *curlm, const struct health_spec *spec,
                       const char *target, uint64_t deadline_mono_usec, health_done_cb cb,
                       void *userdata, struct health_check **ret);
/* Stops a check; its callback is not called. Accepts NULL. */
void health_check_cancel(struct health_check *h);
