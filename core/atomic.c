/* Atomic output files (base.h, docs/robustness.md): every file crl writes
 * for the user goes to a temporary file in the destination's folder, is
 * synced, and is renamed over the destination only when it is complete. A
 * failure removes the temporary file, so it leaves nothing behind and an
 * existing destination untouched; error lines carry the OS reason. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crl/base.h"

/* A name for a temporary sibling of path: "<dir>/.<base>.tmp-<pid>-<n><ext>"
 * (hidden; the extension kept so that tools choosing a format by name, such
 * as ffmpeg, still see it). */
static char *temp_name(const char *path, unsigned serial) {
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dir_len;
    const char *dot = strrchr(base, '.');
    const char *ext = dot && dot != base ? dot : "";
    size_t base_len = strlen(base) - strlen(ext);
    size_t cap = strlen(path) + 64;
    char *tmp = malloc(cap);
    if (!tmp) return NULL;
    snprintf(tmp, cap, "%.*s.%.*s.tmp-%ld-%u%s", (int)dir_len, path, (int)base_len, base,
             (long)getpid(), serial, ext);
    return tmp;
}

static unsigned next_serial(void) {
    static unsigned serial;
    return __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED);
}

/* Sync the folder that holds path, so that a rename survives a crash. Best
 * effort: some file systems refuse to sync a directory. */
static void sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char buf[4096];
    if (!slash) {
        snprintf(buf, sizeof buf, ".");
    } else if (slash == path) {
        snprintf(buf, sizeof buf, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof buf) return;
        memcpy(buf, path, n);
        buf[n] = '\0';
    }
    int fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int crl_atomic_temp(const char *path, char **tmp, crl_err *err) {
    *tmp = NULL;
    if (!path || !*path) return crl_errf(err, CRL_EINVAL, "output path is empty");
    for (int attempt = 0; attempt < 100; attempt++) {
        char *t = temp_name(path, next_serial());
        if (!t) return crl_errf(err, CRL_ENOMEM, "%s: out of memory", path);
        struct stat st;
        if (lstat(t, &st) != 0 && errno == ENOENT) {
            *tmp = t;
            return CRL_OK;
        }
        free(t);
    }
    return crl_errf(err, CRL_EIO, "cannot write %s: no free temporary name", path);
}

int crl_atomic_rename(const char *tmp, const char *path, crl_err *err) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    int e = 0;
    if (fd < 0 || fsync(fd) != 0) e = errno;
    if (fd >= 0) close(fd);
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        return crl_errf(err, CRL_EIO, "cannot write %s: %s", path, strerror(e));
    }
    sync_dir(path);
    return CRL_OK;
}

int crl_atomic_open(crl_atomic *a, const char *path, crl_err *err) {
    memset(a, 0, sizeof *a);
    a->fd = -1;
    if (!path || !*path) return crl_errf(err, CRL_EINVAL, "output path is empty");
    size_t n = strlen(path);
    if (!(a->path = malloc(n + 1))) return crl_errf(err, CRL_ENOMEM, "out of memory");
    memcpy(a->path, path, n + 1);
    for (int attempt = 0; attempt < 100; attempt++) {
        if (!(a->tmp = temp_name(path, next_serial()))) break;
        a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (a->fd >= 0) return CRL_OK;
        int e = errno;
        free(a->tmp);
        a->tmp = NULL;
        if (e != EEXIST) {
            free(a->path);
            a->path = NULL;
            return crl_errf(err, CRL_EIO, "cannot write %s: %s", path, strerror(e));
        }
    }
    free(a->path);
    a->path = NULL;
    return crl_errf(err, a->tmp ? CRL_EIO : CRL_ENOMEM, "cannot write %s: %s", path,
                    "no temporary file");
}

int crl_atomic_write(crl_atomic *a, const void *data, size_t n) {
    if (a->fd < 0) return -1;
    if (a->error) return -1;
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t k = write(a->fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            a->error = k < 0 ? errno : ENOSPC;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

void crl_atomic_abort(crl_atomic *a) {
    if (a->fd >= 0) close(a->fd);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
    a->fd = -1;
}

int crl_atomic_commit(crl_atomic *a, crl_err *err) {
    if (!a->path || a->fd < 0) {
        crl_atomic_abort(a);
        return crl_errf(err, CRL_EINVAL, "output file is not open");
    }
    int e = a->error;
    if (!e && fsync(a->fd) != 0) e = errno;
    if (close(a->fd) != 0 && !e) e = errno;
    a->fd = -1;
    if (!e && rename(a->tmp, a->path) != 0) e = errno;
    int rc = CRL_OK;
    if (e) {
        unlink(a->tmp);
        rc = crl_errf(err, CRL_EIO, "cannot write %s: %s", a->path, strerror(e));
    } else {
        sync_dir(a->path);
    }
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
    a->fd = -1;
    return rc;
}

int crl_atomic_write_file(const char *path, const void *data, size_t n, crl_err *err) {
    crl_atomic a;
    int rc = crl_atomic_open(&a, path, err);
    if (rc) return rc;
    crl_atomic_write(&a, data, n);
    return crl_atomic_commit(&a, err);
}
