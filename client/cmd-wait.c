/* liictl wait [--timeout DURATION] [--serial N] [SERVICE...]: returns once
 * every named service (or every service of the desired state) runs its
 * desired spec, after liid accepted document serial N if given; fails as
 * soon as one of them had that spec refused, or document N was, and gives
 * up at the timeout. The waiting itself, ctl_wait(), also serves the
 * actions that follow what they started (rollback --wait, replace --wait). */
#include "liictl.h"

#include <getopt.h>
#include <string.h>

/* wait reads the status, then follows /v1/events from the newest event that
 * status knew of, and reads the status again when something happens. A
 * stream also ends after this long without events, as a safety net. */
#define WAIT_FOLLOW_MAX_USEC (10 * USEC_PER_SEC)

static const char *spec_of(json_object *svc, const char *part)
{
        return json_get_string(json_get(svc, part, json_type_object), LII_F_SPEC_SHA256);
}

static enum wait_verdict service_verdict(json_object *svc)
{
        const char *state = json_get_string(svc, LII_F_STATE);
        const char *current = spec_of(svc, LII_F_CURRENT);
        const char *desired = spec_of(svc, LII_F_DESIRED);
        bool same = current && desired && strcmp(current, desired) == 0;

        if (state && strcmp(state, "running") == 0 && same)
                return WAIT_READY;
        /* A fleet rollout that keeps this node on what it runs, outside
         * the canary or halted, has settled it for now (contract). */
        const char *rollout =
            json_get_string(json_get(svc, LII_F_ROLLOUT, json_type_object), LII_F_STATE);
        if (state && strcmp(state, "running") == 0 && rollout &&
            (strcmp(rollout, "outside-canary") == 0 || strcmp(rollout, "halted") == 0))
                return WAIT_READY;
        /* liid does not retry a refused spec until the desired state
         * changes, so waiting longer cannot help. */
        if (state && strcmp(state, "failed") == 0 && desired && !same)
                return WAIT_REFUSED;
        return WAIT_PENDING;
}

/* What `liictl wait` waits for. */
struct wait_for {
        char **names; /* none: every service of the desired state */
        size_t n_names;
        int64_t min_serial; /* -1: any */
};

/* Looks at one status document. Appends "name (state)" of every service
 * not there yet to pending and says on stderr which were refused. */
static enum wait_verdict status_verdict(json_object *doc, FILE *pending, void *userdata)
{
        const struct wait_for *w = userdata;
        char **names = w->names;
        size_t n_names = w->n_names;
        int64_t min_serial = w->min_serial;
        json_object *services = json_get(doc, LII_F_SERVICES, json_type_object);
        bool any_pending = false, any_refused = false;
        const char *sep = "";

        if (min_serial >= 0) {
                /* A publisher waits for its own document: until liid has
                 * accepted it, what status says belongs to an older one. */
                json_object *source = json_get(doc, LII_F_SOURCE, json_type_object);
                json_object *serial = json_get(source, LII_F_SERIAL, json_type_int);
                /* liid does not look at a refused document again until it
                 * changes, so the publisher must publish anew. */
                json_object *refused = json_get(source, LII_F_REFUSED_SERIAL, json_type_int);
                if (refused && json_object_get_int64(refused) == min_serial) {
                        const char *error = json_get_string(source, LII_F_ERROR);
                        _cleanup_free_ char *e = ctl_printable(error ? error : "no reason given");
                        fprintf(stderr, "liictl: desired-state serial %lld was refused: %s\n",
                                (long long)min_serial, e);
                        return WAIT_REFUSED;
                }
                if (!serial || json_object_get_int64(serial) < min_serial) {
                        const char *error = json_get_string(source, LII_F_ERROR);
                        _cleanup_free_ char *e = error ? ctl_printable(error) : NULL;
                        fprintf(pending, "desired-state serial %lld (liid has %s%s%s)",
                                (long long)min_serial,
                                serial ? json_object_get_string(serial) : "none", e ? "; " : "",
                                e ? e : "");
                        return WAIT_PENDING;
                }
        }

        if (n_names == 0) {
                /* Before the first fetch the document lists no services,
                 * which must not count as all of them running. */
                json_object *source = json_get(doc, LII_F_SOURCE, json_type_object);
                if (!json_get_string(source, LII_F_FETCHED_AT)) {
                        const char *error = json_get_string(source, LII_F_ERROR);
                        _cleanup_free_ char *e = error ? ctl_printable(error) : NULL;
                        fprintf(pending, "the desired state (not fetched yet%s%s)", e ? ": " : "",
                                e ? e : "");
                        return WAIT_PENDING;
                }
        }

        size_t n =
            n_names > 0 ? n_names : (services ? (size_t)json_object_object_length(services) : 0);
        _cleanup_free_ const char **list = xcalloc(n + 1, sizeof *list);
        if (n_names > 0) {
                for (size_t i = 0; i < n_names; i++)
                        list[i] = names[i];
        } else {
                size_t i = 0;
                json_object_object_foreach(services, name, svc)
                {
                        /* A service no longer in the desired state is being
                         * stopped; there is nothing to wait for. */
                        if (i < n && spec_of(svc, LII_F_DESIRED))
                                list[i++] = name;
                }
                n = i;
        }

        for (size_t i = 0; i < n; i++) {
                json_object *svc = json_get(services, list[i], json_type_object);
                if (!svc) {
                        /* liid may not have picked a named service up yet. */
                        fprintf(pending, "%s%s (not known yet)", sep, list[i]);
                        sep = ", ";
                        any_pending = true;
                        continue;
                }
                _cleanup_free_ char *state = ctl_printable(json_get_string(svc, LII_F_STATE));
                switch (service_verdict(svc)) {
                case WAIT_READY:
                        break;
                case WAIT_PENDING:
                        fprintf(pending, "%s%s (%s)", sep, list[i], *state ? state : "unknown");
                        sep = ", ";
                        any_pending = true;
                        break;
                case WAIT_REFUSED: {
                        json_object *lr = json_get(svc, LII_F_LAST_ROLLOUT, json_type_object);
                        const char *reason = json_get_string(lr, LII_F_REASON);
                        _cleanup_free_ char *r = ctl_printable(reason ? reason : "no reason given");
                        fprintf(stderr, "liictl: %s: its desired spec failed: %s\n", list[i], r);
                        any_refused = true;
                        break;
                }
                }
        }
        if (any_refused)
                return WAIT_REFUSED;
        return any_pending ? WAIT_PENDING : WAIT_READY;
}

/* Any event is a reason to look at the status again: the stream stops at
 * the first one. */
static int on_event(char *line, size_t len, void *userdata)
{
        return -EAGAIN;
}

static int timed_out(uint64_t timeout, const char *pending)
{
        if (timeout == 0) {
                fprintf(stderr, "liictl: not there yet: %s\n", pending);
        } else {
                char d[32];
                format_duration(timeout, d, sizeof d);
                fprintf(stderr, "liictl: timed out after %s waiting for %s\n", d, pending);
        }
        return LIICTL_EXIT_TIMEOUT;
}

int ctl_parse_timeout(const struct cmd *cmd, const char *arg, uint64_t *ret_usec)
{
        if (parse_duration(arg, ret_usec) < 0) {
                _cleanup_free_ char *p = ctl_printable(arg);
                ctl_usage_error(cmd->name, "not a duration: '%s'", p);
                return -EINVAL;
        }
        return 0;
}

int ctl_wait(struct ctl *ctl, uint64_t timeout, wait_judge judge, void *userdata)
{
        uint64_t start = now_monotonic_usec();
        uint64_t deadline = timeout > USEC_INFINITY - start ? USEC_INFINITY : start + timeout;
        _cleanup_free_ char *pending = xstrdup("liid to answer");
        for (;;) {
                /* A request must not outlast the deadline, but "check once"
                 * (a zero timeout) still gets a normal request. */
                uint64_t now = now_monotonic_usec();
                uint64_t remaining = deadline > now ? deadline - now : 0;
                uint64_t request_timeout = CLIENT_REQUEST_TIMEOUT_USEC;
                if (timeout != 0 && remaining < request_timeout)
                        request_timeout = remaining > USEC_PER_MSEC ? remaining : USEC_PER_MSEC;

                _cleanup_reply_ struct client_reply reply = {0};
                int r = client_request(ctl, "GET", LII_ROUTE_STATUS, request_timeout, &reply);
                if (r == -ETIMEDOUT && timeout != 0 && now_monotonic_usec() >= deadline)
                        return timed_out(timeout, pending);
                if (r < 0 || reply.status < 200 || reply.status > 299 || !reply.doc)
                        return client_fail(ctl, r, &reply);

                char *text = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&text, &size);
                if (!f) {
                        fprintf(stderr, "liictl: %m\n");
                        return LIICTL_EXIT_FAILED;
                }
                enum wait_verdict v = judge(reply.doc, f, userdata);
                fclose(f);
                free(pending);
                pending = text;
                if (v == WAIT_READY)
                        return LIICTL_EXIT_OK;
                if (v == WAIT_REFUSED)
                        return LIICTL_EXIT_FAILED;

                now = now_monotonic_usec();
                if (now >= deadline)
                        return timed_out(timeout, pending);
                json_object *seq = json_get(reply.doc, LII_F_EVENT_SEQ, json_type_int);
                _cleanup_free_ char *route = xasprintf(
                    "%s?%s=1&%s=%llu", LII_ROUTE_EVENTS, LII_QUERY_FOLLOW, LII_QUERY_AFTER,
                    seq ? (unsigned long long)json_object_get_uint64(seq) : 0ULL);
                uint64_t wait =
                    deadline - now < WAIT_FOLLOW_MAX_USEC ? deadline - now : WAIT_FOLLOW_MAX_USEC;
                _cleanup_reply_ struct client_reply stream = {0};
                r = client_stream(ctl, route, wait, on_event, NULL, &stream);
                /* An event, the safety-net timeout, or a broken stream (liid
                 * restarted): the status says what is true now. */
                if (r == -EAGAIN || r == -ETIMEDOUT || r == -ECONNRESET || r == 0)
                        continue;
                return client_fail(ctl, r, &stream);
        }
}

static int run(struct ctl *ctl, int argc, char **argv)
{
        enum { OPT_TIMEOUT = 0x200, OPT_SERIAL };
        static const struct option options[] = {
            {"timeout", required_argument, NULL, OPT_TIMEOUT},
            {"serial", required_argument, NULL, OPT_SERIAL},
            {},
        };
        uint64_t timeout = USEC_INFINITY;
        int64_t min_serial = -1;
        int c, ret = LIICTL_EXIT_OK;
        while ((c = ctl_getopt(ctl, &cmd_wait, argc, argv, "", options, &ret)) != -1) {
                if (c == CTL_GETOPT_EXIT)
                        return ret;
                if (c == OPT_TIMEOUT && ctl_parse_timeout(&cmd_wait, optarg, &timeout) < 0)
                        return LIICTL_EXIT_USAGE;
                if (c == OPT_SERIAL) {
                        char *end;
                        errno = 0;
                        long long v = strtoll(optarg, &end, 10);
                        if (!*optarg || *end || errno || v < 0) {
                                _cleanup_free_ char *p = ctl_printable(optarg);
                                ctl_usage_error(cmd_wait.name, "not a serial number: '%s'", p);
                                return LIICTL_EXIT_USAGE;
                        }
                        min_serial = v;
                }
        }
        char **names = argv + optind;
        size_t n_names = (size_t)(argc - optind);
        for (size_t i = 0; i < n_names; i++) {
                _cleanup_free_ char *route = client_service_route(names[i], "");
                if (!route)
                        return LIICTL_EXIT_FAILED;
        }

        struct wait_for w = {.names = names, .n_names = n_names, .min_serial = min_serial};
        return ctl_wait(ctl, timeout, status_verdict, &w);
}

const struct cmd cmd_wait = {
    .name = "wait",
    .args = "[--timeout DURATION] [--serial N] [SERVICE...]",
    .summary = "wait until services run their desired spec",
    .help = "Waits until every SERVICE (or, with none named, every service of the desired\n"
            "state, once liid has fetched it) is running with its desired spec. A named\n"
            "service liid does not know yet is waited for. Fails (exit 1) as soon as a\n"
            "service's desired spec was refused, and times out with exit 5.\n"
            "\n"
            "After publishing a document, pass its serial with --serial N. Without it,\n"
            "wait judges by the document liid has now, which is the old one until liid\n"
            "reads the new one: it would return at once, with the old generation running.\n"
            "\n"
            "Options:\n"
            "      --timeout DURATION  give up after DURATION (250ms, 30s, 5m, 1h); 0 checks\n"
            "                          once; the default is to wait for ever\n"
            "      --serial N          first wait until liid has accepted desired-state\n"
            "                          serial N or later; fail (exit 1) when liid refused\n"
            "                          serial N. A document whose signature does not verify\n"
            "                          has no serial liid trusts: wait then times out and\n"
            "                          says why\n"
            "  -h, --help              show this help",
    .run = run,
};
