/* See exit-status.h. The table follows systemd.exec(5), "Process Exit
 * Codes"; the words are lii's. */
#include "exit-status.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "util.h"

static const struct {
        int status;
        const char *name;
        const char *words;
} systemd_codes[] = {
    {200, "CHDIR", "the working directory could not be entered"},
    {201, "NICE", "the scheduling priority could not be set"},
    {202, "FDS", "file descriptors could not be closed or passed"},
    {203, "EXEC", "the executable could not be run"},
    {204, "MEMORY", "out of memory while setting up the process"},
    {205, "LIMITS", "the resource limits could not be set"},
    {206, "OOM_ADJUST", "the OOM score could not be adjusted"},
    {207, "SIGNAL_MASK", "the signal mask could not be set"},
    {208, "STDIN", "standard input could not be set up"},
    {209, "STDOUT", "standard output could not be set up"},
    {210, "CHROOT", "the root directory could not be changed"},
    {211, "IOPRIO", "the I/O priority could not be set"},
    {212, "TIMERSLACK", "the timer slack could not be set"},
    {213, "SECUREBITS", "the secure bits could not be set"},
    {214, "SETSCHEDULER", "the scheduling policy could not be set"},
    {215, "CPUAFFINITY", "the CPU affinity could not be set"},
    {216, "GROUP", "the group could not be set"},
    {217, "USER", "the user could not be set (or the dynamic user allocated)"},
    {218, "CAPABILITIES", "the capabilities could not be dropped"},
    {219, "CGROUP", "the control group could not be set up"},
    {220, "SETSID", "a session could not be created"},
    {222, "STDERR", "standard error could not be set up"},
    {224, "PAM", "the PAM session could not be opened"},
    {225, "NETWORK", "the network namespace could not be set up"},
    {226, "NAMESPACE", "the file system namespace could not be set up"},
    {227, "NO_NEW_PRIVILEGES", "NoNewPrivileges could not be set"},
    {228, "SECCOMP", "the system call filter could not be installed"},
    {229, "SELINUX_CONTEXT", "the SELinux context could not be set"},
    {230, "PERSONALITY", "the execution domain could not be set"},
    {231, "APPARMOR_PROFILE", "the AppArmor profile could not be set"},
    {232, "ADDRESS_FAMILIES", "the address family filter could not be installed"},
    {233, "RUNTIME_DIRECTORY", "the runtime directory could not be set up"},
    {235, "CHOWN", "the socket owner could not be set"},
    {236, "SMACK_PROCESS_LABEL", "the SMACK label could not be set"},
    {237, "KEYRING", "the kernel keyring could not be set up"},
    {238, "STATE_DIRECTORY", "the state directory could not be set up"},
    {239, "CACHE_DIRECTORY", "the cache directory could not be set up"},
    {240, "LOGS_DIRECTORY", "the logs directory could not be set up"},
    {241, "CONFIGURATION_DIRECTORY", "the configuration directory could not be set up"},
    {242, "NUMA_POLICY", "the NUMA policy could not be set"},
    {243, "CREDENTIALS", "the credentials could not be set up"},
    {245, "BPF", "a BPF program could not be attached"},
};

/* The unit's Result when there is no exit status to tell. */
static const struct {
        const char *result;
        const char *words;
} results[] = {
    {"timeout", "did not start or stop in time"},
    {"oom-kill", "was killed by the kernel's OOM killer"},
    {"resources", "systemd could not set up its resources"},
    {"start-limit-hit", "was started too often"},
    {"watchdog", "missed its watchdog"},
    {"protocol", "broke the service protocol (for a notify service: no READY=1)"},
};

static char *main_process(const struct unit_status *st)
{
        if (st->exec_main_code == CLD_EXITED) {
                for (size_t i = 0; i < ELEMENTSOF(systemd_codes); i++)
                        if (systemd_codes[i].status == st->exec_main_status)
                                return xasprintf("%d/%s: %s", st->exec_main_status,
                                                 systemd_codes[i].name, systemd_codes[i].words);
                return xasprintf("exited with status %d", st->exec_main_status);
        }
        if (st->exec_main_code == CLD_KILLED || st->exec_main_code == CLD_DUMPED) {
                const char *abbrev = sigabbrev_np(st->exec_main_status);
                _cleanup_free_ char *sig = abbrev ? xasprintf("SIG%s", abbrev)
                                                  : xasprintf("signal %d", st->exec_main_status);
                return xasprintf("killed by %s%s", sig,
                                 st->exec_main_code == CLD_DUMPED ? " (core dumped)" : "");
        }
        return NULL;
}

char *exit_status_describe(const struct unit_status *st)
{
        _cleanup_free_ char *what = main_process(st);
        bool told = what != NULL;
        for (size_t i = 0; !told && i < ELEMENTSOF(results); i++)
                if (strcmp(st->result, results[i].result) == 0) {
                        what = xstrdup(results[i].words);
                        told = true;
                }
        if (!what)
                what = xasprintf("is %s", st->active_state[0] ? st->active_state : "gone");
        if (!st->result[0] || strcmp(st->result, "success") == 0)
                return TAKE_PTR(what);
        return xasprintf("%s (result: %s)", what, st->result);
}
