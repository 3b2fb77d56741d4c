/* What liictl's files share: the invocation's settings, the command table
 * entry each cmd-<verb>.c defines, the transport to liid and small output
 * helpers. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lii-proto.h"
#include "util.h"

/* liid's answers are small; this only stops a broken or hostile peer from
 * filling liictl's memory. */
#define CLIENT_REPLY_MAX ((size_t)16 << 20)
/* An event is about a kilobyte; a longer line is not one of liid's. */
#define CLIENT_LINE_MAX ((size_t)64 << 10)
/* How long one request may take before liid counts as unreachable. */
#define CLIENT_REQUEST_TIMEOUT_USEC (30 * USEC_PER_SEC)

struct ctl {
        const char *socket_path;
        bool json;
        /* stdout is a terminal: humans read it. */
        bool tty;
        /* tty, and the user did not ask for NO_COLOR. */
        bool color;
};

struct cmd {
        const char *name;
        const char *args;    /* shown after the name in usage lines */
        const char *summary; /* one line for `liictl --help` */
        const char *help;    /* what `liictl <name> --help` says below the usage */
        /* argv[0] is the command name; returns a LIICTL_EXIT_* code. */
        int (*run)(struct ctl *ctl, int argc, char **argv);
};

extern const struct cmd cmd_status;
extern const struct cmd cmd_events;
extern const struct cmd cmd_wait;
extern const struct cmd cmd_sync;
extern const struct cmd cmd_pause;
extern const struct cmd cmd_resume;
extern const struct cmd cmd_rollback;
extern const struct cmd cmd_replace;
extern const struct cmd cmd_verify;
extern const struct cmd cmd_publish;
extern const struct cmd cmd_fleet;

/* How many --key options liictl publish takes. */
#define LIICTL_PUBLISH_MAX_KEYS 16

/* Runs the helper program name (liictl-verify…) in liictl's place, with
 * args as its argv: it is beside liictl in a build tree, and in
 * libexec/lii/ of the prefix liictl is installed in. Returns only when it
 * could not, having said why on stderr, with LIICTL_EXIT_FAILED. */
int ctl_exec_helper(const char *name, char *const *args);

/* liid's answer to one request. */
struct client_reply {
        int status; /* HTTP status */
        char *body; /* exactly what liid sent, NUL-terminated */
        size_t size;
        json_object *doc;    /* NULL when the body is not one JSON value */
        bool connect_failed; /* the error is about reaching the socket */
        char error[128];     /* the reason of an -EIO, for people */
};

/* Sends one request on a connection of its own and reads the whole
 * answer, framed by its Content-Length or chunks and parsed once as JSON.
 * Returns 0 when liid answered, whatever the HTTP status; otherwise a
 * negative errno: the connect() error with connect_failed set, -ETIMEDOUT
 * (nothing, or not all, within timeout_usec), -EFBIG (reply over
 * CLIENT_REPLY_MAX), or -EIO (reason in error). Does not print. */
int client_request(struct ctl *ctl, const char *method, const char *route, uint64_t timeout_usec,
                   struct client_reply *ret);
void client_reply_done(struct client_reply *r);

/* Sends a GET whose answer is a stream of lines (NDJSON) and hands each
 * line, without its newline and NUL-terminated, to on_line as soon as it
 * is complete; on_line may modify it. An answer that is not 2xx is
 * collected in ret instead, as by client_request(). timeout_usec may be
 * USEC_INFINITY for a stream that lasts until liid ends it. Returns 0 when
 * liid ended the answer properly; -ECONNRESET when the stream broke off
 * after it had begun (liid stopped, or cut off a reader that fell behind);
 * what on_line returned if that was negative (it stops the transfer);
 * -EFBIG for a line over CLIENT_LINE_MAX; otherwise as client_request(). */
int client_stream(struct ctl *ctl, const char *route, uint64_t timeout_usec,
                  int (*on_line)(char *line, size_t len, void *userdata), void *userdata,
                  struct client_reply *ret);

/* Says on stderr why a request failed or what error liid answered, and
 * returns the exit code for it. r is client_request()'s result. */
int client_fail(const struct ctl *ctl, int r, const struct client_reply *reply);

/* Builds LII_ROUTE_SERVICES + name + suffix, or prints why name is not a
 * service name and returns NULL. */
char *client_service_route(const char *name, const char *suffix);

/* Waiting for something that status shows (cmd-wait.c). A judge looks at
 * one status document: it says on stderr why when it returns WAIT_REFUSED,
 * and otherwise writes to pending what is not there yet ("hello
 * (checking)"), for the message should the wait time out. */
enum wait_verdict {
        WAIT_READY,
        WAIT_PENDING,
        WAIT_REFUSED,
};
typedef enum wait_verdict (*wait_judge)(json_object *status, FILE *pending, void *userdata);
/* Reads the status, and again whenever an event happens, until judge says
 * ready (LIICTL_EXIT_OK) or refused (LIICTL_EXIT_FAILED), or timeout has
 * passed (LIICTL_EXIT_TIMEOUT, naming what was pending; USEC_INFINITY:
 * never; 0: judge once). Errors reaching liid exit as client_fail(). */
int ctl_wait(struct ctl *ctl, uint64_t timeout, wait_judge judge, void *userdata);
/* Parses the DURATION of cmd's --timeout, or says why not (usage error)
 * and returns -EINVAL. */
int ctl_parse_timeout(const struct cmd *cmd, const char *arg, uint64_t *ret_usec);

/* Terminal output. SGR codes apply only when ctl->color is set. */
#define COLOR_RED    "\033[31m"
#define COLOR_GREEN  "\033[32m"
#define COLOR_YELLOW "\033[33m"
#define COLOR_BOLD   "\033[1m"
#define COLOR_RESET  "\033[0m"
const char *ctl_color(const struct ctl *ctl, const char *sgr);
/* Copies s with control characters replaced, so that text from liid (error
 * reasons, URLs) cannot move the cursor or recolour the terminal. */
char *ctl_printable(const char *s);
/* Whether s[0..len) is printed as it is by ctl_printable(), NULs aside. */
bool ctl_is_printable(const char *s, size_t len);
/* Colour for a service state: green running, red failed or reverting,
 * yellow on its way (pending, fetching, starting, checking), none for
 * stopping and stopped. */
const char *ctl_state_color(const struct ctl *ctl, const char *state);

/* Prints liid's JSON answer unchanged: byte for byte when a program reads
 * it, indented when a person does. */
void ctl_print_json(const struct ctl *ctl, const struct client_reply *reply);

/* Prints "liictl: <message>" and where to find help (for cmd, or global
 * when cmd is NULL) on stderr. */
void ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a command's own options with getopt_long(): --json and -h/--help
 * are common to all, shortopts and extra (terminated by a zeroed entry)
 * add the command's. Returns the next option of the command's, -1 when
 * the options end (optind then points at the first operand), or
 * CTL_GETOPT_EXIT with *ret_exit set after help or a usage error. */
#define CTL_OPT_JSON    0x100
#define CTL_GETOPT_EXIT (-2)
struct option;
int ctl_getopt(struct ctl *ctl, const struct cmd *cmd, int argc, char **argv, const char *shortopts,
               const struct option *extra, int *ret_exit);

/* json-c lookups that tolerate a missing or mistyped member. */
json_object *json_get(json_object *o, const char *key, json_type type);
const char *json_get_string(json_object *o, const char *key);

static inline void client_reply_donep(struct client_reply *r)
{
        client_reply_done(r);
}
#define _cleanup_reply_ _cleanup_(client_reply_donep)
