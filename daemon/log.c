/* Log sink selection and formatting; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "unit-name.h"

int log_max_level = LOG_INFO;
static bool log_to_journal;

static const char *const level_names[] = {
    [LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
    [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s)
{
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (level_names[i] && strcmp(level_names[i], s) == 0)
                        return (int)i;
        return -EINVAL;
}

/* JOURNAL_STREAM names the device and inode of the journal stream that
 * systemd connected to stderr; only when it still matches is journald the
 * reader, so structured fields are worth sending. */
void log_open(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        struct stat st;
        unsigned long long dev, ino;
        log_to_journal = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
                         fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static void emit(int level, int error, const char *event, const char *service,
                 unsigned long long generation, const char *msg);

void log_event(const char *type, const char *service, unsigned long long generation,
               const char *message)
{
        if (LOG_INFO <= log_max_level)
                emit(LOG_INFO, 0, type, service, generation, message);
}

int log_internal(int level, int error, const char *service, unsigned long long generation,
                 const char *fmt, ...)
{
        int saved = errno;
        error = error < 0 ? -error : error;
        if (level > log_max_level) {
                errno = saved;
                return -error;
        }
        char msg[2048];
        errno = error;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);

        emit(level, error, NULL, service, generation, msg);
        errno = saved;
        return -error;
}

static void emit(int level, int error, const char *event, const char *service,
                 unsigned long long generation, const char *msg)
{
        if (log_to_journal) {
                char f[7][2200];
                struct iovec iov[7];
                size_t n = 0;
                snprintf(f[n++], sizeof f[0], "MESSAGE=%s", msg);
                snprintf(f[n++], sizeof f[0], "PRIORITY=%d", level);
                if (service)
                        snprintf(f[n++], sizeof f[0], "LII_SERVICE=%s", service);
                if (event)
                        snprintf(f[n++], sizeof f[0], "LII_EVENT=%s", event);
                if (generation)
                        snprintf(f[n++], sizeof f[0], "LII_GENERATION=%llu", generation);
                /* The instance's unit, so that its lines and lii's about it
                 * can be read together. */
                char unit[UNIT_NAME_SIZE];
                if (service && generation)
                        snprintf(f[n++], sizeof f[0], "LII_UNIT=%s",
                                 unit_name_instance(unit, service, generation));
                if (error)
                        snprintf(f[n++], sizeof f[0], "ERRNO=%d", error);
                for (size_t i = 0; i < n; i++)
                        iov[i] = (struct iovec){.iov_base = f[i], .iov_len = strlen(f[i])};
                sd_journal_sendv(iov, (int)n);
        } else {
                fprintf(stderr, "liid: %s: %s%s%s%s%s\n", level_names[level],
                        service ? service : "", service ? ": " : "", event ? event : "",
                        event ? ": " : "", msg);
        }
}
