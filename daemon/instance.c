/* Instance and check units; see instance.h. */
#include "instance.h"

#include <string.h>

#include "config.h"
#include "state.h"
#include "store.h"
#include "unit-name.h"
#include "expand.h"
#include "util.h"

/* ${LII_ARTIFACT_DIR} is the artifact as the instance sees it. */
static struct expand_vars vars_of(const struct instance_env *ie)
{
        return (struct expand_vars){.port = ie->port,
                                    .service = ie->service,
                                    .generation = ie->generation,
                                    .artifact_dir = INSTANCE_ARTIFACT_DIR};
}

/* The environment of the desired state plus lii's own variables, which
 * come last so that they win over an entry of the same name. */
static char **environment(const struct instance_env *ie)
{
        struct expand_vars vars = vars_of(ie);
        size_t n = strv_length(ie->spec->env);
        char **env = xcalloc(n + 5, sizeof *env);
        for (size_t i = 0; i < n; i++)
                env[i] = expand_template(ie->spec->env[i], &vars);
        env[n++] = xasprintf("PORT=%d", ie->port);
        env[n++] = xasprintf("LII_SERVICE=%s", ie->service);
        env[n++] = xasprintf("LII_GENERATION=%llu", (unsigned long long)ie->generation);
        env[n++] = xasprintf("LII_ARTIFACT_DIR=%s", INSTANCE_ARTIFACT_DIR);
        return env;
}

/* argv with variables expanded; a relative command is found in the
 * artifact root. */
static char **command(const struct instance_env *ie, char *const *tpl)
{
        struct expand_vars vars = vars_of(ie);
        char **argv = expand_strv(tpl, &vars);
        if (argv[0] && argv[0][0] != '/') {
                char *exe = xasprintf(INSTANCE_ARTIFACT_DIR "/%s", argv[0]);
                free(argv[0]);
                argv[0] = exe;
        }
        return argv;
}

/* What an instance must not see, each with "-" so that a path missing on
 * this host is no error: liid's own entries of the state folder (not the
 * folder itself, which may hold the services' own StateDirectory= under
 * the system manager), the trusted keys, the configuration, a file source
 * and the API socket. */
static char **hidden_paths(const struct config *cfg)
{
        const char *source_file = NULL;
        if (cfg->source_url && strncmp(cfg->source_url, "file://", 7) == 0)
                source_file = cfg->source_url + 7;
        char **paths = xcalloc(10, sizeof *paths);
        size_t n = 0;
        paths[n++] = xasprintf("-%s/" STORE_DIR, cfg->state_dir);
        paths[n++] = xasprintf("-%s/" STATE_NODE_FILE, cfg->state_dir);
        paths[n++] = xasprintf("-%s/" STATE_SERVICES_DIR, cfg->state_dir);
        paths[n++] = xasprintf("-%s", cfg->desired_keys);
        paths[n++] = xasprintf("-%s", cfg->artifact_keys);
        paths[n++] = xasprintf("-%s", cfg->socket_path);
        if (cfg->config_path)
                paths[n++] = xasprintf("-%s", cfg->config_path);
        if (source_file) {
                paths[n++] = xasprintf("-%s", source_file);
                paths[n++] = xasprintf("-%s.minisig", source_file);
        }
        return paths;
}

/* The unit of the brief: the read-only artifact root as working directory,
 * the expanded command and environment, limits and sandbox. The strings
 * that u points to live in views, which the caller frees after the call. */
struct unit_view {
        struct bind_path artifact;
        char *tmpfs[2];
        char **hidden;
        char *log_fields[3];
};

static void unit_view_done(struct unit_view *v)
{
        strv_free(v->hidden);
        free(v->log_fields[0]);
        free(v->log_fields[1]);
}

static void unit_of(const struct instance_env *ie, struct transient_unit *u, struct unit_view *v,
                    const char *name, const char *description, char *const *argv, char *const *env,
                    const char *state_dir)
{
        const struct service_spec *spec = ie->spec;
        const struct config *cfg = ie->host->cfg;
        *v = (struct unit_view){
            .artifact = {.source = ie->root, .destination = INSTANCE_ARTIFACT_DIR},
            .tmpfs = {(char *)INSTANCE_RUN_DIR, NULL},
            .hidden = hidden_paths(cfg),
            /* One journal query (LII_SERVICE=hello) shows liid's lines
             * about a service and the service's own output. */
            .log_fields = {xasprintf("LII_SERVICE=%s", ie->service),
                           xasprintf("LII_GENERATION=%llu", (unsigned long long)ie->generation),
                           NULL},
        };
        *u = (struct transient_unit){
            .name = name,
            .description = description,
            .slice = cfg->slice,
            .argv = argv,
            .working_directory = INSTANCE_ARTIFACT_DIR,
            .environment = env,
            .notify = spec->ready == READY_NOTIFY,
            .timeout_stop_usec = spec->stop_timeout_usec,
            .memory_max = spec->memory_max,
            .cpu_quota_per_sec_usec = (uint64_t)spec->cpu_percent * 10000,
            .tasks_max = spec->tasks_max,
            .state_directory = state_dir,
            .sandbox_strict = spec->sandbox == SANDBOX_STRICT,
            /* A notify instance must be ready within the health deadline. */
            .timeout_start_usec = spec->health.deadline_usec,
            .bind_read_only = &v->artifact,
            .n_bind_read_only = 1,
            .temporary_file_systems = v->tmpfs,
            .inaccessible_paths = v->hidden,
            .log_extra_fields = v->log_fields,
        };
}

/* A service that lists addresses: every generation gets a socket unit of
 * its own holding them, in order, and last its private probe address
 * (${PORT} on loopback), so that health checks reach this generation and
 * never its predecessor. The instance receives them as LISTEN_FDS. */
static int start_with_socket(struct instance_env *ie, const struct transient_unit *u,
                             systemd_job_cb cb, void *userdata)
{
        size_t n = strv_length(ie->spec->listen);
        _cleanup_free_ char **listen = xcalloc(n + 2, sizeof *listen);
        memcpy(listen, ie->spec->listen, n * sizeof *listen);
        _cleanup_free_ char *probe = xasprintf("127.0.0.1:%d", ie->port);
        listen[n] = probe;
        char name[UNIT_NAME_SIZE];
        _cleanup_free_ char *description =
            xasprintf("lii %s generation %llu, listening sockets", ie->service,
                      (unsigned long long)ie->generation);
        struct transient_socket sock = {
            .name = unit_name_socket(name, ie->service, ie->generation),
            .description = description,
            .slice = ie->host->cfg->slice,
            .listen = listen,
        };
        return systemd_start_transient_with_socket(ie->host->systemd, &sock, u, cb, userdata);
}

int instance_env_start(struct instance_env *ie, const char *unit, systemd_job_cb cb, void *userdata)
{
        _cleanup_strv_free_ char **argv = command(ie, ie->spec->exec);
        _cleanup_strv_free_ char **env = environment(ie);
        _cleanup_free_ char *description =
            xasprintf("lii %s generation %llu", ie->service, (unsigned long long)ie->generation);
        _cleanup_free_ char *state_dir = xasprintf("lii/%s", ie->service);
        struct transient_unit u;
        struct unit_view view;
        unit_of(ie, &u, &view, unit, description, argv, env, state_dir);
        int r;
        if (!ie->host->systemd)
                r = -ENOTCONN;
        else if (ie->spec->listen)
                r = start_with_socket(ie, &u, cb, userdata);
        else
                r = systemd_start_transient(ie->host->systemd, &u, cb, userdata);
        unit_view_done(&view);
        return r;
}

char *instance_env_health_target(const struct instance_env *ie)
{
        if (!ie->spec->health.target)
                return NULL;
        struct expand_vars vars = vars_of(ie);
        return expand_template(ie->spec->health.target, &vars);
}

/* One exec probe. Its job's callback frees it, also after a cancel, which
 * only stops the unit and silences the verdict. When systemd goes away no
 * callback comes: the host keeps every probe on a list, and the engine
 * frees what is left (instance_probes_free()). */
struct exec_probe {
        struct instance_host *host;
        struct exec_probe *prev, *next;
        char *unit;
        health_exec_done done;
        void *probe;
        bool cancelled;
};

static void probe_free(struct exec_probe *p)
{
        struct instance_host *h = p->host;
        if (p->prev)
                p->prev->next = p->next;
        else
                h->probes = p->next;
        if (p->next)
                p->next->prev = p->prev;
        free(p->unit);
        free(p);
}

void instance_probes_free(struct instance_host *h)
{
        while (h->probes)
                probe_free(h->probes);
}

static void on_check_done(struct systemd *m, int r, const char *result, void *userdata)
{
        struct exec_probe *p = userdata;
        /* Losing systemd says nothing about the instance: no verdict. The
         * check is torn down with everything else, and the probe freed
         * from the list. */
        if (r == -ENOTCONN)
                return;
        if (!p->cancelled) {
                /* A oneshot's start job is "done" when the command exited 0;
                 * "failed" for another status, "timeout" past the timeout. */
                _cleanup_free_ char *detail =
                    r == 0 ? NULL
                           : xasprintf("%s %s", p->unit,
                                       result && strcmp(result, "failed") == 0
                                           ? "exited with a failure status"
                                       : result ? result
                                                : "did not run");
                p->done(p->probe, r == 0, detail);
        }
        probe_free(p);
}

static void *exec_start(void *userdata, uint64_t timeout_usec, health_exec_done done, void *probe,
                        char **ret_error)
{
        struct instance_env *ie = userdata;
        struct exec_probe *p = xcalloc(1, sizeof *p);
        p->host = ie->host;
        char name[UNIT_NAME_SIZE];
        p->unit = xstrdup(unit_name_check(name, ie->service, ie->generation, ++ie->checks));
        p->done = done;
        p->probe = probe;
        p->next = ie->host->probes;
        if (p->next)
                p->next->prev = p;
        ie->host->probes = p;

        _cleanup_strv_free_ char **argv = command(ie, ie->spec->health.exec_argv);
        _cleanup_strv_free_ char **env = environment(ie);
        _cleanup_free_ char *description = xasprintf(
            "lii %s generation %llu health check", ie->service, (unsigned long long)ie->generation);
        _cleanup_free_ char *state_dir = xasprintf("lii/%s", ie->service);
        struct transient_unit u;
        struct unit_view view;
        unit_of(ie, &u, &view, p->unit, description, argv, env, state_dir);
        u.oneshot = true;
        u.notify = false;
        u.timeout_start_usec = timeout_usec;
        u.runtime_max_usec = timeout_usec;
        int r = ie->host->systemd ? systemd_start_transient(ie->host->systemd, &u, on_check_done, p)
                                  : -ENOTCONN;
        unit_view_done(&view);
        if (r < 0) {
                *ret_error = xasprintf("cannot start %s: %s", p->unit, strerror(-r));
                probe_free(p);
                return NULL;
        }
        return p;
}

static void exec_cancel(void *handle)
{
        struct exec_probe *p = handle;
        p->cancelled = true;
        /* What the check unit does after this is of no interest. */
        if (p->host->systemd)
                (void)systemd_stop_unit(p->host->systemd, p->unit, NULL, NULL);
}

struct instance_env *instance_env_new(struct instance_host *h, const char *service,
                                      uint64_t generation, int port, const char *root,
                                      const struct service_spec *spec)
{
        struct instance_env *ie = xcalloc(1, sizeof *ie);
        _cleanup_free_ char *error = NULL;
        if (service_spec_parse(service, spec->spec_json, &ie->spec, &error) < 0) {
                free(ie);
                return NULL;
        }
        ie->host = h;
        ie->service = xstrdup(service);
        ie->generation = generation;
        ie->port = port;
        ie->root = xstrdup(root);
        ie->exec = (struct health_exec){.start = exec_start, .cancel = exec_cancel, .userdata = ie};
        return ie;
}

struct instance_env *instance_env_free(struct instance_env *ie)
{
        if (ie) {
                service_spec_free(ie->spec);
                free(ie->service);
                free(ie->root);
                free(ie);
        }
        return NULL;
}
