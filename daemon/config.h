/* liid's configuration: /etc/lii/liid.conf (INI, read with libinih) with
 * command-line flags on top. Unknown sections or keys, bad values (a
 * relative path among them) and a missing file are errors that name the
 * file and line; folders that cannot work are refused at start, naming the
 * key, the path and the reason. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_DEFAULT_PATH "/etc/lii/liid.conf"

struct config {
        char *source_url;
        uint64_t poll_interval_usec;
        uint64_t fetch_timeout_usec; /* a document or signature GET, whole */
        uint64_t artifact_min_rate;  /* bytes/s an artifact download must average */
        bool require_signature;
        char *ca_file;
        char *desired_keys;
        char *artifact_keys;
        char *node_name;
        char *state_dir;
        char *socket_path;
        char *bus;
        char *slice;
        unsigned max_parallel;
        unsigned keep_revisions;
        char *read_group;
        char *admin_group;
        int log_level;
        /* [etcd], for etcd(s):// sources */
        char *etcd_ca_file;
        char *etcd_cert_file;
        char *etcd_key_file;
        char *etcd_username; /* with etcd_password_file: etcd's own authentication */
        char *etcd_password_file;
        uint64_t etcd_lease_ttl_usec; /* for the node's lease (fleet mode), 2 s at least */
        char *config_path;            /* the file read, if any (instances must not see it) */
};

/* Fills in the built-in defaults. */
void config_init_defaults(struct config *c);
/* Reads an INI file over the current values. When missing_ok and the file
 * does not exist, returns 0 and changes nothing. On failure returns a
 * negative errno and sets *ret_error ("FILE:LINE: reason", malloc'ed). */
int config_load_file(struct config *c, const char *path, bool missing_ok, char **ret_error);
/* Sets one value by section and key, as the INI reader does; used for the
 * file and for the command-line flags. On failure returns -EINVAL and sets
 * *ret_error to a malloc'ed reason (without the file:line prefix). */
int config_set(struct config *c, const char *section, const char *key, const char *value,
               char **ret_error);
/* Makes sure the configured folders can work, before liid touches them:
 * makes the missing folders above state_dir and the socket's folder (0755),
 * and refuses a state_dir that is not a folder, belongs to another user, is
 * writable by other users or not by liid, or is on a file system mounted noexec
 * (the instances execute from the store in it), and a socket folder that
 * liid cannot write in or another user owns. socket_passed (systemd passed
 * the socket) skips the socket's folder. With etcd.username set, the
 * etcd.password_file must be there and readable. On failure returns a
 * negative errno and sets *ret_error to "KEY: 'PATH' reason" (malloc'ed). */
int config_prepare_paths(const struct config *c, bool socket_passed, char **ret_error);
void config_done(struct config *c);
