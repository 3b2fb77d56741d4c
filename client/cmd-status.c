/* liictl status [SERVICE]: what liid runs, as a table for people or as
 * liid's own JSON document with --json. */
#include "liictl.h"

#include <string.h>

/* A cell's text, safe for a terminal: borrowed from the document or a
 * literal when it can be, allocated (owned) when it had to be made. */
struct cell {
        const char *text;
        size_t len;
        char *owned;
};

static void cell_take(struct cell *c, char *text)
{
        *c = (struct cell){.text = text, .len = strlen(text), .owned = text};
}

static void cell_borrow(struct cell *c, const char *text, size_t len)
{
        *c = (struct cell){.text = text, .len = len};
}

/* Text for a value as people read it: "-" for missing or null, yes/no
 * for booleans, strings as they are, anything else as compact JSON; safe
 * to print on a terminal. Without a copy where none is needed: most cells
 * of a table are clean strings or yes/no. */
static void cell_value(struct cell *c, json_object *v)
{
        switch (v ? json_object_get_type(v) : json_type_null) {
        case json_type_null:
                cell_borrow(c, "-", 1);
                return;
        case json_type_boolean:
                if (json_object_get_boolean(v))
                        cell_borrow(c, "yes", 3);
                else
                        cell_borrow(c, "no", 2);
                return;
        case json_type_string: {
                const char *s = json_object_get_string(v);
                size_t len = (size_t)json_object_get_string_len(v);
                if (strlen(s) == len && ctl_is_printable(s, len))
                        cell_borrow(c, s, len);
                else
                        cell_take(c, ctl_printable(s));
                return;
        }
        default:
                cell_take(c, ctl_printable(json_object_to_json_string_ext(
                                 v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)));
                return;
        }
}

/* value's text as cell_value() words it, always malloc'ed. */
static char *value_text(json_object *v)
{
        struct cell c;
        cell_value(&c, v);
        return c.owned ? c.owned : xstrdup(c.text);
}

static char *member_text(json_object *o, const char *key)
{
        json_object *v = NULL;
        if (o && json_object_is_type(o, json_type_object))
                json_object_object_get_ex(o, key, &v);
        return value_text(v);
}

static void print_field(const char *label, const char *color_on, const char *value,
                        const char *color_off)
{
        printf("%-9s %s%s%s\n", label, color_on, value, color_off);
}

static void print_header(const struct ctl *ctl, json_object *doc)
{
        _cleanup_free_ char *node = member_text(doc, LII_F_NODE);
        _cleanup_free_ char *version = member_text(doc, LII_F_VERSION);
        json_object *source = json_get(doc, LII_F_SOURCE, json_type_object);
        _cleanup_free_ char *url = member_text(source, LII_F_URL);
        _cleanup_free_ char *serial = member_text(source, LII_F_SERIAL);
        const char *fetched = json_get_string(source, LII_F_FETCHED_AT);
        _cleanup_free_ char *fetched_text = fetched ? ctl_printable(fetched) : xstrdup("never");
        json_object *paused = json_get(doc, LII_F_PAUSED, json_type_boolean);
        bool is_paused = paused && json_object_get_boolean(paused);
        const char *error = json_get_string(source, LII_F_ERROR);
        const char *reset = ctl_color(ctl, COLOR_RESET);

        print_field("Node:", "", node, "");
        print_field("Version:", "", version, "");
        if (is_paused) {
                /* A paused node silently runs stale specs: say it so that
                 * nobody misses it. */
                printf("%s%s%-9s yes: new rollouts are held until `liictl resume`%s\n",
                       ctl_color(ctl, COLOR_BOLD), ctl_color(ctl, COLOR_YELLOW), "Paused:", reset);
        } else {
                print_field("Paused:", "", "no", "");
        }
        print_field("Source:", "", url, "");
        print_field("Serial:", "", serial, "");
        print_field("Fetched:", "", fetched_text, "");
        if (json_get_string(source, LII_F_KEY_ID)) {
                _cleanup_free_ char *key = member_text(source, LII_F_KEY_ID);
                print_field("Key:", "", key, "");
        }
        if (error) {
                /* The desired state may be stale or refused: this must
                 * not hide among the other fields. */
                _cleanup_free_ char *e = ctl_printable(error);
                printf("%s%sSource error: %s%s\n", ctl_color(ctl, COLOR_BOLD),
                       ctl_color(ctl, COLOR_RED), e, reset);
        }
        json_object *storage = json_get(doc, LII_F_STORAGE, json_type_object);
        const char *storage_error = json_get_string(storage, LII_F_ERROR);
        if (storage_error) {
                /* Nothing changes on this node until liid can write its
                 * state folder again: as loud as a source error. */
                _cleanup_free_ char *e = ctl_printable(storage_error);
                _cleanup_free_ char *since = member_text(storage, LII_F_SINCE);
                printf("%s%sStorage error: %s (since %s); every change waits until the state "
                       "folder takes writes again%s\n",
                       ctl_color(ctl, COLOR_BOLD), ctl_color(ctl, COLOR_RED), e, since, reset);
        }
}

/* The columns printed. */
enum {
        COL_SERVICE,
        COL_STATE,
        COL_GEN,
        COL_UNIT,
        COL_HEALTHY,
        COL_SINCE,
        COL_ROLLOUT,
        _COL_MAX,
};

static const char *const column_names[_COL_MAX] = {
    "SERVICE", "STATE", "GEN", "UNIT", "HEALTHY", "SINCE", "LAST-ROLLOUT",
};

/* One service of the table; state is borrowed from the document, for the
 * state's colour (NULL when liid sent no string). */
struct row {
        const char *state;
        struct cell cells[_COL_MAX];
};

struct table {
        struct row *rows;
        size_t n;
};

static void table_done(struct table *t)
{
        for (size_t i = 0; i < t->n; i++)
                for (size_t c = 0; c < _COL_MAX; c++)
                        free(t->rows[i].cells[c].owned);
        free(t->rows);
}

/* The cell in column at of a row, or NULL. */
static json_object *row_get(json_object *row, int at)
{
        return at >= 0 ? json_object_array_get_idx(row, (size_t)at) : NULL;
}

static const char *row_string(json_object *row, int at)
{
        json_object *v = row_get(row, at);
        return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* The state as the table shows it: with "held" when an operator rollback
 * keeps the service on its previous revision, "paused" when a pending
 * rollout waits for `liictl resume`, and why a fleet rollout holds this
 * node back ("outside canary 10%", "waiting for a slot", "halted: …"),
 * since each explains why the service does not run its desired spec. */
static void state_cell(struct cell *c, json_object *row, const int at[static _LII_COLUMN_MAX],
                       bool paused)
{
        cell_value(c, row_get(row, at[LII_COLUMN_STATE]));
        json_object *held = row_get(row, at[LII_COLUMN_HELD]);
        bool is_held =
            json_object_is_type(held, json_type_boolean) && json_object_get_boolean(held);
        bool waits = paused && strcmp(c->text, "pending") == 0;
        const char *rollout = row_string(row, at[LII_COLUMN_ROLLOUT_STATE]);
        const char *reason = row_string(row, at[LII_COLUMN_ROLLOUT_REASON]);
        bool held_back = rollout && reason && strcmp(rollout, "applied") != 0;
        if (!is_held && !waits && !held_back)
                return;
        _cleanup_free_ char *why = is_held ? xstrdup("held")
                                   : waits ? xstrdup("paused")
                                           : ctl_printable(reason);
        char *text = xasprintf("%s (%s)", c->text, why);
        free(c->owned);
        cell_take(c, text);
}

/* "succeeded in 812ms", "failed in 3s: REASON", or "-" before the first
 * rollout. */
static void rollout_cell(struct cell *c, json_object *row, const int at[static _LII_COLUMN_MAX])
{
        if (!row_string(row, at[LII_COLUMN_LAST_RESULT])) {
                cell_borrow(c, "-", 1);
                return;
        }
        struct cell result;
        cell_value(&result, row_get(row, at[LII_COLUMN_LAST_RESULT]));
        json_object *ms = row_get(row, at[LII_COLUMN_LAST_DURATION_MS]);
        const char *reason = row_string(row, at[LII_COLUMN_LAST_REASON]);

        char duration[32] = "";
        if (json_object_is_type(ms, json_type_int) && json_object_get_int64(ms) >= 0) {
                char d[24];
                format_duration((uint64_t)json_object_get_int64(ms) * USEC_PER_MSEC, d, sizeof d);
                snprintf(duration, sizeof duration, " in %s", d);
        }
        if (!reason) {
                cell_take(c, xasprintf("%s%s", result.text, duration));
        } else {
                _cleanup_free_ char *r = ctl_printable(reason);
                cell_take(c, xasprintf("%s%s: %s", result.text, duration, r));
        }
        free(result.owned);
}

static void add_row(struct table *t, json_object *row, const int at[static _LII_COLUMN_MAX],
                    bool paused)
{
        struct row *r = &t->rows[t->n++];
        *r = (struct row){.state = row_string(row, at[LII_COLUMN_STATE])};
        cell_value(&r->cells[COL_SERVICE], row_get(row, at[LII_COLUMN_NAME]));
        state_cell(&r->cells[COL_STATE], row, at, paused);
        cell_value(&r->cells[COL_GEN], row_get(row, at[LII_COLUMN_GENERATION]));
        cell_value(&r->cells[COL_UNIT], row_get(row, at[LII_COLUMN_UNIT]));
        cell_value(&r->cells[COL_HEALTHY], row_get(row, at[LII_COLUMN_HEALTHY]));
        cell_value(&r->cells[COL_SINCE], row_get(row, at[LII_COLUMN_ACTIVE_SINCE]));
        rollout_cell(&r->cells[COL_ROLLOUT], row, at);
}

static int row_compare(const void *a, const void *b)
{
        return strcmp(((const struct row *)a)->cells[COL_SERVICE].text,
                      ((const struct row *)b)->cells[COL_SERVICE].text);
}

/* One line: each cell padded to its column's width and two spaces, the
 * last one as it is; the state in its colour, padding included. Written
 * with stdio's unlocked calls: a table of hundreds of services is
 * thousands of cells. */
static void print_row(const struct ctl *ctl, const struct cell cells[static _COL_MAX],
                      const size_t width[static _COL_MAX], const char *state_color)
{
        static const char spaces[64] =
            "                                                               ";
        for (size_t c = 0; c < _COL_MAX; c++) {
                bool last = c + 1 == _COL_MAX;
                const char *on = c == COL_STATE ? state_color : "";
                fputs_unlocked(on, stdout);
                fwrite_unlocked(cells[c].text, 1, cells[c].len, stdout);
                for (size_t pad = last ? 0 : width[c] - cells[c].len; pad > 0;) {
                        size_t n = pad < sizeof spaces ? pad : sizeof spaces;
                        fwrite_unlocked(spaces, 1, n, stdout);
                        pad -= n;
                }
                if (*on)
                        fputs_unlocked(ctl_color(ctl, COLOR_RESET), stdout);
                fputs_unlocked(last ? "\n" : "  ", stdout);
        }
}

/* Where each column the table reads is in liid's rows. */
static void find_columns(json_object *columns, int at[static _LII_COLUMN_MAX])
{
        for (size_t i = 0; i < _LII_COLUMN_MAX; i++)
                at[i] = -1;
        size_t n =
            json_object_is_type(columns, json_type_array) ? json_object_array_length(columns) : 0;
        for (size_t c = 0; c < n && c <= INT32_MAX; c++) {
                json_object *name = json_object_array_get_idx(columns, c);
                if (!json_object_is_type(name, json_type_string))
                        continue;
                for (size_t i = 0; i < _LII_COLUMN_MAX; i++)
                        if (at[i] < 0 &&
                            strcmp(json_object_get_string(name), lii_column_names[i]) == 0)
                                at[i] = (int)c;
        }
}

static void print_services(const struct ctl *ctl, json_object *doc)
{
        json_object *paused = json_get(doc, LII_F_PAUSED, json_type_boolean);
        bool is_paused = paused && json_object_get_boolean(paused);
        json_object *rows = json_get(doc, LII_F_ROWS, json_type_array);
        size_t n = rows ? json_object_array_length(rows) : 0;
        if (n == 0) {
                printf("No services.\n");
                return;
        }
        int at[_LII_COLUMN_MAX];
        find_columns(json_get(doc, LII_F_COLUMNS, json_type_array), at);
        _cleanup_(table_done) struct table table = {.rows = xcalloc(n, sizeof *table.rows)};
        struct table *t = &table;
        for (size_t i = 0; i < n; i++) {
                json_object *row = json_object_array_get_idx(rows, i);
                if (json_object_is_type(row, json_type_array))
                        add_row(t, row, at, is_paused);
        }
        /* liid sends the rows in the order of names; a table from
         * elsewhere is put in that order. */
        bool sorted = true;
        for (size_t i = 1; i < t->n && sorted; i++)
                sorted = row_compare(&t->rows[i - 1], &t->rows[i]) <= 0;
        if (!sorted)
                qsort(t->rows, t->n, sizeof *t->rows, row_compare);

        size_t width[_COL_MAX];
        struct cell header[_COL_MAX];
        for (size_t c = 0; c < _COL_MAX; c++) {
                cell_borrow(&header[c], column_names[c], strlen(column_names[c]));
                width[c] = header[c].len;
        }
        for (size_t i = 0; i < t->n; i++)
                for (size_t c = 0; c < _COL_MAX; c++)
                        if (t->rows[i].cells[c].len > width[c])
                                width[c] = t->rows[i].cells[c].len;

        print_row(ctl, header, width, "");
        for (size_t i = 0; i < t->n; i++) {
                struct row *r = &t->rows[i];
                print_row(ctl, r->cells, width, ctl_state_color(ctl, r->state));
        }
}

static void print_status(const struct ctl *ctl, json_object *doc)
{
        print_header(ctl, doc);
        printf("\n");
        print_services(ctl, doc);
}

static const char *const sections[] = {
    LII_F_CURRENT, LII_F_NEXT, LII_F_PREVIOUS, LII_F_DESIRED, LII_F_LAST_ROLLOUT,
};

static bool is_section(const char *key, json_object *v)
{
        for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                if (strcmp(key, sections[i]) == 0)
                        return true;
        return json_object_is_type(v, json_type_object);
}

/* Who signed an artifact: "key ID, trusted comment: TEXT". */
static char *signature_text(json_object *sig)
{
        _cleanup_free_ char *key = member_text(sig, LII_F_KEY_ID);
        const char *comment = json_get_string(sig, LII_F_TRUSTED_COMMENT);
        if (!comment)
                return xasprintf("key %s", key);
        _cleanup_free_ char *c = ctl_printable(comment);
        return xasprintf("key %s, trusted comment: %s", key, c);
}

static void print_section(const struct ctl *ctl, const char *key, json_object *o)
{
        if (!o || !json_object_is_type(o, json_type_object)) {
                _cleanup_free_ char *v = value_text(o);
                printf("%s: %s\n", key, v);
                return;
        }
        printf("%s:\n", key);
        int width = 0;
        json_object_object_foreach(o, k, unused)
        {
                if ((int)strlen(k) > width)
                        width = (int)strlen(k);
        }
        json_object_object_foreach(o, k2, v)
        {
                _cleanup_free_ char *kt = ctl_printable(k2);
                bool is_signature =
                    strcmp(k2, LII_F_SIGNATURE) == 0 && json_object_is_type(v, json_type_object);
                _cleanup_free_ char *vt = is_signature ? signature_text(v) : value_text(v);
                printf("  %s:%*s %s\n", kt, width - (int)strlen(k2), "", vt);
        }
}

/* One service in detail: its own fields, then each part (current, next,
 * previous, desired, last_rollout) as an indented block, with every field
 * liid sent, so that new fields show up without a new liictl. */
static void print_service(const struct ctl *ctl, const char *name, json_object *svc)
{
        const char *state = json_get_string(svc, LII_F_STATE);
        _cleanup_free_ char *state_text = member_text(svc, LII_F_STATE);
        printf("service: %s\n", name);
        printf("state: %s%s%s\n", ctl_state_color(ctl, state), state_text,
               state && *ctl_state_color(ctl, state) ? ctl_color(ctl, COLOR_RESET) : "");
        /* Instances that died and were replaced in a row: a service that
         * keeps crashing shows it here before its health does. */
        json_object *restarts = json_get(svc, LII_F_RESTARTS, json_type_int);
        if (restarts) {
                int64_t n = json_object_get_int64(restarts);
                const char *on = n > 0 ? ctl_color(ctl, COLOR_YELLOW) : "";
                printf("restarts: %s%lld%s\n", on, (long long)n,
                       *on ? ctl_color(ctl, COLOR_RESET) : "");
        }

        json_object_object_foreach(svc, key, v)
        {
                if (strcmp(key, LII_F_STATE) == 0 || strcmp(key, "name") == 0 ||
                    (strcmp(key, LII_F_RESTARTS) == 0 && restarts) || is_section(key, v))
                        continue;
                _cleanup_free_ char *kt = ctl_printable(key);
                _cleanup_free_ char *vt = value_text(v);
                printf("%s: %s\n", kt, vt);
        }
        for (size_t i = 0; i < ELEMENTSOF(sections); i++) {
                json_object *o = NULL;
                json_object_object_get_ex(svc, sections[i], &o);
                print_section(ctl, sections[i], o);
        }
        json_object_object_foreach(svc, key2, v2)
        {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                        known = known || strcmp(key2, sections[i]) == 0;
                if (!known && json_object_is_type(v2, json_type_object)) {
                        _cleanup_free_ char *kt = ctl_printable(key2);
                        print_section(ctl, kt, v2);
                }
        }
}

static int run(struct ctl *ctl, int argc, char **argv)
{
        int c, ret = LIICTL_EXIT_OK;
        while ((c = ctl_getopt(ctl, &cmd_status, argc, argv, "", NULL, &ret)) != -1)
                if (c == CTL_GETOPT_EXIT)
                        return ret;
        if (argc - optind > 1) {
                ctl_usage_error(cmd_status.name, "too many arguments");
                return LIICTL_EXIT_USAGE;
        }
        const char *name = optind < argc ? argv[optind] : NULL;

        /* The table needs only the table view, a ninth of the whole
         * document and far cheaper to parse; --json prints liid's whole
         * document. */
        _cleanup_free_ char *route =
            name        ? client_service_route(name, "")
            : ctl->json ? xstrdup(LII_ROUTE_STATUS)
                        : xstrdup(LII_ROUTE_STATUS "?" LII_QUERY_VIEW "=" LII_VIEW_TABLE);
        if (!route)
                return LIICTL_EXIT_FAILED;

        _cleanup_reply_ struct client_reply reply = {0};
        int r = client_request(ctl, "GET", route, CLIENT_REQUEST_TIMEOUT_USEC, &reply);
        /* Whatever is printed, the answer must be liid's: one JSON object. */
        if (r < 0 || reply.status < 200 || reply.status > 299 ||
            !json_object_is_type(reply.doc, json_type_object))
                return client_fail(ctl, r, &reply);

        if (ctl->json)
                ctl_print_json(ctl, &reply);
        else if (name)
                print_service(ctl, name, reply.doc);
        else
                print_status(ctl, reply.doc);
        return LIICTL_EXIT_OK;
}

const struct cmd cmd_status = {
    .name = "status",
    .args = "[SERVICE]",
    .summary = "show what liid runs, or one service in detail",
    .help = "Shows the node, its desired-state source and every service with its state,\n"
            "generation, unit, health and last rollout. With SERVICE, shows that service's\n"
            "current, previous and desired revisions and its last rollout in detail.\n"
            "\n"
            "Options:\n"
            "      --json  print liid's JSON document instead\n"
            "  -h, --help  show this help",
    .run = run,
};
