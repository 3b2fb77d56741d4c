/* The state files liid reads back when it starts, after a crash or not:
 * state_load() over a state folder made from the input. The input is the
 * text of state.json, then any number of sections "\n@@ NAME\n" followed
 * by the text of state.d/NAME; an input that starts with "@@ " has no
 * state.json. Names with a '/' or other than printable ASCII (and "."
 * and "..") are skipped: only liid and root write in the state folder, and
 * what is fuzzed is what a crash or a damaged disk leaves in the files.
 *
 * Promises checked: an error is a clean one-line message that names the
 * file; a state that loads saves (state_save_all(), in format 2 whatever
 * it was read from) to files that load again, and saving that gives the
 * same bytes: what liid reads it can write and read back, so a restart
 * never turns a state it accepted into one it refuses. */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "state.h"
#include "util.h"

#define SEP "\n@@ "

static int scratch_fd = -1;

static void write_file(const char *dir, const char *name, const void *buf, size_t len)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        fuzz_check(fd >= 0, "create %s: %s", path, strerror(errno));
        fuzz_check(write_all(fd, buf, len) == 0, "write %s", path);
}

static const char *find_sep(const char *p, const char *end)
{
        const char *s = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
        return s ? s : end;
}

static bool printable(const char *s)
{
        for (; *s; s++)
                if (*s < 0x20 || *s > 0x7e)
                        return false;
        return true;
}

/* Makes the state folder "in" from the input. */
static void make_folder(const char *data, size_t size)
{
        const char *end = data + size;
        _cleanup_free_ char *dir = xasprintf("%s/in", fuzz_scratch_dir());
        _cleanup_free_ char *sdir = xasprintf("%s/" STATE_SERVICES_DIR, dir);
        fuzz_check(mkdir(dir, 0700) == 0, "mkdir %s: %s", dir, strerror(errno));

        /* name: where the name of the next section starts, if any. */
        const char *name;
        if (size >= 3 && memcmp(data, "@@ ", 3) == 0)
                name = data + 3;
        else {
                const char *s = find_sep(data, end);
                write_file(dir, STATE_NODE_FILE, data, (size_t)(s - data));
                name = s < end ? s + strlen(SEP) : NULL;
        }
        while (name) {
                const char *nl = memchr(name, '\n', (size_t)(end - name));
                const char *body = nl ? nl + 1 : end;
                const char *next = find_sep(nl ? nl : end, end);
                _cleanup_free_ char *n = strndup(name, (size_t)((nl ? nl : end) - name));
                fuzz_check(n, "strndup");
                name = next < end ? next + strlen(SEP) : NULL;
                if (!*n || strlen(n) > 200 || strchr(n, '/') || strcmp(n, ".") == 0 ||
                    strcmp(n, "..") == 0 || !printable(n))
                        continue;
                if (mkdir(sdir, 0700) < 0)
                        fuzz_check(errno == EEXIST, "mkdir %s", sdir);
                /* A name given twice: the last text wins. */
                _cleanup_free_ char *path = xasprintf("%s/%s", sdir, n);
                unlink(path);
                write_file(sdir, n, body, body <= next ? (size_t)(next - body) : 0);
        }
}

static char *slurp(const char *dir, const char *name)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
        char *buf = NULL;
        size_t len;
        int r = read_file_capped(path, STATE_MAX_BYTES, &buf, &len);
        fuzz_check(r == 0, "read %s: %s", path, strerror(-r));
        return buf;
}

static void compare_folders(const char *a, const char *b)
{
        _cleanup_free_ char *na = slurp(a, STATE_NODE_FILE);
        _cleanup_free_ char *nb = slurp(b, STATE_NODE_FILE);
        fuzz_check(strcmp(na, nb) == 0, "state.json differs:\n%s\n%s", na, nb);

        _cleanup_free_ char *sa = xasprintf("%s/" STATE_SERVICES_DIR, a);
        _cleanup_free_ char *sb = xasprintf("%s/" STATE_SERVICES_DIR, b);
        struct dirent **la = NULL, **lb = NULL;
        int n = scandir(sa, &la, NULL, alphasort);
        int m = scandir(sb, &lb, NULL, alphasort);
        fuzz_check(n == m, "%d vs %d service files", n, m);
        for (int i = 0; i < n; i++) {
                fuzz_check(strcmp(la[i]->d_name, lb[i]->d_name) == 0, "%s vs %s", la[i]->d_name,
                           lb[i]->d_name);
                if (la[i]->d_name[0] != '.') {
                        _cleanup_free_ char *fa = slurp(sa, la[i]->d_name);
                        _cleanup_free_ char *fb = slurp(sb, lb[i]->d_name);
                        fuzz_check(strcmp(fa, fb) == 0, "%s differs:\n%s\n%s", la[i]->d_name, fa,
                                   fb);
                }
        }
        for (int i = 0; i < n; i++) {
                free(la[i]);
                free(lb[i]);
        }
        free(la);
        free(lb);
}

/* Saves s into a new folder name and loads that back. */
static struct state *save_and_load(struct state *s, const char *name)
{
        _cleanup_free_ char *dir = xasprintf("%s/%s", fuzz_scratch_dir(), name);
        fuzz_check(mkdir(dir, 0700) == 0, "mkdir %s", dir);
        int r = state_save_all(s, dir);
        fuzz_check(r == 0, "state_save_all: %s", strerror(-r));
        fuzz_check(!s->legacy, "still legacy after a save");

        struct state *back = NULL;
        _cleanup_free_ char *error = NULL;
        r = state_load(dir, &back, &error);
        fuzz_check(r == 0, "a state liid wrote does not load: %s", error);
        fuzz_check(!back->legacy, "read back as legacy");
        return back;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (scratch_fd < 0) {
                scratch_fd = open(fuzz_scratch_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                fuzz_check(scratch_fd >= 0, "open scratch");
        }
        make_folder((const char *)data, size);

        _cleanup_free_ char *in = xasprintf("%s/in", fuzz_scratch_dir());
        struct state *s = NULL;
        _cleanup_free_ char *error = NULL;
        int r = state_load(in, &s, &error);
        fuzz_note("state_load: %s", r < 0 ? error : "loaded");
        if (r < 0) {
                fuzz_check(!s && fuzz_message_is_clean(error), "unclean error: %s",
                           error ? error : "(none)");
                fuzz_check(strncmp(error, in, strlen(in)) == 0, "error names no file: %s", error);
        } else {
                fuzz_check(!error, "success with an error: %s", error);
                struct state *once = save_and_load(s, "once");
                struct state *twice = save_and_load(once, "twice");
                _cleanup_free_ char *a = xasprintf("%s/once", fuzz_scratch_dir());
                _cleanup_free_ char *b = xasprintf("%s/twice", fuzz_scratch_dir());
                compare_folders(a, b);
                state_free(twice);
                state_free(once);
                state_free(s);
        }
        fuzz_remove_tree(scratch_fd, "in");
        fuzz_remove_tree(scratch_fd, "once");
        fuzz_remove_tree(scratch_fd, "twice");
        return 0;
}
