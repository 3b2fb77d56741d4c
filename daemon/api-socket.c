/* The API's listening socket: the one systemd passes, or one liid creates
 * and, on the way out, removes if it is still the one it bound. What may
 * be replaced at the path, and how, is api_new()'s promise (api.h). */
#include "api-socket.h"

#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "util.h"

static int socket_from_systemd(int *ret_fd)
{
        int n = sd_listen_fds(1);
        if (n <= 0)
                return n;
        if (n != 1 || sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
                return -EBADFD;
        *ret_fd = SD_LISTEN_FDS_START;
        return 1;
}

/* Whether a process still accepts connections on the socket at sa. */
static int socket_is_live(const struct sockaddr_un *sa)
{
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
                return 1;
        /* A full backlog still means someone listens. */
        if (errno == EAGAIN || errno == EINPROGRESS)
                return 1;
        if (errno == ECONNREFUSED || errno == ENOENT)
                return 0;
        return -errno;
}

/* Decides whether the path may be bound: free, or a stale socket of ours.
 * The errors name the reason: -ELOOP a symlink, -EEXIST not a socket,
 * -EOWNERDEAD another user's socket (an errno nothing else here returns, so
 * that the message can say what it means), -EADDRINUSE a live socket. */
static int socket_path_prepare(const struct sockaddr_un *sa)
{
        struct stat st;
        if (lstat(sa->sun_path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISLNK(st.st_mode))
                return -ELOOP;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        if (st.st_uid != geteuid())
                return -EOWNERDEAD;
        int r = socket_is_live(sa);
        if (r < 0)
                return r;
        if (r > 0)
                return -EADDRINUSE;
        if (unlink(sa->sun_path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int parent_dir_ensure(const char *path)
{
        _cleanup_free_ char *copy = xstrdup(path);
        const char *dir = dirname(copy);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int socket_create(const char *path, gid_t gid, int *ret_fd, struct stat *ret_st)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t len = strlen(path);
        if (len == 0)
                return -EINVAL;
        if (len >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);

        int r = parent_dir_ensure(path);
        if (r < 0)
                return r;
        r = socket_path_prepare(&sa);
        if (r < 0)
                return r;

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;

        /* fchmod() on a socket does not reach its file, so the mode comes
         * from the umask at bind(): 0600 at first, so that nobody but us can
         * connect before the group is set, then widened to 0660. The umask
         * is process-wide, but making a concurrent file more private for an
         * instant is harmless. */
        mode_t old = umask(0177);
        r = bind(fd, (const struct sockaddr *)&sa, sizeof sa);
        int saved = errno;
        umask(old);
        if (r < 0)
                return -saved;

        struct stat st;
        if (lstat(path, &st) < 0 || (gid != (gid_t)-1 && lchown(path, (uid_t)-1, gid) < 0) ||
            chmod(path, 0660) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                unlink(path);
                return r;
        }
        *ret_st = st;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static const char *socket_error_reason(int r)
{
        switch (r) {
        case -ELOOP:
                return "it is a symbolic link, refusing to replace it";
        case -EEXIST:
                return "a file that is not a socket is there, refusing to replace it";
        case -EOWNERDEAD:
                return "a socket owned by another user is there, refusing to replace it";
        case -EPERM:
                /* bind() and chmod() of our own socket do not fail so: it is
                 * the chown to read_group, which needs CAP_CHOWN. */
                return "cannot give it to read_group (liid needs CAP_CHOWN for that)";
        case -EADDRINUSE:
                return "another process is listening on it";
        default:
                return NULL;
        }
}

int api_socket_open(const char *path, gid_t read_gid, struct api_socket *ret)
{
        int fd = -1;
        int r = socket_from_systemd(&fd);
        if (r > 0) {
                log_info("Serving the API on the socket passed by systemd.");
                /* accept() must not block the loop when the backlog is
                 * empty; the socket liid creates is non-blocking already. */
                int flags = fcntl(fd, F_GETFL);
                if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                        return log_error_errno(errno,
                                               "Cannot use the socket passed by systemd: %m");
                *ret = (struct api_socket){.fd = fd};
                return 0;
        }
        if (r < 0)
                log_warning_errno(r, "Ignoring the sockets passed by systemd, expected one Unix "
                                     "stream socket: %m");

        if (!path)
                return log_error_errno(EINVAL, "No API socket path configured.");

        struct stat st = {};
        r = socket_create(path, read_gid, &fd, &st);
        if (r < 0) {
                const char *reason = socket_error_reason(r);
                if (reason)
                        return log_error_errno(r, "Cannot create the API socket %s: %s.", path,
                                               reason);
                return log_error_errno(r, "Cannot create the API socket %s: %m", path);
        }

        *ret = (struct api_socket){
            .fd = fd,
            .path = xstrdup(path),
            .dev = st.st_dev,
            .ino = st.st_ino,
        };
        return 0;
}

void api_socket_remove(struct api_socket *s)
{
        struct stat st;
        if (!s->path)
                return;
        if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == s->dev &&
            st.st_ino == s->ino)
                unlink(s->path);
        free(s->path);
        s->path = NULL;
}
