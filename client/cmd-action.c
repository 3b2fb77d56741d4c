/* liictl sync | pause | resume | rollback SERVICE | replace SERVICE: the
 * operator actions. They differ only in their route and whether they name
 * a service, so they share one run(): POST, then liid's one-line answer
 * (its "message") or "ok", or its JSON with --json. */
#include "liictl.h"

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

        int c, ret = LIICTL_EXIT_OK;
        while ((c = ctl_getopt(ctl, a->cmd, argc, argv, "", NULL, &ret)) != -1)
                if (c == CTL_GETOPT_EXIT)
                        return ret;
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
                return LIICTL_EXIT_OK;
        }
        const char *message = json_get_string(reply.doc, LII_F_MESSAGE);
        _cleanup_free_ char *text = ctl_printable(message ? message : "ok");
        printf("%s\n", text);
        return LIICTL_EXIT_OK;
}

#define ACTION_OPTIONS                                                                             \
        "\n"                                                                                       \
        "Options:\n"                                                                               \
        "      --json  print liid's JSON answer instead\n"                                         \
        "  -h, --help  show this help"

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
    .args = "SERVICE",
    .summary = "go back to SERVICE's previous revision and hold it there",
    .help = "Starts a fresh instance of SERVICE's previous revision, checks it like any\n"
            "rollout and holds the service there: the spec it left is not tried again\n"
            "until the desired state changes or `liictl replace SERVICE` asks for it.\n"
            "Fails (exit 1) when SERVICE has no previous revision." ACTION_OPTIONS,
    .run = run,
};

const struct cmd cmd_replace = {
    .name = "replace",
    .args = "SERVICE",
    .summary = "start a fresh instance of SERVICE's desired spec",
    .help = "Starts a fresh instance of SERVICE's current desired spec and rolls over to\n"
            "it, even when that spec failed before or a rollback holds the service." ACTION_OPTIONS,
    .run = run,
};
