/* liid.conf: config_load_file() over the input as the file's text (an
 * anonymous file, read through /proc/self/fd), on top of the defaults, as
 * liid reads it at start; libinih splits the lines, config_set() checks
 * each value.
 *
 * Promises checked: an error is one line, "FILE:LINE: reason"; a file
 * with a line too long for libinih or a NUL byte is refused, never cut;
 * after a success the values keep the rules the rest of liid relies on:
 * paths are absolute, the source URL has one of the schemes liid can
 * fetch, numbers are within their ranges. */
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "util.h"

static void check_path(const char *what, const char *p, bool optional)
{
        if (optional && !p)
                return;
        fuzz_check(p && p[0] == '/', "%s is not absolute: %s", what, p ? p : "(none)");
}

static void check_config(const struct config *c)
{
        check_path("state_dir", c->state_dir, false);
        check_path("socket", c->socket_path, false);
        check_path("desired_keys", c->desired_keys, false);
        check_path("artifact_keys", c->artifact_keys, false);
        check_path("ca_file", c->ca_file, true);
        check_path("etcd.ca_file", c->etcd_ca_file, true);
        check_path("etcd.cert_file", c->etcd_cert_file, true);
        check_path("etcd.key_file", c->etcd_key_file, true);
        check_path("etcd.password_file", c->etcd_password_file, true);
        static const char *const schemes[] = {"file:///", "http://", "https://", "etcd://",
                                              "etcds://"};
        bool known = false;
        for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
                known |= strncmp(c->source_url, schemes[i], strlen(schemes[i])) == 0;
        fuzz_check(known, "source url %s", c->source_url);
        fuzz_check(c->max_parallel >= 1 && c->max_parallel <= 64, "max_parallel %u",
                   c->max_parallel);
        fuzz_check(c->keep_revisions >= 1 && c->keep_revisions <= 100, "keep_revisions %u",
                   c->keep_revisions);
        fuzz_check(c->poll_interval_usec > 0 && c->fetch_timeout_usec > 0 &&
                       c->artifact_min_rate > 0 && c->etcd_lease_ttl_usec >= 2 * USEC_PER_SEC,
                   "a zero duration or size");
        fuzz_check(c->slice && *c->slice && c->bus && *c->bus, "empty slice or bus");
}

/* libinih reads lines into a buffer of 200 bytes and takes the rest of a
 * longer one as a line of its own (a value cut short, the rest maybe a
 * comment), and a C string ends at a NUL: a file that loads has neither. */
static void check_lines(const uint8_t *data, size_t size)
{
        fuzz_check(!memchr(data, '\0', size), "a file with a NUL byte loaded");
        const uint8_t *p = data, *end = data + size;
        while (p < end) {
                const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = (size_t)((nl ? nl : end) - p);
                /* With its newline, if any, and a NUL it fills 200. */
                fuzz_check(len + (nl ? 1 : 0) <= 199, "a line of %zu bytes loaded", len);
                p += len + 1;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        int fd = fuzz_memfd(data, size);
        _cleanup_free_ char *path = xasprintf("/proc/self/fd/%d", fd);
        struct config c;
        config_init_defaults(&c);
        _cleanup_free_ char *error = NULL;
        int r = config_load_file(&c, path, false, &error);
        fuzz_note("config_load_file: %s", r < 0 ? error : "loaded");
        if (r < 0) {
                /* Values are quoted as written: the file is root's, so
                 * its bytes are not escaped, but a message is one line. */
                fuzz_check(error && !strchr(error, '\n'), "error: %s", error ? error : "(none)");
                fuzz_check(strncmp(error, path, strlen(path)) == 0 && error[strlen(path)] == ':',
                           "error names no file: %s", error);
        } else {
                fuzz_check(!error, "success with an error: %s", error);
                check_config(&c);
                check_lines(data, size);
        }
        config_done(&c);
        return 0;
}
