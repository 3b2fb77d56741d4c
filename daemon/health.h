/* Health checking of an instance: probes (http: a 2xx answer passes; tcp: a
 * connection passes) repeated every interval until `passes` consecutive
 * passes, or until the deadline, whichever comes first. HTTP probes run
 * through curl multi on the loop, TCP probes through libuv, exec probes as
 * units of their own (see struct health_exec). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "curlm.h"
#include "desired.h"

struct health_check;

/* exec probes run the check command as a unit of its own, in the
 * instance's sandbox and environment, never in liid: the owner provides
 * that. start() begins one probe and returns a handle (or NULL when it
 * could not start, having set *ret_error); done() must then be called
 * exactly once with the verdict, unless cancel(handle) came first. */
typedef void (*health_exec_done)(void *probe, bool ok, const char *detail);
struct health_exec {
        void *(*start)(void *userdata, uint64_t timeout_usec, health_exec_done done, void *probe,
                       char **ret_error);
        void (*cancel)(void *handle);
        void *userdata;
};

/* ok: the instance passed. Otherwise reason says why the last probe failed
 * ("GET http://127.0.0.1:4000/healthz: HTTP 503 (2 of 2 passes needed, 0 in a row)").
 * reason is valid only during the call. */
typedef void (*health_done_cb)(struct health_check *h, bool ok, const char *reason, void *userdata);

/* Starts checking against target (already expanded: a URL for http,
 * "host:port" for tcp). deadline_mono_usec is the CLOCK_MONOTONIC time by
 * which the passes must be in; the first probe runs at once. cb is called
 * exactly once, later, unless this returns an error or the check is
 * cancelled. HEALTH_NONE passes on the next loop iteration. */
int health_check_start(uv_loop_t *loop, struct curlm *curlm, const struct health_spec *spec,
                       const char *target, const struct health_exec *exec,
                       uint64_t deadline_mono_usec, health_done_cb cb, void *userdata,
                       struct health_check **ret);
/* Watches an instance that passed: probes every interval until
 * until_mono_usec, and fails as soon as `passes` probes in a row have failed
 * (a flaky probe alone does not revert a good build). cb says ok when the
 * window closes without that. HEALTH_NONE just waits for the window to
 * close: then only the unit's own exit counts, which the caller watches. */
int health_watch_start(uv_loop_t *loop, struct curlm *curlm, const struct health_spec *spec,
                       const char *target, const struct health_exec *exec, uint64_t until_mono_usec,
                       health_done_cb cb, void *userdata, struct health_check **ret);
/* Stops a check; its callback is not called. Accepts NULL. */
void health_check_cancel(struct health_check *h);
