/* Stage 5 of loading: `${VAR}` substitution in strings and checkpoint paths, as Pylearn2's
 * string_utils.preprocess does it: the variables table (mt_cfg_options.vars) first, then the
 * environment; MLTRAIN_X and PYLEARN2_X stand in for each other in both (so a Pylearn2 file's
 * ${PYLEARN2_DATA_PATH} works with MLTRAIN_DATA_PATH set, and the reverse). An unknown
 * variable is an error with the closest known name; a missing data path gets its own hint.
 * Also the standard job-file variables (mt_cfg_job_vars). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_impl.h"

extern char **environ;

/* The other spelling of a MLTRAIN_/PYLEARN2_ name into buf, or false. */
static bool alt_name(const char *name, char *buf, size_t cap)
{
    if (strncmp(name, "MLTRAIN_", 8) == 0)
        return (size_t)snprintf(buf, cap, "PYLEARN2_%s", name + 8) < cap;
    if (strncmp(name, "PYLEARN2_", 9) == 0)
        return (size_t)snprintf(buf, cap, "MLTRAIN_%s", name + 9) < cap;
    return false;
}

static const char *table_get(const mt_cfg_options *o, const char *name)
{
    const char *found = NULL; /* the last entry wins */
    for (int32_t i = 0; i < o->n_vars; i++)
        if (o->vars[i].name && o->vars[i].value && strcmp(o->vars[i].name, name) == 0)
            found = o->vars[i].value;
    return found;
}

static const char *lookup(const mt_cfg_options *o, const char *name)
{
    char alt[256];
    bool has_alt = alt_name(name, alt, sizeof alt);
    const char *v = table_get(o, name);
    if (!v && has_alt) v = table_get(o, alt);
    if (v || o->no_environment) return v;
    v = getenv(name);
    if (!v && has_alt) v = getenv(alt);
    return v;
}

/* The error for an unknown variable, with a suggestion from the table and the environment. */
static mt_status unknown_var(const mt_cfg_options *o, const char *name, mt_cfg_loc loc)
{
    const char *tail = strncmp(name, "MLTRAIN_", 8) == 0    ? name + 8
                       : strncmp(name, "PYLEARN2_", 9) == 0 ? name + 9
                                                            : NULL;
    if (tail && strcmp(tail, "DATA_PATH") == 0)
        return mt_cfg_error(MT_ERR_FORMAT, loc,
                            "unknown variable '${%s}': set MLTRAIN_DATA_PATH (or "
                            "PYLEARN2_DATA_PATH) to the folder that holds the datasets, e.g. "
                            "export MLTRAIN_DATA_PATH=$HOME/data",
                            name);
    int32_t n_env = 0;
    if (!o->no_environment && environ)
        while (environ[n_env])
            n_env++;
    int32_t n = o->n_vars + n_env;
    char **names = mt_calloc((size_t)(n > 0 ? n : 1), sizeof *names);
    if (!names) return MT_ERR_NOMEM;
    int32_t k = 0;
    for (int32_t i = 0; i < o->n_vars; i++)
        if (o->vars[i].name) names[k++] = mt_strdup(o->vars[i].name);
    for (int32_t i = 0; i < n_env; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        char *s = mt_malloc(len + 1);
        if (s) {
            memcpy(s, environ[i], len);
            s[len] = '\0';
        }
        names[k++] = s;
    }
    const char *best = mt_cfg_suggest(name, k, (const char *const *)names);
    mt_status st;
    if (best)
        st = mt_cfg_error(MT_ERR_FORMAT, loc, "unknown variable '${%s}' (did you mean '%s'?)", name,
                          best);
    else
        st = mt_cfg_error(MT_ERR_FORMAT, loc,
                          "unknown variable '${%s}' (not among the job's variables%s)", name,
                          o->no_environment ? "" : " nor in the environment");
    for (int32_t i = 0; i < k; i++)
        mt_free(names[i]);
    mt_free(names);
    return st;
}

mt_status mt__vars_subst(mt__loader *ld, const char *text, mt_cfg_loc loc, const char **out,
                         bool *changed)
{
    *out = text;
    *changed = false;
    if (!strstr(text, "${")) return MT_OK;
    const mt_cfg_options *o = ld->opts;
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    const char *p = text;
    mt_status st = MT_OK;
    for (;;) {
        const char *open = strstr(p, "${");
        if (!open) {
            mt_strbuf_append(&sb, p);
            break;
        }
        mt_strbuf_appendn(&sb, p, (size_t)(open - p));
        const char *close = strchr(open + 2, '}');
        if (!close) {
            st = mt_cfg_error(MT_ERR_FORMAT, loc, "'${' without a closing '}' in '%.200s'", text);
            break;
        }
        size_t nlen = (size_t)(close - open - 2);
        char name[256];
        if (nlen == 0 || nlen >= sizeof name) {
            st = mt_cfg_error(MT_ERR_FORMAT, loc, "bad variable name in '%.200s'", text);
            break;
        }
        memcpy(name, open + 2, nlen);
        name[nlen] = '\0';
        const char *v = lookup(o, name);
        if (v) {
            mt_strbuf_append(&sb, v);
        } else if (o->keep_unknown_vars) {
            mt_strbuf_appendn(&sb, open, nlen + 3);
        } else {
            st = unknown_var(o, name, loc);
            break;
        }
        p = close + 1;
    }
    if (st == MT_OK) st = mt_strbuf_status(&sb);
    if (st == MT_OK) {
        char *s = mt_arena_strndup(&ld->doc->arena, sb.data ? sb.data : "", sb.len);
        if (!s) st = MT_ERR_NOMEM;
        *out = s ? s : text;
        *changed = s != NULL && strcmp(s, text) != 0;
    }
    mt_strbuf_deinit(&sb);
    return st;
}

/* ---------------------------------------------------------------- job variables */

int32_t mt_cfg_job_vars(mt_cfg_var *vars, int32_t cap, const char *path, int32_t phase,
                        char **store)
{
    *store = NULL;
    if (!path || cap <= 0) return 0;
    size_t len = strlen(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t stem_len = len;
    if (len >= 5 && strcmp(path + len - 5, ".yaml") == 0)
        stem_len = len - 5;
    else if (len >= 4 && strcmp(path + len - 4, ".yml") == 0)
        stem_len = len - 4;
    if (base > path + stem_len) stem_len = len; /* ".yaml" alone is no stem */
    /* values, NUL-separated: full stem, dir, base name, stem, phase */
    size_t cap_bytes = 3 * len + 64;
    char *buf = mt_malloc(cap_bytes);
    if (!buf) return 0;
    char *vals[5];
    size_t off = 0;
    vals[0] = buf + off;
    off += (size_t)snprintf(buf + off, cap_bytes - off, "%.*s", (int)stem_len, path) + 1;
    vals[1] = buf + off;
    if (!slash)
        off += (size_t)snprintf(buf + off, cap_bytes - off, ".") + 1;
    else if (slash == path)
        off += (size_t)snprintf(buf + off, cap_bytes - off, "/") + 1;
    else
        off += (size_t)snprintf(buf + off, cap_bytes - off, "%.*s", (int)(slash - path), path) + 1;
    vals[2] = buf + off;
    off += (size_t)snprintf(buf + off, cap_bytes - off, "%s", base) + 1;
    vals[3] = buf + off;
    off +=
        (size_t)snprintf(buf + off, cap_bytes - off, "%.*s", (int)(path + stem_len - base), base) +
        1;
    vals[4] = buf + off;
    snprintf(buf + off, cap_bytes - off, "phase%d", (int)phase);
    static const char *const names[5][2] = {
        {"MLTRAIN_TRAIN_FILE_FULL_STEM", "PYLEARN2_TRAIN_FILE_FULL_STEM"},
        {"MLTRAIN_TRAIN_DIR", "PYLEARN2_TRAIN_DIR"},
        {"MLTRAIN_TRAIN_BASE_NAME", "PYLEARN2_TRAIN_BASE_NAME"},
        {"MLTRAIN_TRAIN_FILE_STEM", "PYLEARN2_TRAIN_FILE_STEM"},
        {"MLTRAIN_TRAIN_PHASE", "PYLEARN2_TRAIN_PHASE"},
    };
    int32_t n = 0, nv = phase > 0 ? 5 : 4;
    for (int32_t i = 0; i < nv; i++)
        for (int32_t j = 0; j < 2 && n < cap; j++)
            vars[n++] = (mt_cfg_var){names[i][j], vals[i]};
    *store = buf;
    return n;
}

void mt_cfg_vars_free(char *store)
{
    mt_free(store);
}
