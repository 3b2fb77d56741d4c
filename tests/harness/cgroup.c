/* Private cgroups for test managers; see cgroup.h. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void for_each_hierarchy(const char *name, void (*f)(const char *dir))
{
        char dir[512];
        if (access("/sys/fs/cgroup/cgroup.procs", F_OK) == 0) {
                snprintf(dir, sizeof dir, "/sys/fs/cgroup/%s", name);
                f(dir);
                return;
        }
        DIR *d = opendir("/sys/fs/cgroup");
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_type == DT_DIR && de->d_name[0] != '.') {
                        snprintf(dir, sizeof dir, "/sys/fs/cgroup/%s/%s", de->d_name, name);
                        f(dir);
                }
        closedir(d);
}

static void enter(const char *dir)
{
        char procs[600];
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return;
        snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
                (void)!write(fd, "0\n", 2);
                close(fd);
        }
}

static int rmdir_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        if (flag == FTW_DP)
                (void)rmdir(path);
        return 0;
}

static void remove_dir(const char *dir)
{
        nftw(dir, rmdir_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void h_cgroup_enter(const char *name)
{
        for_each_hierarchy(name, enter);
}

void h_cgroup_remove(const char *name)
{
        for_each_hierarchy(name, remove_dir);
}
