/* liictl sync | pause | resume | rollback SERVICE | replace SERVICE: the
 * operator actions. They differ only in their route and whether they name
 * a service, so they share one run(): POST, then liid's one-line answer
 * (its "message") or "ok", or its JSON with --json. The actions on a
 * service can also follow the rollout they started to its end (--wait). */
#include "liictl.h"

#include <getopt.h>
#include <string.h>

struct action {
        const struct cmd *cmd;
        /* The route, or for an action on a service the suffix after
         * LII_ROUTE_SERVICES "{name}". */
        const char *route;
        bool on_service;
};

static const struct action actions[] = {
    {&cmd_sync, LII_ROUTE_SYNC, false},
    {&cmd_pause, LII_ROUTE_PAUSE, false},
    {&cmd_resume, LII_ROUTE_RESUME, false},
    {&cmd_rollback, LII_ROUTE_ROLLBACK_SUFFIX, true},
    {&cmd_replace, LII_ROUTE_REPLACE_SUFFIX, true},
};

/* The rollout an action on a service started: liid's answer names the
 * generation it runs as, or for a replace that waits for its turn the
 * first it can get, so it is the service's first rollout from that
 * generation on. */
struct started {
        const char *service;
        uint64_t generation;
};

static enum wait_verdict started_verdict(json_object *status, FILE *pending, void *userdata)
{
        const struct started *st = userdata;
        json_object *services = json_get(status, LII_F_SERVICES, json_type_object);
        json_object *svc = json_get(services, st->service, json_type_object);
        if (!svc) {
                fprintf(stderr, "liictl: %s: liid no longer knows this service\n", st->service);
                return WAIT_REFUSED;
        }
        json_object *lr = json_get(svc, LII_F_LAST_ROLLOUT, json_type_object);
        json_object *gen = json_get(lr, LII_F_GENERATION, json_type_int);
        const char *result = json_get_string(lr, LII_F_RESULT);
        if (!gen || json_object_get_uint64(gen) < st->generation || !result) {
                _cleanup_free_ char *state = ctl_printable(json_get_string(svc, LII_F_STATE));
                fprintf(pending, "%s generation %llu (%s)", st->service,
                        (unsigned long long)st->generation, *state ? state : "unknown");
                return WAIT_PENDING;
        }
        if (strcmp(result, "succeeded") == 0)
                return WAIT_READY;
        /* Failed, or reverted after it failed its watch window. */
        const char *reason = json_get_string(lr, LII_F_REASON);
        _cleanup_free_ char *r = ctl_printable(reason ? reason : "no reason given");
        _cleanup_free_ char *res = ctl_printable(result);
        fprintf(stderr, "liictl: %s: generation %llu %s: %s\n", st->service,
                (unsigned long long)json_object_get_uint64(gen), res, r);
        return WAIT_REFUSED;
}

static int run(struct ctl *ctl, int argc, char **argv)
{
        const struct action *a = NULL;
        for (size_t i = 0; i < ELEMENTSOF(actions) && !a; i++)
                if (strcmp(actions[i].cmd->name, argv[0]) == 0)
                        a = &actions[i];
        if (!a) {
                /* Only the command table calls run(), with its own name. */
                fprintf(stderr, "liictl: no such action: %s\n", argv[0]);
                return LIICTL_EXIT_USAGE;
        }

        enum { OPT_WAIT = 0x200, OPT_TIMEOUT };
        static const struct option wait_options[] = {
            {"wait", no_argument, NULL, OPT_WAIT},
            {"timeout", required_argument, NULL, OPT_TIMEOUT},
            {},
        };
        bool wait = false, have_timeout = false;
        uint64_t timeout = USEC_INFINITY;
        int c, ret = LIICTL_EXIT_OK;
        while ((c = ctl_getopt(ctl, a->cmd, argc, argv, "", a->on_service ? wait_options : NULL,
                               &ret)) != -1) {
                if (c == CTL_GETOPT_EXIT)
                        return ret;
                if (c == OPT_WAIT)
                        wait = true;
                if (c == OPT_TIMEOUT) {
                        if (ctl_parse_timeout(a->cmd, optarg, &timeout) < 0)
                                return LIICTL_EXIT_USAGE;
                        have_timeout = true;
                }
        }
        if (have_timeout && !wait) {
                ctl_usage_error(a->cmd->name, "--timeout goes with --wait");
                return LIICTL_EXIT_USAGE;
        }
        int n_args = argc - optind;
        if (a->on_service && n_args < 1) {
                ctl_usage_error(a->cmd->name, "missing SERVICE");
                return LIICTL_EXIT_USAGE;
        }
        if (n_args > (a->on_service ? 1 : 0)) {
                ctl_usage_error(a->cmd->name, "too many arguments");
                return LIICTL_EXIT_USAGE;
        }

        _cleanup_free_ char *route =
            a->on_service ? client_service_route(argv[optind], a->route) : xstrdup(a->route);
        if (!route)
                return LIICTL_EXIT_FAILED;

        _cleanup_reply_ struct client_reply reply = {0};
        int r = client_request(ctl, "POST", route, CLIENT_REQUEST_TIMEOUT_USEC, &reply);
        if (r < 0 || reply.status < 200 || reply.status > 299)
                return client_fail(ctl, r, &reply);

        if (ctl->json) {
                ctl_print_json(ctl, &reply);
        } else {
                const char *message = json_get_string(reply.doc, LII_F_MESSAGE);
                _cleanup_free_ char *text = ctl_printable(message ? message : "ok");
                printf("%s\n", text);
        }
        if (!wait)
                return LIICTL_EXIT_OK;

        json_object *gen = json_get(reply.doc, LII_F_GENERATION, json_type_int);
        if (!gen) {
                fprintf(stderr, "liictl: liid did not say which generation it started, so there "
                                "is nothing to wait for (is liid older than liictl?)\n");
                return LIICTL_EXIT_FAILED;
        }
        /* The answer is out before the wait, which may be long. */
        fflush(stdout);
        struct started st = {.service = argv[optind], .generation = json_object_get_uint64(gen)};
        return ctl_wait(ctl, timeout, started_verdict, &st);
}

#define ACTION_OPTIONS                                                                             \
        "\n"                                                                                       \
        "Options:\n"                                                                               \
        "      --json  print liid's JSON answer instead\n"                                         \
        "  -h, --help  show this help"

/* The actions on a service can wait, as `liictl wait` does. */
#define SERVICE_ACTION_OPTIONS                                                                     \
        "\n"                                                                                       \
        "With --wait, follows the rollout it started to its end, as `liictl wait` does:\n"         \
        "exit 0 when the new instance passed its checks and is current, 1 when it failed\n"        \
        "(the reason is printed), 5 on timeout. A watch window after that is not waited\n"         \
        "for.\n"                                                                                   \
        "\n"                                                                                       \
        "Options:\n"                                                                               \
        "      --wait              wait until the rollout succeeded or failed\n"                   \
        "      --timeout DURATION  with --wait: give up after DURATION (250ms, 30s, 5m,\n"         \
        "                          1h); 0 checks once; the default is to wait for ever\n"          \
        "      --json              print liid's JSON answer instead\n"                             \
        "  -h, --help              show this help"

const struct cmd cmd_sync = {
    .name = "sync",
    .args = "",
    .summary = "fetch the desired state now",
    .help = "Asks liid to fetch its desired-state source now instead of at the next poll.\n"
            "The fetch runs in the background: `liictl wait` or `liictl events -f` show\n"
            "what it leads to." ACTION_OPTIONS,
    .run = run,
};

const struct cmd cmd_pause = {
    .name = "pause",
    .args = "",
    .summary = "hold new rollouts (running ones finish)",
    .help = "Holds new rollouts until `liictl resume`; rollouts already running finish.\n"
            "liid keeps fetching and checking the desired state, and the pause survives a\n"
            "restart of liid." ACTION_OPTIONS,
    .run = run,
};

const struct cmd cmd_resume = {
    .name = "resume",
    .args = "",
    .summary = "release rollouts held by pause",
    .help = "Releases the rollouts that `liictl pause` held." ACTION_OPTIONS,
    .run = run,
};

const struct cmd cmd_rollback = {
    .name = "rollback",
    .args = "[--wait [--timeout DURATION]] SERVICE",
    .summary = "go back to SERVICE's previous revision and hold it there",
    .help = "Starts a fresh instance of SERVICE's previous revision, checks it like any\n"
            "rollout and holds the service there: the spec it left is not tried again\n"
            "until the desired state changes or `liictl replace SERVICE` asks for it.\n"
            "Fails (exit 1) when SERVICE has no previous revision.\n" SERVICE_ACTION_OPTIONS,
    .run = run,
};

const struct cmd cmd_replace = {
    .name = "replace",
    .args = "[--wait [--timeout DURATION]] SERVICE",
    .summary = "start a fresh instance of SERVICE's desired spec",
    .help = "Starts a fresh instance of SERVICE's current desired spec and rolls over to\n"
            "it, even when that spec failed before, a rollback holds the service or rollouts\n"
            "are paused. While max_parallel rollouts run, it waits for a free "
            "slot.\n" SERVICE_ACTION_OPTIONS,
    .run = run,
};
