/* Probes and the pass/deadline logic; see health.h. */
#include "health.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

struct health_check {
        uv_loop_t *loop;
        struct curlm *curlm;
        enum health_kind kind;
        char *target;
        uint64_t interval_usec, timeout_usec, deadline_mono_usec;
        unsigned passes_needed, passes;
        bool watch;        /* watch mode: ok at the deadline, failed after passes_needed failures */
        unsigned failures; /* in a row, in watch mode */
        health_done_cb cb;
        void *userdata;

        uv_timer_t timer; /* next probe, or the deadline */
        /* The timer is set for the deadline: when it fires the check ends,
         * even if the loop's clock (milliseconds, cached) says a hair
         * before it. */
        bool timer_is_deadline;
        uv_timer_t tcp_timer; /* one TCP probe's timeout */
        uv_tcp_t tcp;
        uv_connect_t connect;
        bool tcp_open;
        CURL *easy;
        struct health_exec exec;
        void *exec_handle; /* a running exec probe */
        bool probing;
        /* Before the instance first accepts a connection, a refused probe
         * is retried sooner than the interval: from 1 ms, doubling. */
        bool refused;        /* the last probe found nothing listening */
        bool accepted_once;  /* some probe found something listening */
        uint64_t retry_usec; /* the next early retry's delay */
        char last_error[512];
        unsigned open_handles; /* freed when the last one closes */
};

static void probe_start(struct health_check *h);

static void on_handle_closed(uv_handle_t *handle)
{
        struct health_check *h = handle->data;
        if (--h->open_handles == 0) {
                free(h->target);
                free(h);
        }
}

static void close_tcp(struct health_check *h)
{
        if (h->tcp_open) {
                h->tcp_open = false;
                uv_close((uv_handle_t *)&h->tcp, on_handle_closed);
        }
        uv_timer_stop(&h->tcp_timer);
}

/* Releases everything; the memory goes when libuv has closed the handles. */
static void health_check_release(struct health_check *h)
{
        if (h->exec_handle) {
                h->exec.cancel(h->exec_handle);
                h->exec_handle = NULL;
        }
        if (h->easy) {
                curlm_remove(h->curlm, h->easy);
                curl_easy_cleanup(h->easy);
                h->easy = NULL;
        }
        close_tcp(h);
        uv_close((uv_handle_t *)&h->timer, on_handle_closed);
        uv_close((uv_handle_t *)&h->tcp_timer, on_handle_closed);
}

void health_check_cancel(struct health_check *h)
{
        if (h)
                health_check_release(h);
}

static void finish(struct health_check *h, bool ok)
{
        char reason[768];
        if (ok)
                reason[0] = '\0';
        else if (h->watch)
                snprintf(reason, sizeof reason, "%s (%u probes in a row failed while watched)",
                         h->last_error, h->failures);
        else
                snprintf(reason, sizeof reason, "%s (%u in a row of %u needed, deadline passed)",
                         h->last_error[0] ? h->last_error : "no probe answered in time", h->passes,
                         h->passes_needed);
        health_done_cb cb = h->cb;
        void *userdata = h->userdata;
        health_check_release(h);
        cb(h, ok, ok ? NULL : reason, userdata);
}

static void on_timer(uv_timer_t *t)
{
        struct health_check *h = t->data;
        if (h->timer_is_deadline || now_monotonic_usec() >= h->deadline_mono_usec) {
                /* The end of a watch window is a pass; of a check, a fail. */
                finish(h, h->watch);
                return;
        }
        if (h->watch && h->kind == HEALTH_NONE) {
                h->timer_is_deadline = true;
                uv_timer_start(&h->timer, on_timer,
                               (h->deadline_mono_usec - now_monotonic_usec() + USEC_PER_MSEC - 1) /
                                   USEC_PER_MSEC,
                               0);
                return;
        }
        probe_start(h);
}

/* The delay until the next probe: one interval, except while a fresh
 * instance has not bound its port yet. Then a refused connection (cheap,
 * on loopback) is retried from 1 ms, doubling up to the interval, so that
 * the instance is found about when it starts listening and not up to one
 * interval later. */
static uint64_t next_delay(struct health_check *h)
{
        if (!h->refused || h->accepted_once || h->watch)
                return h->interval_usec;
        uint64_t delay = h->retry_usec ? h->retry_usec : USEC_PER_MSEC;
        if (delay >= h->interval_usec)
                return h->interval_usec;
        h->retry_usec = delay * 2;
        return delay;
}

/* Schedules the next probe (see next_delay()), unless the deadline comes
 * first; then the timer fires at the deadline and ends the check. */
static void probe_done(struct health_check *h, bool ok)
{
        h->probing = false;
        if (!h->refused)
                h->accepted_once = true;
        if (h->watch) {
                h->failures = ok ? 0 : h->failures + 1;
                if (h->failures >= h->passes_needed) {
                        finish(h, false);
                        return;
                }
        } else if (ok) {
                h->last_error[0] = '\0';
                if (++h->passes >= h->passes_needed) {
                        finish(h, true);
                        return;
                }
        } else {
                h->passes = 0;
        }
        uint64_t now = now_monotonic_usec();
        if (now >= h->deadline_mono_usec) {
                finish(h, h->watch);
                return;
        }
        uint64_t delay = next_delay(h);
        h->timer_is_deadline = now + delay >= h->deadline_mono_usec;
        if (h->timer_is_deadline)
                delay = h->deadline_mono_usec - now;
        uv_timer_start(&h->timer, on_timer, (delay + USEC_PER_MSEC - 1) / USEC_PER_MSEC, 0);
}

static void on_http_done(CURL *easy, CURLcode result, void *userdata)
{
        struct health_check *h = userdata;
        long code = 0;
        bool ok = false;
        h->refused = result == CURLE_COULDNT_CONNECT;
        if (result != CURLE_OK) {
                snprintf(h->last_error, sizeof h->last_error, "GET %s: %s", h->target,
                         curl_easy_strerror(result));
        } else {
                curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
                ok = code >= 200 && code < 300;
                if (!ok)
                        snprintf(h->last_error, sizeof h->last_error, "GET %s: HTTP %ld", h->target,
                                 code);
        }
        curl_easy_cleanup(easy);
        h->easy = NULL;
        probe_done(h, ok);
}

/* Probe bodies are not needed; this keeps memory flat whatever the
 * instance answers. */
static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        return size * nmemb;
}

static void probe_http(struct health_check *h)
{
        CURL *easy = curl_easy_init();
        if (!easy) {
                snprintf(h->last_error, sizeof h->last_error, "GET %s: out of memory", h->target);
                probe_done(h, false);
                return;
        }
        curl_easy_setopt(easy, CURLOPT_URL, h->target);
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(h->timeout_usec / USEC_PER_MSEC));
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "liid-health");
        /* The body is discarded: curl's smallest receive buffer (1 KiB)
         * instead of its 16 KiB default, allocated per transfer. */
        curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 1024L);
        if (curlm_add(h->curlm, easy, on_http_done, h) < 0) {
                curl_easy_cleanup(easy);
                snprintf(h->last_error, sizeof h->last_error, "GET %s: cannot start", h->target);
                probe_done(h, false);
                return;
        }
        h->easy = easy;
}

static void on_tcp_timeout(uv_timer_t *t)
{
        struct health_check *h = t->data;
        snprintf(h->last_error, sizeof h->last_error, "connect %s: timed out", h->target);
        /* Closing the handle cancels the connect request, whose callback
         * then sees UV_ECANCELED and ignores it. */
        close_tcp(h);
        probe_done(h, false);
}

static void on_tcp_connected(uv_connect_t *req, int status)
{
        struct health_check *h = req->data;
        if (status == UV_ECANCELED)
                return;
        uv_timer_stop(&h->tcp_timer);
        h->refused = status == UV_ECONNREFUSED;
        if (status < 0)
                snprintf(h->last_error, sizeof h->last_error, "connect %s: %s", h->target,
                         uv_strerror(status));
        close_tcp(h);
        probe_done(h, status == 0);
}

/* Parses "host:port" or "[v6]:port" where host is an address or "localhost". */
static int parse_tcp_target(const char *target, struct sockaddr_storage *ret)
{
        char host[128];
        const char *colon = strrchr(target, ':');
        if (!colon || colon == target || (size_t)(colon - target) >= sizeof host)
                return -EINVAL;
        memcpy(host, target, (size_t)(colon - target));
        host[colon - target] = '\0';
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535)
                return -EINVAL;
        if (strcmp(host, "localhost") == 0)
                strcpy(host, "127.0.0.1");
        size_t n = strlen(host);
        if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
                host[n - 1] = '\0';
                return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ret) < 0 ? -EINVAL
                                                                                        : 0;
        }
        return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ret) < 0 ? -EINVAL : 0;
}

static void probe_tcp(struct health_check *h)
{
        struct sockaddr_storage sa;
        if (parse_tcp_target(h->target, &sa) < 0) {
                snprintf(h->last_error, sizeof h->last_error,
                         "connect %s: not an address:port (numeric address or localhost)",
                         h->target);
                probe_done(h, false);
                return;
        }
        uv_tcp_init(h->loop, &h->tcp);
        h->tcp.data = h;
        h->tcp_open = true;
        h->open_handles++;
        h->connect.data = h;
        int r = uv_tcp_connect(&h->connect, &h->tcp, (struct sockaddr *)&sa, on_tcp_connected);
        if (r < 0) {
                snprintf(h->last_error, sizeof h->last_error, "connect %s: %s", h->target,
                         uv_strerror(r));
                close_tcp(h);
                probe_done(h, false);
                return;
        }
        uv_timer_start(&h->tcp_timer, on_tcp_timeout, h->timeout_usec / USEC_PER_MSEC, 0);
}

static void on_exec_done(void *probe, bool ok, const char *detail)
{
        struct health_check *h = probe;
        h->exec_handle = NULL;
        if (!ok)
                snprintf(h->last_error, sizeof h->last_error, "exec check: %s", detail);
        probe_done(h, ok);
}

static void probe_exec(struct health_check *h)
{
        _cleanup_free_ char *error = NULL;
        h->exec_handle = h->exec.start(h->exec.userdata, h->timeout_usec, on_exec_done, h, &error);
        if (!h->exec_handle) {
                snprintf(h->last_error, sizeof h->last_error, "exec check: %s",
                         error ? error : "cannot start");
                probe_done(h, false);
        }
}

static void probe_start(struct health_check *h)
{
        h->probing = true;
        h->refused = false;
        switch (h->kind) {
        case HEALTH_HTTP:
                probe_http(h);
                break;
        case HEALTH_TCP:
                probe_tcp(h);
                break;
        case HEALTH_EXEC:
                probe_exec(h);
                break;
        default:
                /* No health check: being active is being healthy. */
                probe_done(h, true);
                break;
        }
}

static int start(uv_loop_t *loop, struct curlm *curlm, const struct health_spec *spec,
                 const char *target, const struct health_exec *exec, uint64_t deadline_mono_usec,
                 bool watch, health_done_cb cb, void *userdata, struct health_check **ret)
{
        if (spec->kind == HEALTH_EXEC && (!exec || !exec->start || !exec->cancel))
                return -EINVAL;
        struct health_check *h = xcalloc(1, sizeof *h);
        h->loop = loop;
        h->curlm = curlm;
        h->kind = spec->kind;
        h->target = xstrdup(target ? target : "");
        h->interval_usec = spec->interval_usec ? spec->interval_usec : USEC_PER_SEC;
        h->timeout_usec = spec->timeout_usec ? spec->timeout_usec : 2 * USEC_PER_SEC;
        h->passes_needed = spec->kind == HEALTH_NONE ? 1 : (spec->passes ? spec->passes : 1);
        h->deadline_mono_usec = deadline_mono_usec;
        h->watch = watch;
        if (exec)
                h->exec = *exec;
        h->cb = cb;
        h->userdata = userdata;
        uv_timer_init(loop, &h->timer);
        uv_timer_init(loop, &h->tcp_timer);
        h->timer.data = h->tcp_timer.data = h;
        h->open_handles = 2;
        /* The first probe runs from the loop, so that cb is never called
         * before this function has returned. */
        uv_timer_start(&h->timer, on_timer, 0, 0);
        *ret = h;
        return 0;
}

int health_check_start(uv_loop_t *loop, struct curlm *curlm, const struct health_spec *spec,
                       const char *target, const struct health_exec *exec,
                       uint64_t deadline_mono_usec, health_done_cb cb, void *userdata,
                       struct health_check **ret)
{
        return start(loop, curlm, spec, target, exec, deadline_mono_usec, false, cb, userdata, ret);
}

int health_watch_start(uv_loop_t *loop, struct curlm *curlm, const struct health_spec *spec,
                       const char *target, const struct health_exec *exec, uint64_t until_mono_usec,
                       health_done_cb cb, void *userdata, struct health_check **ret)
{
        return start(loop, curlm, spec, target, exec, until_mono_usec, true, cb, userdata, ret);
}
