/* liictl events [-f]: what liid did and why, oldest first, from its event
 * log (GET /v1/events); with -f the stream stays open and new events are
 * printed as they happen. People get one line per event, programs liid's
 * NDJSON lines unchanged with --json. */
#include "liictl.h"

#include <getopt.h>
#include <string.h>

struct printer {
        const struct ctl *ctl;
        bool follow;
        /* Why on_line() stopped the transfer, if it did. */
        bool bad_event;
        int output_errno;
};

/* Types that deserve a colour: the outcome of a rollout, a refusal, an
 * instance that died. Everything else is progress and stays plain. */
static const char *type_color(const struct ctl *ctl, const char *type)
{
        static const struct {
                const char *type;
                const char *sgr;
        } table[] = {
            {EVENT_ROLLOUT_SUCCEEDED, COLOR_GREEN}, {EVENT_INSTANCE_HEALTHY, COLOR_GREEN},
            {EVENT_ROLLOUT_FAILED, COLOR_RED},      {EVENT_SOURCE_REFUSED, COLOR_RED},
            {EVENT_INSTANCE_EXITED, COLOR_RED},     {EVENT_ROLLOUT_REVERTED, COLOR_YELLOW},
        };
        for (size_t i = 0; type && i < ELEMENTSOF(table); i++)
                if (strcmp(table[i].type, type) == 0)
                        return ctl_color(ctl, table[i].sgr);
        return "";
}

/* TIME  TYPE  SERVICE@GEN  MESSAGE, in fixed columns so that a stream
 * lines up without knowing what comes next. */
static void print_event(const struct ctl *ctl, json_object *e)
{
        _cleanup_free_ char *time = ctl_printable(json_get_string(e, LII_F_TIME));
        const char *type_raw = json_get_string(e, LII_F_TYPE);
        _cleanup_free_ char *type = ctl_printable(type_raw ? type_raw : "-");
        const char *service = json_get_string(e, LII_F_SERVICE);
        json_object *gen = json_get(e, LII_F_GENERATION, json_type_int);
        _cleanup_free_ char *message = ctl_printable(json_get_string(e, LII_F_MESSAGE));

        _cleanup_free_ char *who = NULL;
        if (service && gen)
                who = xasprintf("%s@%lld", service, (long long)json_object_get_int64(gen));
        else
                who = xstrdup(service ? service : "-");
        _cleanup_free_ char *who_text = ctl_printable(who);

        const char *on = type_color(ctl, type_raw);
        const char *off = *on ? ctl_color(ctl, COLOR_RESET) : "";
        printf("%-20s  %s%-17s%s  %-16s  %s\n", time, on, type, off, who_text, message);
}

static int on_line(char *line, size_t len, void *userdata)
{
        struct printer *p = userdata;
        /* A keep-alive or stray empty line carries nothing. */
        if (strspn(line, " \t\r") == len)
                return 0;
        if (p->ctl->json) {
                fwrite(line, 1, len, stdout);
                putchar('\n');
        } else {
                _cleanup_json_ json_object *e = json_tokener_parse(line);
                if (!json_object_is_type(e, json_type_object)) {
                        p->bad_event = true;
                        return -EBADMSG;
                }
                print_event(p->ctl, e);
        }
        /* Someone watching a stream wants each event when it happens, even
         * through a pipe. */
        if (p->follow && fflush(stdout) != 0) {
                p->output_errno = errno;
                return -EIO;
        }
        return 0;
}

static int run(struct ctl *ctl, int argc, char **argv)
{
        static const struct option options[] = {
            {"follow", no_argument, NULL, 'f'},
            {},
        };
        bool follow = false;
        int c, ret = LIICTL_EXIT_OK;
        while ((c = ctl_getopt(ctl, &cmd_events, argc, argv, "f", options, &ret)) != -1) {
                if (c == CTL_GETOPT_EXIT)
                        return ret;
                if (c == 'f')
                        follow = true;
        }
        if (optind < argc) {
                ctl_usage_error(cmd_events.name, "too many arguments");
                return LIICTL_EXIT_USAGE;
        }

        struct printer p = {.ctl = ctl, .follow = follow};
        const char *route = follow ? LII_ROUTE_EVENTS "?" LII_QUERY_FOLLOW "=1" : LII_ROUTE_EVENTS;
        _cleanup_reply_ struct client_reply reply = {0};
        int r = client_stream(ctl, route, follow ? USEC_INFINITY : CLIENT_REQUEST_TIMEOUT_USEC,
                              on_line, &p, &reply);
        bool ok = reply.status >= 200 && reply.status <= 299;
        if (p.bad_event) {
                fprintf(stderr, "liictl: liid sent an event that is not a JSON object\n");
                return LIICTL_EXIT_FAILED;
        }
        if (p.output_errno) {
                fprintf(stderr, "liictl: cannot write the output: %s\n", strerror(p.output_errno));
                return LIICTL_EXIT_FAILED;
        }
        if (ok && (r == -ECONNRESET || (r == 0 && follow))) {
                /* liid never ends a stream on its own: it stopped, or it
                 * cut off this reader for falling too far behind. */
                fprintf(stderr, "liictl: liid ended the event stream\n");
                return LIICTL_EXIT_UNREACHABLE;
        }
        if (r < 0 || !ok)
                return client_fail(ctl, r, &reply);
        return LIICTL_EXIT_OK;
}

const struct cmd cmd_events = {
    .name = "events",
    .args = "[-f]",
    .summary = "show what liid did and why; -f follows new events",
    .help = "Shows liid's recent events, oldest first: rollouts starting, succeeding,\n"
            "failing or reverted, instances started, healthy or exited, documents accepted\n"
            "or refused, operator actions. One line each: TIME TYPE SERVICE@GENERATION\n"
            "MESSAGE. liid keeps the last 1024 events.\n"
            "\n"
            "Options:\n"
            "  -f, --follow  keep going and print new events as they happen, until\n"
            "                interrupted (exit 3 if liid stops)\n"
            "      --json    print liid's NDJSON lines (one JSON object per event)\n"
            "  -h, --help    show this help",
    .run = run,
};
