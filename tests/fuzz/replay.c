/* Replays files through a fuzz target without libFuzzer, for `make check`:
 * each argument is a file or a folder whose files are fed, in name order,
 * to LLVMFuzzerTestOneInput(). A crash or a broken promise aborts, which
 * fails the test; a clean run prints how many inputs it replayed. */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "util.h"

static void replay_file(const char *path)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = read_file_capped(path, 16 << 20, &buf, &len);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                exit(EXIT_FAILURE);
        }
        /* A copy of exactly len bytes, so that ASan sees a read past the
         * end as libFuzzer's own buffer would show it. */
        uint8_t *copy = malloc(len ? len : 1);
        if (!copy)
                abort();
        memcpy(copy, buf, len);
        LLVMFuzzerTestOneInput(copy, len);
        free(copy);
}

static int filter(const struct dirent *de)
{
        return de->d_name[0] != '.';
}

int main(int argc, char **argv)
{
        size_t n = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return EXIT_FAILURE;
                }
                if (!S_ISDIR(st.st_mode)) {
                        replay_file(argv[i]);
                        n++;
                        continue;
                }
                struct dirent **list;
                int m = scandir(argv[i], &list, filter, alphasort);
                if (m < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return EXIT_FAILURE;
                }
                for (int j = 0; j < m; j++) {
                        _cleanup_free_ char *path = xasprintf("%s/%s", argv[i], list[j]->d_name);
                        fprintf(stderr, "replaying %s\n", path);
                        replay_file(path);
                        free(list[j]);
                        n++;
                }
                free(list);
        }
        if (n == 0) {
                fprintf(stderr, "no inputs to replay\n");
                return EXIT_FAILURE;
        }
        printf("%zu inputs replayed\n", n);
        return EXIT_SUCCESS;
}
