/* Loading entry points: reading a file within the size limit, templating it (stage 1),
 * checking the size again, and handing the text to the YAML composer (parse.c). Includes
 * come back here through mt__load_path, which also keeps the stack of files being loaded
 * (canonical paths) to report include cycles as "a.yaml -> b.yaml -> a.yaml". */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_impl.h"

mt_cfg_limits mt__limits(const mt_cfg_options *opts)
{
    mt_cfg_options d;
    mt_cfg_options_init(&d);
    mt_cfg_limits l = opts ? opts->limits : d.limits;
    if (l.max_file_bytes <= 0) l.max_file_bytes = d.limits.max_file_bytes;
    if (l.max_depth <= 0) l.max_depth = d.limits.max_depth;
    if (l.max_nodes <= 0) l.max_nodes = d.limits.max_nodes;
    if (l.max_include_depth <= 0) l.max_include_depth = d.limits.max_include_depth;
    if (l.max_include_depth > 15) l.max_include_depth = 15; /* the include stack holds 16 */
    return l;
}

static mt_status too_big(mt_cfg_loc at, const char *file, size_t size, int64_t limit,
                         const char *when)
{
    char sz[64];
    if (size)
        snprintf(sz, sizeof sz, "%zu bytes", size);
    else
        snprintf(sz, sizeof sz, "more than %lld bytes", (long long)limit);
    return mt_cfg_error(MT_ERR_FORMAT, at,
                        "'%s' is %s%s, more than the limit of %lld bytes "
                        "(mt_cfg_limits.max_file_bytes)",
                        file, sz, when, (long long)limit);
}

mt_status mt__load_text(mt__loader *ld, const char *file, const char *dir, const char *text,
                        size_t len, int32_t depth, mt_cfg_node **root)
{
    mt__tmap map = {0};
    char *out = NULL;
    size_t out_len = 0;
    mt_status st = mt__template_apply(ld->doc, ld->opts, file, text, len, 0, &out, &out_len, &map);
    if (st == MT_OK && (int64_t)out_len > ld->lim.max_file_bytes) {
        mt_cfg_loc at = {file, 1, 1};
        st = too_big(at, file, out_len, ld->lim.max_file_bytes, " after templating");
    }
    if (st == MT_OK) {
        ld->bytes += (int64_t)out_len;
        if (ld->bytes > 4 * ld->lim.max_file_bytes) {
            mt_cfg_loc at = {file, 1, 1};
            st = mt_cfg_error(MT_ERR_FORMAT, at, "the included files add up to more than %lld "
                              "bytes (4 x mt_cfg_limits.max_file_bytes)",
                              (long long)(4 * ld->lim.max_file_bytes));
        }
    }
    if (st == MT_OK) st = mt__parse_yaml(ld, file, dir, out, out_len, &map, depth, root);
    mt_free(out);
    mt__tmap_deinit(&map);
    return st;
}

/* The directory part of path ("." when none). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return mt_strdup(".");
    if (slash == path) return mt_strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = mt_malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* Prefixes the current message with the include position, keeping the status. */
static mt_status at_include(mt_status st, mt_cfg_loc at, const char *path)
{
    if (at.line == 0 || st == MT_ERR_NOMEM || mt__has_position(mt_last_error())) return st;
    char msg[MT_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", mt_last_error());
    return mt_cfg_error(st, at, "!include '%s': %s", path, msg);
}

mt_status mt__load_path(mt__loader *ld, const char *path, mt_cfg_loc at, int32_t depth,
                        mt_cfg_node **root)
{
    *root = NULL;
    char canon[PATH_MAX];
    if (!realpath(path, canon)) {
        int e = errno;
        mt_status st = mt_err_set(MT_ERR_IO, "cannot open '%s': %s", path, strerror(e));
        return at_include(st, at, path);
    }
    for (int32_t i = 0; i < ld->n_stack; i++) {
        if (strcmp(ld->stack[i], canon) != 0) continue;
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        for (int32_t j = i; j < ld->n_stack; j++)
            mt_strbuf_appendf(&sb, "%s -> ", ld->stack[j]);
        mt_strbuf_append(&sb, canon);
        mt_status st =
            mt_cfg_error(MT_ERR_FORMAT, at, "include cycle: %s", sb.data ? sb.data : canon);
        mt_strbuf_deinit(&sb);
        return st;
    }
    if (ld->n_stack >= (int32_t)(sizeof ld->stack / sizeof ld->stack[0]))
        return mt_cfg_error(MT_ERR_FORMAT, at, "!include '%s': includes nested too deeply", path);
    char *text = NULL;
    size_t len = 0;
    mt_status st = mt_file_read_all(path, &text, &len, (size_t)ld->lim.max_file_bytes);
    if (st == MT_ERR_RANGE) {
        mt_cfg_loc first = {path, 1, 1};
        struct stat sb;
        size_t size = stat(path, &sb) == 0 && S_ISREG(sb.st_mode) ? (size_t)sb.st_size : 0;
        return too_big(at.line ? at : first, path, size, ld->lim.max_file_bytes, "");
    }
    if (st == MT_ERR_NOT_FOUND) st = mt_err_set(MT_ERR_IO, "%s", mt_last_error());
    if (st != MT_OK) return at_include(st, at, path);
    const char *file = mt__doc_file(ld->doc, path);
    char *dir = dir_of(path);
    char *cpy = mt_strdup(canon);
    if (!file || !dir || !cpy) {
        mt_free(text);
        mt_free(dir);
        mt_free(cpy);
        return MT_ERR_NOMEM;
    }
    ld->stack[ld->n_stack++] = cpy;
    st = mt__load_text(ld, file, dir, text, len, depth, root);
    ld->n_stack--;
    mt_free(cpy);
    mt_free(dir);
    mt_free(text);
    return st;
}

/* ---------------------------------------------------------------- public entry points */

static mt_status new_doc(mt_cfg_doc **out)
{
    mt_arena a = {0};
    mt_cfg_doc *doc = mt_arena_calloc(&a, sizeof *doc);
    if (!doc) return MT_ERR_NOMEM;
    doc->arena = a;
    *out = doc;
    return MT_OK;
}

static void loader_init(mt__loader *ld, mt_cfg_doc *doc, const mt_cfg_options *opts,
                        mt_cfg_options *dflt)
{
    if (!opts) {
        mt_cfg_options_init(dflt);
        opts = dflt;
    }
    memset(ld, 0, sizeof *ld);
    ld->doc = doc;
    ld->opts = opts;
    ld->lim = mt__limits(opts);
}

mt_status mt_cfg_load_file(mt_cfg_doc **out, const char *path, const mt_cfg_options *opts)
{
    *out = NULL;
    if (!path) return mt_err_set(MT_ERR_INVALID, "mt_cfg_load_file: NULL path");
    mt_cfg_doc *doc;
    if (new_doc(&doc) != MT_OK) return MT_ERR_NOMEM;
    mt__loader ld;
    mt_cfg_options dflt;
    loader_init(&ld, doc, opts, &dflt);
    mt_cfg_loc none = {path, 0, 0};
    mt_status st = mt__load_path(&ld, path, none, 0, &doc->root);
    if (st != MT_OK) {
        mt_cfg_doc_free(doc);
        return st;
    }
    *out = doc;
    return MT_OK;
}

mt_status mt_cfg_load_string(mt_cfg_doc **out, const char *text, size_t len, const char *name,
                             const mt_cfg_options *opts)
{
    *out = NULL;
    if (!text) return mt_err_set(MT_ERR_INVALID, "mt_cfg_load_string: NULL text");
    if (!name) name = "<string>";
    mt_cfg_doc *doc;
    if (new_doc(&doc) != MT_OK) return MT_ERR_NOMEM;
    mt__loader ld;
    mt_cfg_options dflt;
    loader_init(&ld, doc, opts, &dflt);
    mt_status st = MT_OK;
    const char *file = mt__doc_file(doc, name);
    char *dir = dir_of(name);
    if (!file || !dir) st = MT_ERR_NOMEM;
    if (st == MT_OK && (int64_t)len > ld.lim.max_file_bytes) {
        mt_cfg_loc at = {file, 1, 1};
        st = too_big(at, file, len, ld.lim.max_file_bytes, "");
    }
    if (st == MT_OK) st = mt__load_text(&ld, file, dir, text, len, 0, &doc->root);
    mt_free(dir);
    if (st != MT_OK) {
        mt_cfg_doc_free(doc);
        return st;
    }
    *out = doc;
    return MT_OK;
}
