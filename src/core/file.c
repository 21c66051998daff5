/* Whole-file reads, atomic file writes and mkdir -p.
 *
 * Cache entries and checkpoints are written by several processes at once and must never be
 * seen half-written: mt_file_write_atomic writes a uniquely named temporary file in the
 * target's directory (same filesystem, so rename() is atomic), flushes it to disk, then
 * renames it over the target and syncs the directory. Any failure before the rename removes
 * the temporary and leaves the previous file untouched (e.g. on a full disk). The file gets
 * exactly `mode` (fchmod, not filtered by the umask), so cache files shared between users
 * get the permissions the caller asked for. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "mltrain/core.h"

static mt_status open_error(int errnum, const char *path)
{
    if (errnum == ENOENT)
        return mt_err_set(MT_ERR_NOT_FOUND, "cannot open '%s': %s", path, strerror(errnum));
    return mt_err_errno(errnum, "cannot open '%s'", path);
}

/* Reads until EOF into a growing buffer (for pipes and /proc files whose size is unknown). */
static mt_status read_stream(int fd, const char *path, char **out, size_t *len, size_t max_bytes)
{
    size_t cap = 4096, n = 0;
    char *buf = mt_malloc(cap + 1);
    if (!buf) return mt_err_prefix(MT_ERR_NOMEM, "reading '%s': ", path);
    for (;;) {
        if (n == cap) {
            char *nb = mt_realloc(buf, cap * 2 + 1);
            if (!nb) {
                mt_free(buf);
                return mt_err_prefix(MT_ERR_NOMEM, "reading '%s': ", path);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            mt_free(buf);
            return mt_err_errno(e, "cannot read '%s'", path);
        }
        if (r == 0) break;
        n += (size_t)r;
        if (max_bytes > 0 && n > max_bytes) {
            mt_free(buf);
            return mt_err_set(MT_ERR_RANGE,
                              "file '%s' is more than %zu bytes, the limit for this read", path,
                              max_bytes);
        }
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return MT_OK;
}

mt_status mt_file_read_all(const char *path, char **out, size_t *len, size_t max_bytes)
{
    *out = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return open_error(errno, path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return mt_err_errno(e, "cannot stat '%s'", path);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return mt_err_set(MT_ERR_IO, "cannot read '%s': Is a directory", path);
    }
    /* st_size is 0 for many special files; read those as a stream. */
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        mt_status s = read_stream(fd, path, out, len, max_bytes);
        close(fd);
        return s;
    }
    size_t size = (size_t)st.st_size;
    if (max_bytes > 0 && size > max_bytes) {
        close(fd);
        return mt_err_set(MT_ERR_RANGE, "file '%s' is %zu bytes, more than the limit of %zu", path,
                          size, max_bytes);
    }
    char *buf = mt_malloc(size + 1);
    if (!buf) {
        close(fd);
        return mt_err_prefix(MT_ERR_NOMEM, "reading '%s': ", path);
    }
    size_t n = 0;
    while (n < size) {
        ssize_t r = read(fd, buf + n, size - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            mt_free(buf);
            close(fd);
            return mt_err_errno(e, "cannot read '%s'", path);
        }
        if (r == 0) break; /* the file shrank while we read it: return what is there */
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return MT_OK;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory holding `path`, so the rename itself is durable. */
static int sync_parent_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return ENAMETOOLONG;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    /* Some filesystems cannot sync directories; the rename is still atomic there. */
    return rc == EINVAL || rc == EROFS ? 0 : rc;
}

mt_status mt_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return mt_err_set(MT_ERR_IO, "cannot write '%s': path too long", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return mt_err_errno(errno, "cannot write '%s': cannot create a temporary file", path);
    int e = write_all(fd, data, len);
    const char *step = "write";
    if (!e && fsync(fd) != 0) {
        e = errno;
        step = "fsync";
    }
    if (!e && fchmod(fd, (mode_t)mode) != 0) {
        e = errno;
        step = "chmod";
    }
    if (close(fd) != 0 && !e) {
        e = errno;
        step = "close";
    }
    if (!e && rename(tmp, path) != 0) {
        e = errno;
        step = "rename";
    }
    if (e) {
        unlink(tmp);
        mt_status s = mt_err_set(MT_ERR_IO, "cannot write '%s' (%s of %zu bytes failed): %s", path,
                                 step, len, strerror(e));
        return s;
    }
    e = sync_parent_dir(path);
    if (e) /* the new content is in place; only its durability across a crash is unsure */
        mt_log(MT_LOG_WARN, "wrote '%s' but could not sync its directory: %s", path, strerror(e));
    return MT_OK;
}

mt_status mt_mkdirs(const char *path, unsigned mode)
{
    if (!path || !*path) return mt_err_set(MT_ERR_INVALID, "mkdirs: empty path");
    char *buf = mt_strdup(path);
    if (!buf) return mt_err_prefix(MT_ERR_NOMEM, "mkdirs '%s': ", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    mt_status st = MT_OK;
    /* Create each prefix ending before a '/', then the whole path. */
    for (char *p = buf + 1;; p++) {
        bool end = *p == '\0';
        if (!end && *p != '/') continue;
        if (p[-1] == '/') { /* repeated slash */
            if (end) break;
            continue;
        }
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) != 0) {
            int e = errno;
            struct stat sb;
            if (e == EEXIST && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode)) {
                /* fine: already there */
            } else if (e == EEXIST) {
                st = mt_err_set(MT_ERR_IO,
                                "cannot create directory '%s': '%s' exists and is "
                                "not a directory",
                                path, buf);
                break;
            } else {
                st = mt_err_errno(e, "cannot create directory '%s' (at '%s')", path, buf);
                break;
            }
        }
        *p = saved;
        if (end) break;
    }
    mt_free(buf);
    return st;
}
