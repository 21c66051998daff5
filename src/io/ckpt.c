/* Checkpoints in memory: named host arrays (C-order bytes), typed attributes and monitor
 * histories, each kept in insertion order, with the put/get API of io.h. The file format lives
 * in ckpt_hdf5.c; this file validates names and types so that whatever is put here can be
 * written, and so lookups fail with messages naming the checkpoint's file and the entry. */
#include <stdio.h>
#include <string.h>

#include "io_impl.h"
#include "mltrain/gpuarray.h"

mt_status mt_ckpt_new(mt_ckpt **out)
{
    *out = mt_calloc(1, sizeof **out);
    if (!*out) return mt_err_prefix(MT_ERR_NOMEM, "mt_ckpt_new: ");
    return MT_OK;
}

static void attr_clear(mt__ckpt_attr *a)
{
    mt_free(a->name);
    mt_free(a->s);
    memset(a, 0, sizeof *a);
}

void mt_ckpt_free(mt_ckpt *c)
{
    if (!c) return;
    for (int32_t i = 0; i < c->n_attrs; i++)
        attr_clear(&c->attrs[i]);
    for (int32_t i = 0; i < c->n_arrays; i++) {
        mt_free(c->arrays[i].name);
        mt_free(c->arrays[i].data);
    }
    for (int32_t i = 0; i < c->n_monitors; i++)
        mt_monitor_history_clear(&c->monitors[i]);
    mt_free(c->attrs);
    mt_free(c->arrays);
    mt_free(c->monitors);
    mt_free(c->path);
    mt_free(c);
}

/* "checkpoint 'file.h5'" or "checkpoint" for messages. */
static const char *ckpt_label(const mt_ckpt *c, char *buf, size_t len)
{
    if (c->path)
        snprintf(buf, len, "checkpoint '%s'", c->path);
    else
        snprintf(buf, len, "checkpoint");
    return buf;
}

/* Grows an array of `size`-byte items to hold one more. */
static mt_status grow(void **items, int32_t n, int32_t *cap, size_t size)
{
    if (n < *cap) return MT_OK;
    int32_t nc = *cap ? *cap * 2 : 8;
    void *p = mt_realloc(*items, (size_t)nc * size);
    if (!p) return mt_err_prefix(MT_ERR_NOMEM, "checkpoint: ");
    *items = p;
    *cap = nc;
    return MT_OK;
}

/* ---------------------------------------------------------------- names */

mt_status mt__ckpt_check_component(const char *name, const char *what)
{
    if (!name || !*name) return mt_err_set(MT_ERR_INVALID, "%s: empty name", what);
    if (strchr(name, '/'))
        return mt_err_set(MT_ERR_INVALID, "%s '%s': the name may not contain '/'", what, name);
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return mt_err_set(MT_ERR_INVALID, "%s '%s': not a valid name", what, name);
    return MT_OK;
}

mt_status mt__ckpt_check_array_name(const char *name, const char *what)
{
    if (!name || !*name) return mt_err_set(MT_ERR_INVALID, "%s: empty array name", what);
    const char *p = name;
    bool first = true;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return mt_err_set(MT_ERR_INVALID,
                              "%s: array name '%s' has an empty, '.' or '..' component "
                              "(names are paths like \"params/h0_W\")",
                              what, name);
        if (first && n == strlen(MT__CKPT_MONITORS) && !strncmp(p, MT__CKPT_MONITORS, n))
            return mt_err_set(MT_ERR_INVALID,
                              "%s: array name '%s' is under \"" MT__CKPT_MONITORS
                              "/\", which holds the monitor histories",
                              what, name);
        first = false;
        if (!slash) break;
        p = slash + 1;
    }
    return MT_OK;
}

static mt_status check_attr_name(const char *name)
{
    if (!name || !*name) return mt_err_set(MT_ERR_INVALID, "checkpoint: empty attribute name");
    if (!strcmp(name, "format") || !strcmp(name, "version"))
        return mt_err_set(MT_ERR_INVALID,
                          "checkpoint: attribute name '%s' is reserved for the file format", name);
    return MT_OK;
}

bool mt__ckpt_dtype_ok(mt_dtype dt)
{
    return dt == MT_FLOAT32 || dt == MT_FLOAT64 || mt_dtype_is_int(dt);
}

/* ---------------------------------------------------------------- arrays */

static int32_t find_array(const mt_ckpt *c, const char *name)
{
    for (int32_t i = 0; i < c->n_arrays; i++)
        if (!strcmp(c->arrays[i].name, name)) return i;
    return -1;
}

mt_status mt__ckpt_put_array_owned(mt_ckpt *c, const char *name, mt_dtype dt, int32_t ndim,
                                   const int64_t *dims, void *data, size_t nbytes)
{
    mt_status st = mt__ckpt_check_array_name(name, "checkpoint");
    if (st == MT_OK && !mt__ckpt_dtype_ok(dt))
        st = mt_err_set(MT_ERR_DTYPE,
                        "checkpoint: array '%s' is %s; checkpoints store float32, float64 and "
                        "integer arrays (cast it first)",
                        name, mt_dtype_name(dt));
    if (st == MT_OK && (ndim < 0 || ndim > MT_MAX_DIMS))
        st = mt_err_set(MT_ERR_INVALID, "checkpoint: array '%s' has %d dims (at most %d)", name,
                        (int)ndim, MT_MAX_DIMS);
    int32_t at = st == MT_OK ? find_array(c, name) : -1;
    for (int32_t i = 0; st == MT_OK && i < c->n_arrays; i++) {
        const char *o = c->arrays[i].name;
        size_t lo = strlen(o), ln = strlen(name);
        const char *shorter = lo < ln ? o : name, *longer = lo < ln ? name : o;
        size_t ls = lo < ln ? lo : ln;
        if (lo != ln && !strncmp(shorter, longer, ls) && longer[ls] == '/')
            st = mt_err_set(MT_ERR_INVALID,
                            "checkpoint: array '%s' cannot coexist with array '%s' (an HDF5 "
                            "dataset cannot also be a group)",
                            name, o);
    }
    char *nm = NULL;
    if (st == MT_OK && at < 0 && c->n_arrays >= MT__CKPT_MAX_ARRAYS)
        st = mt_err_set(MT_ERR_RANGE, "checkpoint: array '%s' would be array %d; a checkpoint "
                        "holds at most %d", name, (int)c->n_arrays + 1, MT__CKPT_MAX_ARRAYS);
    if (st == MT_OK && at < 0) {
        nm = mt_strdup(name);
        if (!nm) st = mt_err_prefix(MT_ERR_NOMEM, "checkpoint: ");
        if (st == MT_OK)
            st = grow((void **)&c->arrays, c->n_arrays, &c->cap_arrays, sizeof *c->arrays);
    }
    if (st != MT_OK) {
        mt_free(nm);
        mt_free(data);
        return st;
    }
    mt__ckpt_array *a;
    if (at >= 0) {
        a = &c->arrays[at];
        mt_free(a->data);
        nm = a->name;
    } else {
        a = &c->arrays[c->n_arrays++];
    }
    memset(a, 0, sizeof *a);
    a->name = nm;
    a->dtype = dt;
    a->ndim = ndim;
    for (int32_t d = 0; d < ndim; d++)
        a->dims[d] = dims[d];
    a->nbytes = nbytes;
    a->data = data;
    return MT_OK;
}

mt_status mt_ckpt_put_array_host(mt_ckpt *c, const char *name, mt_dtype dt, int32_t ndim,
                                 const int64_t *dims, const void *data)
{
    if (!mt_dtype_valid(dt) || ndim < 0 || ndim > MT_MAX_DIMS)
        return mt_err_set(MT_ERR_INVALID, "checkpoint: array '%s': bad dtype or ndim (%d)",
                          name ? name : "", (int)ndim);
    size_t n = mt_dtype_size(dt);
    for (int32_t d = 0; d < ndim; d++) {
        if (dims[d] < 0)
            return mt_err_set(MT_ERR_SHAPE, "checkpoint: array '%s': negative dim %lld",
                              name ? name : "", (long long)dims[d]);
        n *= (size_t)dims[d];
    }
    void *copy = NULL;
    if (n > 0) {
        copy = mt_malloc(n);
        if (!copy) return mt_err_prefix(MT_ERR_NOMEM, "checkpoint: array '%s': ", name);
        memcpy(copy, data, n);
    }
    return mt__ckpt_put_array_owned(c, name, dt, ndim, dims, copy, n);
}

mt_status mt_ckpt_put_array(mt_ckpt *c, const char *name, const mt_array *a)
{
    if (!mt__ckpt_dtype_ok(a->dtype)) /* before copying a large array to the host */
        return mt__ckpt_put_array_owned(c, name, a->dtype, a->ndim, a->dims, NULL, 0);
    size_t n = mt_array_nbytes(a);
    void *data = NULL;
    if (n > 0) {
        data = mt_malloc(n);
        if (!data) return mt_err_prefix(MT_ERR_NOMEM, "checkpoint: array '%s': ", name);
        mt_status st = mt_array_to_host(data, n, a);
        if (st != MT_OK) {
            mt_free(data);
            return mt_err_prefix(st, "checkpoint: array '%s': ", name);
        }
    }
    return mt__ckpt_put_array_owned(c, name, a->dtype, a->ndim, a->dims, data, n);
}

static mt_status array_not_found(const mt_ckpt *c, const char *name)
{
    char lbl[600];
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    for (int32_t i = 0; i < c->n_arrays && i < 12; i++)
        mt_strbuf_appendf(&sb, "%s'%s'", i ? ", " : "", c->arrays[i].name);
    if (c->n_arrays > 12) mt_strbuf_appendf(&sb, ", ... (%d in all)", (int)c->n_arrays);
    mt_status st = mt_err_set(MT_ERR_NOT_FOUND, "%s has no array '%s' (arrays: %s)",
                              ckpt_label(c, lbl, sizeof lbl), name, c->n_arrays ? sb.data : "none");
    mt_strbuf_deinit(&sb);
    return st;
}

mt_status mt_ckpt_array_info(const mt_ckpt *c, const char *name, mt_dtype *dtype, int32_t *ndim,
                             int64_t *dims, const void **data)
{
    int32_t i = find_array(c, name);
    if (i < 0) return array_not_found(c, name);
    const mt__ckpt_array *a = &c->arrays[i];
    if (dtype) *dtype = a->dtype;
    if (ndim) *ndim = a->ndim;
    if (dims)
        for (int32_t d = 0; d < MT_MAX_DIMS; d++)
            dims[d] = d < a->ndim ? a->dims[d] : 0;
    if (data) *data = a->data;
    return MT_OK;
}

mt_status mt_ckpt_get_array_on(const mt_ckpt *c, const char *name, mt_device *dev, mt_array *out)
{
    memset(out, 0, sizeof *out);
    int32_t i = find_array(c, name);
    if (i < 0) return array_not_found(c, name);
    const mt__ckpt_array *a = &c->arrays[i];
    static const char zero[16];
    mt_status st =
        mt_array_from_host(out, dev, a->dtype, a->ndim, a->dims, a->data ? a->data : zero);
    if (st != MT_OK) return mt_err_prefix(st, "checkpoint array '%s': ", name);
    return MT_OK;
}

mt_status mt_ckpt_get_array(const mt_ckpt *c, const char *name, mt_array *out)
{
    memset(out, 0, sizeof *out);
    if (find_array(c, name) < 0) return array_not_found(c, name);
    mt_device *host;
    mt_status st = mt_device_open(&host, "host");
    if (st != MT_OK) return st;
    st = mt_ckpt_get_array_on(c, name, host, out);
    mt_device_release(host); /* the array's buffer keeps the device alive */
    return st;
}

int32_t mt_ckpt_n_arrays(const mt_ckpt *c)
{
    return c->n_arrays;
}

const char *mt_ckpt_array_name(const mt_ckpt *c, int32_t i)
{
    return i >= 0 && i < c->n_arrays ? c->arrays[i].name : NULL;
}

/* ---------------------------------------------------------------- attributes */

static int32_t find_attr(const mt_ckpt *c, const char *name)
{
    for (int32_t i = 0; i < c->n_attrs; i++)
        if (!strcmp(c->attrs[i].name, name)) return i;
    return -1;
}

/* The slot for attribute `name` (existing one emptied, or a new one). */
static mt_status attr_slot(mt_ckpt *c, const char *name, mt__ckpt_attr **out)
{
    mt_status st = check_attr_name(name);
    if (st != MT_OK) return st;
    int32_t i = find_attr(c, name);
    if (i >= 0) {
        mt__ckpt_attr *a = &c->attrs[i];
        mt_free(a->s);
        a->s = NULL;
        *out = a;
        return MT_OK;
    }
    if (c->n_attrs >= MT__CKPT_MAX_ATTRS)
        return mt_err_set(MT_ERR_RANGE, "checkpoint: attribute '%s' would be attribute %d; a "
                          "checkpoint holds at most %d", name, (int)c->n_attrs + 1,
                          MT__CKPT_MAX_ATTRS);
    char *nm = mt_strdup(name);
    if (!nm) return mt_err_prefix(MT_ERR_NOMEM, "checkpoint: ");
    st = grow((void **)&c->attrs, c->n_attrs, &c->cap_attrs, sizeof *c->attrs);
    if (st != MT_OK) {
        mt_free(nm);
        return st;
    }
    mt__ckpt_attr *a = &c->attrs[c->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = nm;
    *out = a;
    return MT_OK;
}

mt_status mt_ckpt_put_int(mt_ckpt *c, const char *name, int64_t v)
{
    mt__ckpt_attr *a = NULL;
    mt_status st = attr_slot(c, name, &a);
    if (st != MT_OK) return st;
    a->kind = MT_CKPT_ATTR_INT;
    a->i = v;
    return MT_OK;
}

mt_status mt_ckpt_put_double(mt_ckpt *c, const char *name, double v)
{
    mt__ckpt_attr *a = NULL;
    mt_status st = attr_slot(c, name, &a);
    if (st != MT_OK) return st;
    a->kind = MT_CKPT_ATTR_DOUBLE;
    a->d = v;
    return MT_OK;
}

mt_status mt_ckpt_put_string(mt_ckpt *c, const char *name, const char *v)
{
    char *copy = mt_strdup(v ? v : "");
    if (!copy) return mt_err_prefix(MT_ERR_NOMEM, "checkpoint: attribute '%s': ", name);
    mt__ckpt_attr *a = NULL;
    mt_status st = attr_slot(c, name, &a);
    if (st != MT_OK) {
        mt_free(copy);
        return st;
    }
    a->kind = MT_CKPT_ATTR_STRING;
    a->s = copy;
    return MT_OK;
}

static const char *kind_name(mt_ckpt_attr_kind k)
{
    return k == MT_CKPT_ATTR_INT      ? "an integer"
           : k == MT_CKPT_ATTR_DOUBLE ? "a double"
                                      : "a string";
}

static mt_status get_attr(const mt_ckpt *c, const char *name, mt_ckpt_attr_kind want,
                          const mt__ckpt_attr **out)
{
    char lbl[600];
    int32_t i = find_attr(c, name);
    if (i < 0)
        return mt_err_set(MT_ERR_NOT_FOUND, "%s has no attribute '%s'",
                          ckpt_label(c, lbl, sizeof lbl), name);
    if (c->attrs[i].kind != want)
        return mt_err_set(MT_ERR_DTYPE, "%s: attribute '%s' is %s, not %s",
                          ckpt_label(c, lbl, sizeof lbl), name, kind_name(c->attrs[i].kind),
                          kind_name(want));
    *out = &c->attrs[i];
    return MT_OK;
}

mt_status mt_ckpt_get_int(const mt_ckpt *c, const char *name, int64_t *out)
{
    const mt__ckpt_attr *a;
    mt_status st = get_attr(c, name, MT_CKPT_ATTR_INT, &a);
    if (st == MT_OK) *out = a->i;
    return st;
}

mt_status mt_ckpt_get_double(const mt_ckpt *c, const char *name, double *out)
{
    const mt__ckpt_attr *a;
    mt_status st = get_attr(c, name, MT_CKPT_ATTR_DOUBLE, &a);
    if (st == MT_OK) *out = a->d;
    return st;
}

mt_status mt_ckpt_get_string(const mt_ckpt *c, const char *name, const char **out)
{
    const mt__ckpt_attr *a;
    mt_status st = get_attr(c, name, MT_CKPT_ATTR_STRING, &a);
    if (st == MT_OK) *out = a->s;
    return st;
}

bool mt_ckpt_has(const mt_ckpt *c, const char *name)
{
    return find_array(c, name) >= 0 || find_attr(c, name) >= 0;
}

int32_t mt_ckpt_n_attrs(const mt_ckpt *c)
{
    return c->n_attrs;
}

const char *mt_ckpt_attr_name(const mt_ckpt *c, int32_t i)
{
    return i >= 0 && i < c->n_attrs ? c->attrs[i].name : NULL;
}

mt_ckpt_attr_kind mt_ckpt_attr_kind_at(const mt_ckpt *c, int32_t i)
{
    return i >= 0 && i < c->n_attrs ? c->attrs[i].kind : MT_CKPT_ATTR_KIND_COUNT;
}

const char *mt_ckpt_path(const mt_ckpt *c)
{
    return c->path;
}

/* ---------------------------------------------------------------- monitors */

mt_status mt__ckpt_put_monitor_move(mt_ckpt *c, mt_monitor_history *h)
{
    mt_status st = mt__ckpt_check_component(h->name, "checkpoint: monitor");
    for (int32_t i = 0; st == MT_OK && i < h->n; i++)
        st = mt__ckpt_check_component(h->channels[i].name, "checkpoint: monitor channel");
    for (int32_t i = 0; st == MT_OK && i < h->n; i++)
        for (int32_t j = 0; j < i; j++)
            if (!strcmp(h->channels[i].name, h->channels[j].name))
                st = mt_err_set(MT_ERR_INVALID, "checkpoint: monitor '%s' has channel '%s' twice",
                                h->name, h->channels[i].name);
    int32_t at = -1;
    for (int32_t i = 0; st == MT_OK && i < c->n_monitors; i++)
        if (!strcmp(c->monitors[i].name, h->name)) at = i;
    /* the totals with h in place of a monitor of the same name */
    int64_t channels = h->n, records = 0;
    for (int32_t k = 0; k < h->n; k++) records += h->channels[k].n;
    for (int32_t i = 0; st == MT_OK && i < c->n_monitors; i++) {
        if (i == at) continue;
        channels += c->monitors[i].n;
        for (int32_t k = 0; k < c->monitors[i].n; k++) records += c->monitors[i].channels[k].n;
    }
    if (st == MT_OK && at < 0 && c->n_monitors >= MT__CKPT_MAX_MONITORS)
        st = mt_err_set(MT_ERR_RANGE, "checkpoint: monitor '%s' would be monitor %d; a "
                        "checkpoint holds at most %d", h->name, (int)c->n_monitors + 1,
                        MT__CKPT_MAX_MONITORS);
    if (st == MT_OK && (channels > MT__CKPT_MAX_CHANNELS || records > MT__CKPT_MAX_RECORDS))
        st = mt_err_set(MT_ERR_RANGE, "checkpoint: monitor '%s' would bring the checkpoint to "
                        "%lld channels and %lld records; it holds at most %d channels and %lld "
                        "records", h->name, (long long)channels, (long long)records,
                        MT__CKPT_MAX_CHANNELS, (long long)MT__CKPT_MAX_RECORDS);
    if (st == MT_OK && at < 0)
        st = grow((void **)&c->monitors, c->n_monitors, &c->cap_monitors, sizeof *c->monitors);
    if (st != MT_OK) {
        mt_monitor_history_clear(h);
        return st;
    }
    if (at >= 0)
        mt_monitor_history_clear(&c->monitors[at]);
    else
        at = c->n_monitors++;
    c->monitors[at] = *h;
    memset(h, 0, sizeof *h);
    return MT_OK;
}

mt_status mt_ckpt_put_monitor(mt_ckpt *c, const mt_monitor_history *h)
{
    if (!h->name) return mt_err_set(MT_ERR_INVALID, "checkpoint: monitor history has no name");
    mt_monitor_history copy;
    mt_status st = mt_monitor_history_copy(&copy, h);
    if (st != MT_OK) return st;
    return mt__ckpt_put_monitor_move(c, &copy);
}

int32_t mt_ckpt_n_monitors(const mt_ckpt *c)
{
    return c->n_monitors;
}

const mt_monitor_history *mt_ckpt_monitor(const mt_ckpt *c, int32_t i)
{
    return i >= 0 && i < c->n_monitors ? &c->monitors[i] : NULL;
}

const mt_monitor_history *mt_ckpt_find_monitor(const mt_ckpt *c, const char *name)
{
    for (int32_t i = 0; i < c->n_monitors; i++)
        if (!strcmp(c->monitors[i].name, name)) return &c->monitors[i];
    return NULL;
}
