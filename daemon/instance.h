/* How one instance of a service becomes systemd units: the instance itself
 * (lii-<service>@<generation>.service) and, for exec health checks, one
 * short-lived check unit per probe that runs with the same sandbox and
 * environment. Everything here derives from the spec, the generation, the
 * port and the unpacked artifact root.
 *
 * An instance sees its own artifact, read-only, at INSTANCE_ARTIFACT_DIR,
 * wherever the store is on the host (a store under a folder that its user
 * cannot search, such as /root, works), and sees none of liid's own files:
 * the rest of the store, the state files, the keys, the configuration and
 * the API socket are hidden from it. */
#pragma once

#include <stdint.h>

#include "desired.h"
#include "health.h"
#include "systemd.h"

struct config;
struct exec_probe;

/* What instances are made with, one per engine: the service manager (NULL
 * while liid is not connected to it), the configuration (the slice, and
 * what instances must not see), and the exec probes in flight. */
struct instance_host {
        struct systemd *systemd;
        const struct config *cfg;
        struct exec_probe *probes;
};

/* The artifact's place inside the instance's mount namespace, on an empty
 * read-only tmpfs over INSTANCE_RUN_DIR (which also hides liid's socket
 * folder when it is the default one). */
#define INSTANCE_RUN_DIR      "/run/lii"
#define INSTANCE_ARTIFACT_DIR INSTANCE_RUN_DIR "/artifact"

struct instance_env {
        struct instance_host *host;
        char *service;
        uint64_t generation;
        int port;
        char *root; /* the unpacked artifact, on the host */
        struct service_spec *spec;
        unsigned checks; /* exec probes started, for unique check unit names */
        struct health_exec exec;
};

struct instance_env *instance_env_new(struct instance_host *h, const char *service,
                                      uint64_t generation, int port, const char *root,
                                      const struct service_spec *spec);
struct instance_env *instance_env_free(struct instance_env *ie);

/* Starts the instance's own unit. */
int instance_env_start(struct instance_env *ie, const char *unit, systemd_job_cb cb,
                       void *userdata);
/* Frees the exec probes whose jobs will never report (systemd is gone). */
void instance_probes_free(struct instance_host *h);
/* The health target with the instance's variables expanded, or NULL. */
char *instance_env_health_target(const struct instance_env *ie);
