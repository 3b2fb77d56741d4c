/* The integration-test harness: a private systemd user manager, a real liid
 * with its own state folder and keys, desired-state documents signed with the
 * real minisign tool, and liictl/HTTP calls the way a user makes them. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "etcd.h"
#include "nginx.h"

struct h_env {
        char dir[512];     /* this test's folder, outside /tmp (PrivateTmp) */
        char runtime[600]; /* XDG_RUNTIME_DIR of the private manager */
        char bus[700];     /* its private D-Bus address */
        char socket[600];  /* liid's API socket */
        char config[600];
        char state_dir[600];
        char www[600]; /* where documents and artifacts are published */
        pid_t manager_pid;
        pid_t liid_pid;
        unsigned serial;
        struct h_nginx nginx; /* after h_serve_over_http() */
        char source_url[700];
        /* What the configuration was last written with, so that it can be
         * written again with one part changed. */
        char poll_interval[32];
        char fetch_timeout[32]; /* [source] fetch_timeout; empty: liid's default */
        unsigned max_parallel;
        char ca_file[600];
        char read_group[64]; /* [api], empty unless h_set_api_groups() */
        char admin_group[64];
        bool state_tmpfs; /* state_dir is a tmpfs of its own (h_setup_tmpfs_state()) */
        /* When set, h_publish() writes absolute artifact URLs, BASE/FILE
         * (a document from etcd must); else relative ones. */
        char artifact_base[700];
        char config_extra[2048]; /* appended to liid.conf as it is */
};

/* Creates the folder, keys and configuration and starts the manager. */
/* A datagram socket at path that receives sd_notify() messages, so that the
 * harness learns that a manager or liid is ready instead of guessing. */
int h_notify_open(const char *path);
/* Waits for READY=1 on fd from pid until deadline_usec (monotonic); fails
 * the test when pid exits first or time runs out. */
void h_notify_wait_ready(int fd, pid_t pid, const char *what, uint64_t deadline_usec);
/* A loopback TCP port that nothing has bound at the time of the call. */
int h_free_port(void);

void h_setup(struct h_env *env, const char *name);
/* The same with the state folder on a tmpfs of size bytes, so that a test
 * can fill it. The test's process first moves to a mount namespace of its
 * own, which the manager and liid inherit: the mount goes with them. Use
 * from a checked fixture (it runs in the test's own process). */
void h_setup_tmpfs_state(struct h_env *env, const char *name, unsigned long long size);
/* Stops liid and the manager (which stops every instance) and removes the
 * folder. */
void h_teardown(struct h_env *env);

/* Serves the published folder with a real nginx and points liid's source
 * at it (https with the harness CA as ca_file, or plain http), polling
 * every poll_interval (e.g. "300ms"). Call before h_start_liid(). */
void h_serve_over_http(struct h_env *env, bool https, const char *poll_interval,
                       const char *extra_locations);
/* Signs a file with the test's artifact key (FILE.minisig). */
void h_sign_artifact(struct h_env *env, const char *path);

/* Rewrites the configuration with these [api] groups (NULL or "" for
 * none). Call before h_start_liid(). */
void h_set_api_groups(struct h_env *env, const char *read_group, const char *admin_group);
/* Sets [paths] state_dir. Call before h_start_liid(). */
void h_set_state_dir(struct h_env *env, const char *dir);
/* Sets [rollout] max_parallel (4 unless set). Call before h_start_liid(). */
void h_set_max_parallel(struct h_env *env, unsigned n);
/* Appends text (whole sections) to liid.conf. Call before h_start_liid(). */
void h_set_config_extra(struct h_env *env, const char *text);
/* Sets [source] url and poll_interval. Call before h_start_liid(). */
void h_set_source(struct h_env *env, const char *url, const char *poll_interval);
/* Sets [source] fetch_timeout (e.g. "2s"). Call before h_start_liid(). */
void h_set_fetch_timeout(struct h_env *env, const char *timeout);

/* Starts liid and returns once it told systemd-style readiness (READY=1). */
void h_start_liid(struct h_env *env);
void h_kill_liid(struct h_env *env, int sig);

/* One service entry of a document. */
struct h_service {
        const char *name;
        int artifact;           /* which sample artifact: 1, 2 or 3 */
        const char *extra_args; /* JSON array items appended to exec, e.g. ",\"--never-healthy\"" */
        const char *health;     /* JSON object for "health", or NULL for the default */
        const char *sha256;     /* override the artifact's real hash (to break it) */
        const char *artifact_file; /* another file in the published folder */
        long long size;            /* override the artifact's real size, when nonzero */
        const char *ready;         /* "notify", or NULL for the default */
        int port;                  /* a fixed port, or 0 for "auto" */
        const char *sandbox;       /* "none", or NULL for the default (strict) */
        const char *exec;          /* exec[0], or NULL for "bin/hello" */
        const char *env;           /* the "env" object as JSON text, or NULL for the default */
        const char *rollout;       /* the "rollout" block as JSON text, or NULL for none */
        const char *listen;        /* the "listen" array as JSON text, or NULL for none */
};
/* Writes desired.json with the next serial (or the one given, if nonzero)
 * and signs it with the test's desired-state key. Returns the serial. */
unsigned h_publish(struct h_env *env, const struct h_service *svcs, size_t n, unsigned serial);
/* Writes raw bytes as the document and signs them. */
void h_publish_raw(struct h_env *env, const char *doc);

/* A copy of liictl that any user can run, wherever the build is (a build
 * under /root or a 0700 home folder is out of other users' reach). */
const char *h_public_liictl(void);

/* Fails the running test with the formatted message, from anywhere. */
void h_fail_now(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* GET on liid's API; returns the HTTP status and sets *ret (NULL if no JSON). */
long h_api_get(struct h_env *env, const char *path, json_object **ret);
/* GET on liid's API; returns the HTTP status and sets *ret to the body as
 * it came (NDJSON, metrics), NUL-terminated. */
long h_api_get_text(struct h_env *env, const char *path, char **ret);
/* The number a line "series value" of GET /v1/metrics ends with, or -1
 * when there is no such line. */
long long h_metric(struct h_env *env, const char *series);
/* POST on liid's API (as root); returns the HTTP status and the answer. */
long h_api_post(struct h_env *env, const char *path, json_object **ret);
/* Runs liictl with the test's socket; returns its exit code. *ret_out (if
 * not NULL) gets its standard output. */
int h_liictl(struct h_env *env, char **ret_out, const char *const *args);
/* The same, with its standard error in *ret_err (if not NULL). */
int h_liictl_err(struct h_env *env, char **ret_out, char **ret_err, const char *const *args);
/* Runs systemctl --user against the private manager; returns its exit code
 * and its output. */
int h_systemctl(struct h_env *env, char **ret_out, const char *const *args);
/* Whether systemctl --user is-active says the unit is active. */
bool h_unit_active(struct h_env *env, const char *unit);
/* Asserts that the instance on port answers GET /version with version. */
void h_assert_answers(int port, const char *version);
/* GET http://127.0.0.1:port/path; returns the HTTP status (0 when nothing
 * answers) and the body. */
long h_http_get(int port, const char *path, char **ret_body);

/* Waits until pred(status of service) holds, for up to timeout_ms; returns
 * the status document of that moment (caller puts it) or fails the test. */
typedef bool (*h_pred)(json_object *svc, void *userdata);
json_object *h_wait_service(struct h_env *env, const char *service, h_pred pred, void *userdata,
                            int timeout_ms, const char *what);
/* The same on the whole status document. */
json_object *h_wait_status(struct h_env *env, h_pred pred, void *userdata, int timeout_ms,
                           const char *what);

/* Predicates for h_wait_*: the service runs generation *(long long *)gen,
 * healthy; the source's error mentions the text. */
bool h_runs_generation(json_object *svc, void *gen);
bool h_source_error_mentions(json_object *status, void *text);
/* Waits (30 s at most) until service runs generation gen, healthy. */
json_object *h_wait_generation(struct h_env *env, const char *service, long long gen);

/* Runs an integration suite: as root (it starts a private systemd
 * manager), or skipped with exit 77 otherwise. Returns main()'s status. */
#include <check.h>
/* Runs argv (found in PATH) with its output thrown away; returns its exit
 * status, 128 + the signal that ended it, or -1 when it could not run.
 * For useradd, groupadd and friends, whose chatter is not the test's. */
int h_run_quiet(const char *const *argv);
/* Makes the groups (if missing), or returns -1; removes them again. */
int h_groups_ensure(const char *const *names, size_t n);
void h_groups_remove(const char *const *names, size_t n);
/* Runs a suite and returns the exit status of a test program. */
int h_run_suite(Suite *s);
int h_main(Suite *s);

/* Small JSON accessors: "current.generation" style paths. */
json_object *h_json_path(json_object *o, const char *path);
const char *h_json_str(json_object *o, const char *path);
long long h_json_int(json_object *o, const char *path);
