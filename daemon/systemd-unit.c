/* The transient units lii starts, as systemd sees them: each field of
 * struct transient_unit becomes one property of StartTransientUnit's
 * a(sv) here (ExecStart, Environment, the limits, the sandbox, the unit's
 * view of the file system), so that what a unit is allowed to do can be
 * read in one file. systemd.c sends the call; instance.c fills the struct
 * from a spec. The D-Bus names and types are those of systemd 252's
 * transient properties (systemd.exec(5), org.freedesktop.systemd1(5)). */
#include "systemd-unit.h"

#include <string.h>
#include <sys/mount.h>

#include "util.h"

static int append_prop_string(sd_bus_message *msg, const char *name, const char *value)
{
        return sd_bus_message_append(msg, "(sv)", name, "s", value);
}

static int append_prop_bool(sd_bus_message *msg, const char *name, bool value)
{
        return sd_bus_message_append(msg, "(sv)", name, "b", (int)value);
}

static int append_prop_u64(sd_bus_message *msg, const char *name, uint64_t value)
{
        return sd_bus_message_append(msg, "(sv)", name, "t", value);
}

static int append_prop_strv(sd_bus_message *msg, const char *name, char *const *value)
{
        int r;

        r = sd_bus_message_open_container(msg, 'r', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "s", name);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'v', "as");
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(msg, (char **)value);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(msg);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(msg);
}

static int append_exec_start(sd_bus_message *msg, char *const *argv)
{
        int r;

        r = sd_bus_message_open_container(msg, 'r', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "s", "ExecStart");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'v', "a(sasb)");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'a', "(sasb)");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'r', "sasb");
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "s", argv[0]);
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(msg, (char **)argv);
        if (r < 0)
                return r;
        /* ignore_errors = false: a failing ExecStart fails the unit. */
        r = sd_bus_message_append(msg, "b", 0);
        if (r < 0)
                return r;
        for (int i = 0; i < 4; i++) {
                r = sd_bus_message_close_container(msg);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* BindReadOnlyPaths: a(ssbt) of source, destination, ignore a missing
 * source, mount flags. A missing artifact is an error, never ignored. */
static int append_bind_read_only(sd_bus_message *msg, const struct bind_path *binds, size_t n)
{
        int r;

        r = sd_bus_message_open_container(msg, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(msg, "s", "BindReadOnlyPaths");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'v', "a(ssbt)");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(ssbt)");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(msg, "(ssbt)", binds[i].source, binds[i].destination, 0,
                                          (uint64_t)MS_REC);
        for (int i = 0; r >= 0 && i < 3; i++)
                r = sd_bus_message_close_container(msg);
        return r;
}

/* TemporaryFileSystem: a(ss) of path and mount options; lii's are empty
 * and read-only, there only to hide what lies below. */
static int append_temporary_file_systems(sd_bus_message *msg, char *const *paths)
{
        int r;

        r = sd_bus_message_open_container(msg, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(msg, "s", "TemporaryFileSystem");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'v', "a(ss)");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(ss)");
        for (size_t i = 0; r >= 0 && paths[i]; i++)
                r = sd_bus_message_append(msg, "(ss)", paths[i], "ro");
        for (int i = 0; r >= 0 && i < 3; i++)
                r = sd_bus_message_close_container(msg);
        return r;
}

/* LogExtraFields: aay, each "FIELD=value" without a terminating NUL. */
static int append_log_extra_fields(sd_bus_message *msg, char *const *fields)
{
        int r;

        r = sd_bus_message_open_container(msg, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(msg, "s", "LogExtraFields");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'v', "aay");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "ay");
        for (size_t i = 0; r >= 0 && fields[i]; i++)
                r = sd_bus_message_append_array(msg, 'y', fields[i], strlen(fields[i]));
        for (int i = 0; r >= 0 && i < 3; i++)
                r = sd_bus_message_close_container(msg);
        return r;
}

/* systemd's hardening for sandbox: "strict". The D-Bus names and types are
 * those of systemd 252's transient properties (systemd.exec(5),
 * org.freedesktop.systemd1(5)). */
static int append_sandbox(sd_bus_message *msg, bool is_system)
{
        static const char *const bool_props[] = {
            "DynamicUser",          "NoNewPrivileges",      "PrivateTmp",      "PrivateDevices",
            "ProtectKernelModules", "ProtectControlGroups", "LockPersonality", "RestrictRealtime",
            "RestrictSUIDSGID",     "ProtectClock",         "ProtectHostname",
        };
        /* A user manager cannot set these up: in a private user manager they
         * fail the unit with 226/NAMESPACE, so they are only asked of the
         * system manager. */
        static const char *const system_bool_props[] = {
            "ProtectKernelTunables",
            "ProtectKernelLogs",
        };
        static char *const native[] = {(char *)"native", NULL};
        static char *const families[] = {(char *)"AF_INET", (char *)"AF_INET6", (char *)"AF_UNIX",
                                         NULL};
        int r;

        for (size_t i = 0; i < ELEMENTSOF(bool_props); i++) {
                r = append_prop_bool(msg, bool_props[i], true);
                if (r < 0)
                        return r;
        }
        r = append_prop_string(msg, "ProtectSystem", "strict");
        if (r < 0)
                return r;
        /* The value is the set of namespace types still allowed: none. */
        r = append_prop_u64(msg, "RestrictNamespaces", 0);
        if (r < 0)
                return r;
        r = append_prop_u64(msg, "CapabilityBoundingSet", 0);
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "(sv)", "UMask", "u", (uint32_t)0077);
        if (r < 0)
                return r;
        r = append_prop_strv(msg, "SystemCallArchitectures", native);
        if (r < 0)
                return r;

        /* (bas): true makes the list an allow-list. */
        r = sd_bus_message_open_container(msg, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(msg, "s", "RestrictAddressFamilies");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'v', "(bas)");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'r', "bas");
        if (r >= 0)
                r = sd_bus_message_append(msg, "b", 1);
        if (r >= 0)
                r = sd_bus_message_append_strv(msg, (char **)families);
        for (int i = 0; r >= 0 && i < 3; i++)
                r = sd_bus_message_close_container(msg);
        if (r < 0)
                return r;

        if (!is_system)
                return 0;
        r = append_prop_string(msg, "ProtectHome", "yes");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(system_bool_props); i++) {
                r = append_prop_bool(msg, system_bool_props[i], true);
                if (r < 0)
                        return r;
        }
        return 0;
}

int systemd_unit_append_properties(sd_bus_message *msg, const struct transient_unit *u,
                                   bool is_system)
{
        int r;

        r = append_prop_string(msg, "Description", u->description ? u->description : u->name);
        if (r >= 0 && u->slice)
                r = append_prop_string(msg, "Slice", u->slice);
        if (r >= 0)
                r = append_prop_string(msg, "Type",
                                       u->oneshot  ? "oneshot"
                                       : u->notify ? "notify"
                                                   : "exec");
        if (r >= 0 && u->timeout_start_usec > 0)
                r = append_prop_u64(msg, "TimeoutStartUSec", u->timeout_start_usec);
        if (r >= 0 && u->runtime_max_usec > 0)
                r = append_prop_u64(msg, "RuntimeMaxUSec", u->runtime_max_usec);
        /* A notify service often reports readiness from a helper (a wrapper
         * script running systemd-notify) rather than from its main process.
         * The default NotifyAccess=main takes READY=1 only from the main PID,
         * which an unprivileged helper (DynamicUser) cannot speak for. */
        if (r >= 0 && u->notify)
                r = append_prop_string(msg, "NotifyAccess", "all");
        /* Generations never repeat, so a failed instance is of no use under
         * its name: collecting it at once keeps failed units from piling up
         * in the slice without lii having to reset them. */
        if (r >= 0)
                r = append_prop_string(msg, "CollectMode", "inactive-or-failed");
        if (r >= 0)
                r = append_exec_start(msg, u->argv);
        if (r >= 0 && u->working_directory)
                r = append_prop_string(msg, "WorkingDirectory", u->working_directory);
        if (r >= 0 && u->environment)
                r = append_prop_strv(msg, "Environment", u->environment);
        if (r >= 0 && u->timeout_stop_usec > 0)
                r = append_prop_u64(msg, "TimeoutStopUSec", u->timeout_stop_usec);
        if (r >= 0 && u->memory_max > 0)
                r = append_prop_u64(msg, "MemoryMax", u->memory_max);
        if (r >= 0 && u->cpu_quota_per_sec_usec > 0)
                r = append_prop_u64(msg, "CPUQuotaPerSecUSec", u->cpu_quota_per_sec_usec);
        if (r >= 0 && u->tasks_max > 0)
                r = append_prop_u64(msg, "TasksMax", u->tasks_max);
        if (r >= 0 && u->state_directory) {
                char *const dirs[] = {(char *)u->state_directory, NULL};
                r = append_prop_strv(msg, "StateDirectory", dirs);
        }
        if (r >= 0 && u->n_bind_read_only > 0)
                r = append_bind_read_only(msg, u->bind_read_only, u->n_bind_read_only);
        if (r >= 0 && u->temporary_file_systems)
                r = append_temporary_file_systems(msg, u->temporary_file_systems);
        if (r >= 0 && u->inaccessible_paths)
                r = append_prop_strv(msg, "InaccessiblePaths", u->inaccessible_paths);
        if (r >= 0 && u->log_extra_fields)
                r = append_log_extra_fields(msg, u->log_extra_fields);
        if (r >= 0 && u->sandbox_strict)
                r = append_sandbox(msg, is_system);
        return r;
}

static int append_listen(sd_bus_message *msg, char *const *listen)
{
        int r = sd_bus_message_open_container(msg, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(msg, "s", "Listen");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'v', "a(ss)");
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(ss)");
        for (char *const *a = listen; r >= 0 && a && *a; a++)
                r = sd_bus_message_append(msg, "(ss)", "Stream", *a);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        return r;
}

int systemd_unit_append_socket_properties(sd_bus_message *msg, const struct transient_socket *s)
{
        int r = append_prop_string(msg, "Description", s->description ? s->description : s->name);
        if (r >= 0 && s->slice)
                r = append_prop_string(msg, "Slice", s->slice);
        if (r >= 0)
                r = append_listen(msg, s->listen);
        /* The old and the new generation listen on the same addresses at
         * once, each through its own sockets: the kernel spreads new
         * connections over every socket that accepts. */
        if (r >= 0)
                r = append_prop_bool(msg, "ReusePort", true);
        /* A socket that failed to listen goes away with its service. */
        if (r >= 0)
                r = append_prop_string(msg, "CollectMode", "inactive-or-failed");
        return r;
}
