/* The transient units lii starts: what one is (struct transient_unit) and
 * how that becomes the properties of StartTransientUnit. systemd.h sends
 * the call. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

/* A read-only bind mount into a unit's mount namespace. */
struct bind_path {
        const char *source;      /* on the host */
        const char *destination; /* as the unit sees it */
};

struct transient_unit {
        const char *name; /* "lii-hello@3.service" */
        const char *description;
        const char *slice; /* "lii.slice" */
        char *const *argv; /* argv[0] absolute */
        const char *working_directory;
        char *const *environment; /* "KEY=value", NULL-terminated */
        bool notify;              /* Type=notify instead of Type=exec */
        uint64_t timeout_stop_usec;
        uint64_t memory_max;             /* 0: none */
        uint64_t cpu_quota_per_sec_usec; /* 0: none; 500000 = 50% */
        uint64_t tasks_max;              /* 0: none */
        const char *state_directory;     /* "lii/hello", or NULL */
        bool sandbox_strict; /* DynamicUser, ProtectSystem=strict, NoNewPrivileges, PrivateTmp, … */
        /* How long the start may take (TimeoutStartUSec); 0: the manager's
         * default. For a notify unit this bounds the wait for READY=1. */
        uint64_t timeout_start_usec;
        /* Type=oneshot instead: the start job ends when the command exits,
         * "done" for status 0 (used for exec health checks). */
        bool oneshot;
        /* RuntimeMaxUSec; 0: unlimited. */
        uint64_t runtime_max_usec;
        /* The unit's view of the file system: read-only bind mounts
         * (BindReadOnlyPaths=), empty read-only tmpfs folders
         * (TemporaryFileSystem=), paths hidden from it (InaccessiblePaths=;
         * a "-" prefix ignores a missing path). Lists NULL-terminated. */
        const struct bind_path *bind_read_only;
        size_t n_bind_read_only;
        char *const *temporary_file_systems;
        char *const *inaccessible_paths;
        /* Fields added to every journal entry of the unit ("FIELD=value"). */
        char *const *log_extra_fields;
};

/* A socket unit that hands its listening sockets to the service of the
 * same name (lii-hello@3.socket to lii-hello@3.service): one stream socket
 * per address, in order, each with SO_REUSEPORT so that the sockets of two
 * generations share an address. */
struct transient_socket {
        const char *name; /* "lii-hello@3.socket" */
        const char *description;
        const char *slice;
        char *const *listen; /* "0.0.0.0:8080", "[::]:8080"; NULL-terminated */
};

/* Appends s's properties to msg, which has its a(sv) open. */
int systemd_unit_append_socket_properties(sd_bus_message *msg, const struct transient_socket *s);

/* Appends u's properties, one (sv) each, to msg, which has its a(sv)
 * open. Some sandbox options only work under the system manager and are
 * left out for a user manager (is_system false). Returns sd-bus's
 * negative errno on failure. */
int systemd_unit_append_properties(sd_bus_message *msg, const struct transient_unit *u,
                                   bool is_system);
