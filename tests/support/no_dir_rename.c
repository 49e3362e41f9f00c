/* Cloud Storage FUSE's rule, for tests: directories under $TAXIFARE_NO_DIR_RENAME cannot be renamed.
 *
 * gcsfuse (Vertex AI's /gcs/ mount) refuses directory renames unless --rename-dir-limit is set
 * (the default is 0). LD_PRELOAD this library to get the same refusal (ENOSYS, "Function not
 * implemented", as gcsfuse answers) from rename(2), renameat(2) and renameat2(2) for every
 * process of a test, Python and TensorFlow's C++ alike. Each refused rename is appended to
 * $TAXIFARE_NO_DIR_RENAME_LOG when set. Files are renamed as usual (gcsfuse copies them).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int absolute(int dirfd, const char *path, char *out, size_t size) {
    char base[PATH_MAX];
    if (path[0] == '/') {
        return snprintf(out, size, "%s", path) < (int)size;
    }
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) return 0;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        if (n < 0) return 0;
        base[n] = '\0';
    }
    return snprintf(out, size, "%s/%s", base, path) < (int)size;
}

static int refused(int dirfd, const char *old) {
    const char *prefix = getenv("TAXIFARE_NO_DIR_RENAME");
    char path[PATH_MAX];
    struct stat st;
    if (!prefix || !*prefix || !absolute(dirfd, old, path, sizeof path)) return 0;
    if (strncmp(path, prefix, strlen(prefix)) != 0) return 0;
    if (fstatat(dirfd, old, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) return 0;
    const char *log = getenv("TAXIFARE_NO_DIR_RENAME_LOG");
    if (log && *log) {
        FILE *f = fopen(log, "a");
        if (f) {
            fprintf(f, "%s\n", path);
            fclose(f);
        }
    }
    errno = ENOSYS;
    return 1;
}

int rename(const char *old, const char *new) {
    static int (*real)(const char *, const char *);
    if (refused(AT_FDCWD, old)) return -1;
    if (!real) real = dlsym(RTLD_NEXT, "rename");
    return real(old, new);
}

int renameat(int olddirfd, const char *old, int newdirfd, const char *new) {
    static int (*real)(int, const char *, int, const char *);
    if (refused(olddirfd, old)) return -1;
    if (!real) real = dlsym(RTLD_NEXT, "renameat");
    return real(olddirfd, old, newdirfd, new);
}

int renameat2(int olddirfd, const char *old, int newdirfd, const char *new, unsigned int flags) {
    static int (*real)(int, const char *, int, const char *, unsigned int);
    if (refused(olddirfd, old)) return -1;
    if (!real) real = dlsym(RTLD_NEXT, "renameat2");
    return real(olddirfd, old, newdirfd, new, flags);
}
