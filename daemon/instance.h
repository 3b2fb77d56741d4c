/* How one instance of a service becomes systemd units: the instance itself
 * (lii-<service>@<generation>.service) and, for exec health checks, one
 * short-lived check unit per probe that runs with the same sandbox and
 * environment. Everything here derives from the spec, the generation, the
 * port and the unpacked artifact root. */
#pragma once

#include <stdint.h>

#include "desired.h"
#include "health.h"
#include "systemd.h"

struct engine;

struct instance_env {
        struct engine *engine;
        char *service;
        uint64_t generation;
        int port;
        char *root; /* the unpacked artifact */
        struct service_spec *spec;
        unsigned checks; /* exec probes started, for unique check unit names */
        struct health_exec exec;
};

struct instance_env *instance_env_new(struct engine *e, const char *service, uint64_t generation,
                                      int port, const char *root, const struct service_spec *spec);
struct instance_env *instance_env_free(struct instance_env *ie);

/* Starts the instance's own unit. */
int instance_env_start(struct instance_env *ie, const char *unit, systemd_job_cb cb,
                       void *userdata);
/* Frees the exec probes whose jobs will never report (systemd is gone). */
void instance_probes_free(struct engine *e);
/* The health target with the instance's variables expanded, or NULL. */
char *instance_env_health_target(const struct instance_env *ie);
