/* liictl fleet: every node's status as this node's liid reads it from
 * etcd, as a table (a row per node and service) with a line per rollout,
 * or as liid's own JSON document with --json. */
#include "liictl.h"

#include <string.h>

enum {
        COL_NODE,
        COL_SERVICE,
        COL_STATE,
        COL_GEN,
        COL_HEALTHY,
        COL_ROLLOUT,
        COL_UPDATED,
        _COL_MAX,
};

static const char *const column_names[_COL_MAX] = {
    "NODE", "SERVICE", "STATE", "GEN", "HEALTHY", "ROLLOUT", "UPDATED",
};

struct row {
        char *cells[_COL_MAX];
        const char *state; /* borrowed, for its colour */
};

static char *text_of(json_object *v)
{
        if (!v || json_object_is_type(v, json_type_null))
                return xstrdup("-");
        if (json_object_is_type(v, json_type_boolean))
                return xstrdup(json_object_get_boolean(v) ? "yes" : "no");
        if (json_object_is_type(v, json_type_string))
                return ctl_printable(json_object_get_string(v));
        return ctl_printable(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
}

static char *member(json_object *o, const char *key)
{
        json_object *v = NULL;
        if (o && json_object_is_type(o, json_type_object))
                json_object_object_get_ex(o, key, &v);
        return text_of(v);
}

/* "applied", "waiting-for-slot: 2 ahead", or "-" without a rollout. */
static char *rollout_text(json_object *svc)
{
        json_object *ro = json_get(svc, LII_F_ROLLOUT, json_type_object);
        if (!ro)
                return xstrdup("-");
        _cleanup_free_ char *state = member(ro, LII_F_STATE);
        const char *reason = json_get_string(ro, LII_F_REASON);
        if (!reason)
                return TAKE_PTR(state);
        _cleanup_free_ char *r = ctl_printable(reason);
        return xasprintf("%s: %s", state, r);
}

static int row_compare(const void *a, const void *b)
{
        const struct row *x = a, *y = b;
        int c = strcmp(x->cells[COL_NODE], y->cells[COL_NODE]);
        return c ? c : strcmp(x->cells[COL_SERVICE], y->cells[COL_SERVICE]);
}

static void print_row(const struct ctl *ctl, char *const cells[static _COL_MAX],
                      const size_t width[static _COL_MAX], const char *state_color)
{
        for (size_t c = 0; c < _COL_MAX; c++) {
                const char *on = c == COL_STATE ? state_color : "";
                const char *off = *on ? ctl_color(ctl, COLOR_RESET) : "";
                if (c + 1 == _COL_MAX)
                        printf("%s%s%s\n", on, cells[c], off);
                else
                        printf("%s%-*s%s  ", on, (int)width[c], cells[c], off);
        }
}

static void print_nodes(const struct ctl *ctl, json_object *nodes)
{
        size_t n = 0;
        if (!nodes) {
                printf("No nodes in etcd.\n");
                return;
        }
        json_object_object_foreach(nodes, name0, node0)
        {
                json_object *svcs = json_get(node0, LII_F_SERVICES, json_type_object);
                size_t k = svcs ? (size_t)json_object_object_length(svcs) : 0;
                n += k ? k : 1;
                (void)name0;
        }
        if (n == 0) {
                printf("No nodes in etcd.\n");
                return;
        }
        struct row *rows = xcalloc(n, sizeof *rows);
        size_t used = 0;
        json_object_object_foreach(nodes, name, node)
        {
                json_object *svcs = json_get(node, LII_F_SERVICES, json_type_object);
                _cleanup_free_ char *updated = member(node, LII_F_UPDATED_AT);
                if (!svcs || json_object_object_length(svcs) == 0) {
                        if (used == n)
                                break;
                        struct row *r = &rows[used++];
                        r->cells[COL_NODE] = ctl_printable(name);
                        r->cells[COL_SERVICE] = xstrdup("-");
                        /* A status liid could not read says why there. */
                        r->cells[COL_STATE] = json_get_string(node, LII_F_ERROR)
                                                  ? member(node, LII_F_ERROR)
                                                  : xstrdup("-");
                        for (size_t c = COL_GEN; c < COL_UPDATED; c++)
                                r->cells[c] = xstrdup("-");
                        r->cells[COL_UPDATED] = xstrdup(updated);
                        continue;
                }
                json_object_object_foreach(svcs, svc_name, svc)
                {
                        if (used == n)
                                break;
                        struct row *r = &rows[used++];
                        r->state = json_get_string(svc, LII_F_STATE);
                        r->cells[COL_NODE] = ctl_printable(name);
                        r->cells[COL_SERVICE] = ctl_printable(svc_name);
                        r->cells[COL_STATE] = member(svc, LII_F_STATE);
                        r->cells[COL_GEN] = member(svc, LII_F_GENERATION);
                        r->cells[COL_HEALTHY] = member(svc, LII_F_HEALTHY);
                        r->cells[COL_ROLLOUT] = rollout_text(svc);
                        r->cells[COL_UPDATED] = xstrdup(updated);
                }
        }
        qsort(rows, used, sizeof *rows, row_compare);
        size_t width[_COL_MAX];
        for (size_t c = 0; c < _COL_MAX; c++) {
                width[c] = strlen(column_names[c]);
                for (size_t i = 0; i < used; i++)
                        if (strlen(rows[i].cells[c]) > width[c])
                                width[c] = strlen(rows[i].cells[c]);
        }
        print_row(ctl, (char **)column_names, width, "");
        for (size_t i = 0; i < used; i++) {
                print_row(ctl, rows[i].cells, width, ctl_state_color(ctl, rows[i].state));
                for (size_t c = 0; c < _COL_MAX; c++)
                        free(rows[i].cells[c]);
        }
        free(rows);
}

/* rollout hello-v2 of hello: 10%, halted, failures: n1 (reason), n2 (…) */
static void print_rollouts(const struct ctl *ctl, json_object *rollouts)
{
        json_object_object_foreach(rollouts, service, r)
        {
                _cleanup_free_ char *svc = ctl_printable(service);
                _cleanup_free_ char *id = member(r, LII_F_ID);
                _cleanup_free_ char *pct = member(r, LII_F_PERCENT);
                json_object *halted = json_get(r, LII_F_HALTED, json_type_boolean);
                bool is_halted = halted && json_object_get_boolean(halted);
                json_object *failures = json_get(r, LII_F_FAILURES, json_type_object);
                printf("rollout %s of %s: %s%%, %s%s%s", id, svc, pct,
                       is_halted ? ctl_color(ctl, COLOR_RED) : "",
                       is_halted ? "halted" : "not halted",
                       is_halted ? ctl_color(ctl, COLOR_RESET) : "");
                size_t n = failures ? (size_t)json_object_object_length(failures) : 0;
                if (n == 0) {
                        printf(", no failures\n");
                        continue;
                }
                printf(", %zu failure%s:", n, n == 1 ? "" : "s");
                const char *sep = " ";
                json_object_object_foreach(failures, node, why)
                {
                        _cleanup_free_ char *nt = ctl_printable(node);
                        _cleanup_free_ char *wt = text_of(why);
                        printf("%s%s (%s)", sep, nt, wt);
                        sep = ", ";
                }
                printf("\n");
        }
}

static int run(struct ctl *ctl, int argc, char **argv)
{
        int c, ret = LIICTL_EXIT_OK;
        while ((c = ctl_getopt(ctl, &cmd_fleet, argc, argv, "", NULL, &ret)) != -1)
                if (c == CTL_GETOPT_EXIT)
                        return ret;
        if (optind < argc) {
                ctl_usage_error(cmd_fleet.name, "too many arguments");
                return LIICTL_EXIT_USAGE;
        }
        _cleanup_reply_ struct client_reply reply = {0};
        int r = client_request(ctl, "GET", LII_ROUTE_FLEET, CLIENT_REQUEST_TIMEOUT_USEC, &reply);
        if (r < 0 || reply.status < 200 || reply.status > 299 ||
            !json_object_is_type(reply.doc, json_type_object))
                return client_fail(ctl, r, &reply);
        if (ctl->json) {
                ctl_print_json(ctl, &reply);
                return LIICTL_EXIT_OK;
        }
        json_object *lease = json_get(reply.doc, LII_F_LEASE, json_type_object);
        json_object *fresh = json_get(lease, LII_F_FRESH, json_type_boolean);
        if (fresh && !json_object_get_boolean(fresh))
                /* This node's view may be old and it starts no rollout step:
                 * that must not hide below the table. */
                printf("%s%sThis node's lease in etcd is not fresh: what follows may be stale, "
                       "and no rollout step starts here until it is renewed%s\n\n",
                       ctl_color(ctl, COLOR_BOLD), ctl_color(ctl, COLOR_YELLOW),
                       ctl_color(ctl, COLOR_RESET));
        json_object *nodes = json_get(reply.doc, LII_F_NODES, json_type_object);
        json_object *rollouts = json_get(reply.doc, LII_F_ROLLOUTS, json_type_object);
        print_nodes(ctl, nodes);
        if (rollouts && json_object_object_length(rollouts) > 0) {
                printf("\n");
                print_rollouts(ctl, rollouts);
        }
        return LIICTL_EXIT_OK;
}

const struct cmd cmd_fleet = {
    .name = "fleet",
    .args = "",
    .summary = "show every node of the fleet, as read from etcd",
    .help = "Shows every node's status as liid reads it from etcd (fleet mode, an etcd://\n"
            "source): a row per node and service with its state, generation, health,\n"
            "rollout state and when the node last wrote it; then each rollout with its id,\n"
            "percent, whether it is halted and the nodes where it failed.\n"
            "\n"
            "Options:\n"
            "      --json  print liid's JSON document instead\n"
            "  -h, --help  show this help",
    .run = run,
};
