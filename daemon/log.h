/* liid's logging: to journald with structured fields when stderr is
 * connected to the journal, to stderr otherwise. Only code that decides
 * what to do about an error logs it, once. */
#pragma once

#include <syslog.h>

#include "util.h"

extern int log_max_level;

/* Parses "error", "warning", "notice", "info", "debug". */
int log_level_from_string(const char *s);
void log_open(void);

/* service may be NULL; generation 0 means none. Both become the journal
 * fields LII_SERVICE and LII_GENERATION (and with both, LII_UNIT) so that
 * `journalctl LII_SERVICE=x` works. */
int log_internal(int level, int error, const char *service, unsigned long long generation,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* An event (see events.h): logged at info with LII_EVENT=<type> besides the
 * service and generation fields, so that `journalctl LII_EVENT=rollout.failed`
 * finds every refused rollout. */
void log_event(const char *type, const char *service, unsigned long long generation,
               const char *message);

#define log_full_errno(level, error, ...) log_internal(level, error, NULL, 0, __VA_ARGS__)
#define log_error(...)                    log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_warning(...)                  log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_notice(...)                   log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_info(...)                     log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...)                    log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
/* These return -abs(error), so `return log_error_errno(r, "…: %m");` works;
 * %m prints strerror(error). */
#define log_error_errno(error, ...)   log_full_errno(LOG_ERR, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_debug_errno(error, ...)   log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
/* Per-service messages carry the service and generation as fields. */
#define log_svc(level, svc, gen, ...) log_internal(level, 0, svc, gen, __VA_ARGS__)
