/* See journal.h. */
#include "journal.h"

#include <string.h>
#include <systemd/sd-journal.h>

#include "util.h"

/* A unit's last words may still be on their way into journald when its
 * end is reported; when nothing is there yet, wait this long once for the
 * journal to change. */
#define JOURNAL_SETTLE_USEC (200 * USEC_PER_MSEC)

struct journal_tail {
        uv_work_t work;
        char *match; /* "_SYSTEMD_UNIT=<unit>" */
        uint64_t since_usec;
        unsigned max_lines;
        char **lines; /* oldest first, filled by the worker */
        journal_tail_cb cb;
        void *userdata;
        bool cancelled;
};

/* The text of one entry, cut and with control characters replaced, or
 * NULL when it has none. */
static char *entry_line(sd_journal *j)
{
        const void *data;
        size_t len;
        if (sd_journal_get_data(j, "MESSAGE", &data, &len) < 0 || len <= 8)
                return NULL;
        const char *text = (const char *)data + 8; /* after "MESSAGE=" */
        len -= 8;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
                len--;
        if (len == 0)
                return NULL;
        bool cut = len > JOURNAL_LINE_MAX;
        if (cut)
                len = JOURNAL_LINE_MAX;
        char *line = xcalloc(len + 4, 1);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)text[i];
                line[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
        strcpy(line + len, cut ? "..." : "");
        return line;
}

/* Up to max lines, newest first, walking back from the end. */
static size_t read_back(sd_journal *j, struct journal_tail *t, char **out)
{
        size_t n = 0;
        if (sd_journal_seek_tail(j) < 0)
                return 0;
        while (n < t->max_lines && sd_journal_previous(j) > 0) {
                uint64_t at;
                if (sd_journal_get_realtime_usec(j, &at) < 0 || at < t->since_usec)
                        break;
                char *line = entry_line(j);
                if (line)
                        out[n++] = line;
        }
        return n;
}

static void tail_work(uv_work_t *req)
{
        struct journal_tail *t = container_of(req, struct journal_tail, work);
        sd_journal *j = NULL;
        if (sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY) < 0)
                return;
        char *newest_first[JOURNAL_LINES_MAX] = {0};
        size_t n = 0;
        if (sd_journal_add_match(j, t->match, 0) >= 0) {
                n = read_back(j, t, newest_first);
                if (n == 0 && sd_journal_wait(j, JOURNAL_SETTLE_USEC) > SD_JOURNAL_NOP)
                        n = read_back(j, t, newest_first);
        }
        sd_journal_close(j);
        t->lines = xcalloc(n + 1, sizeof *t->lines);
        for (size_t i = 0; i < n; i++)
                t->lines[i] = newest_first[n - 1 - i];
}

static void tail_after_work(uv_work_t *req, int status)
{
        struct journal_tail *t = container_of(req, struct journal_tail, work);
        if (!t->cancelled) {
                char *none[] = {NULL};
                t->cb(t->lines ? t->lines : none, t->userdata);
        }
        strv_free(t->lines);
        free(t->match);
        free(t);
}

int journal_tail_start(uv_loop_t *loop, const char *unit, uint64_t since_usec, unsigned max_lines,
                       journal_tail_cb cb, void *userdata, struct journal_tail **ret)
{
        struct journal_tail *t = xcalloc(1, sizeof *t);
        t->match = xasprintf("_SYSTEMD_UNIT=%s", unit);
        t->since_usec = since_usec;
        t->max_lines = max_lines < JOURNAL_LINES_MAX ? max_lines : JOURNAL_LINES_MAX;
        t->cb = cb;
        t->userdata = userdata;
        int r = uv_queue_work(loop, &t->work, tail_work, tail_after_work);
        if (r < 0) {
                free(t->match);
                free(t);
                return r;
        }
        *ret = t;
        return 0;
}

void journal_tail_cancel(struct journal_tail *t)
{
        if (t)
                t->cancelled = true;
}
