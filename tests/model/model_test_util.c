/* Helpers of the model tests (see model_test_util.h). */
#include "model_test_util.h"

#include <stdio.h>
#include <string.h>

/* The test's "!pkl": a path naming "...l<k>.pkl" gives a DenoisingAutoencoder whose sizes are
 * written in the file name after '@' ("dae@784x32.pkl"), or 784x16 by default (what
 * dae_l1.pkl of the stacked-autoencoder tutorial would hold with small nhid). */
static mt_status pkl_build(mt_cfg_builder *b, const mt_cfg_node *node, void **out)
{
    (void)b;
    long long nvis = 784, nhid = 16;
    const char *at = node->str ? strchr(node->str, '@') : NULL;
    if (at) sscanf(at + 1, "%lldx%lld", &nvis, &nhid);
    else if (node->str && strstr(node->str, "dae_l2")) nvis = 16, nhid = 8;
    mt__ae_desc d;
    memset(&d, 0, sizeof(d));
    d.denoising = true;
    d.nvis = nvis;
    d.nhid = nhid;
    d.act_enc = MT__ACT_TANH;
    d.act_dec = MT__ACT_LINEAR;
    d.irange = 0.05;
    d.istdev = NAN;
    d.rng = 77;
    d.corruptor.kind = MT__CORRUPT_BINOMIAL;
    d.corruptor.level = 0.2;
    return mt__model_new_autoencoder((mt_model **)out, &d);
}

static void pkl_destroy(void *obj) { mt_model_free(obj); }

static const mt_cfg_key pkl_keys[] = {{NULL, MT_CFG_T_ANY, false, false, NULL, false, NULL}};
static const mt_component pkl_component = {"!pkl", "pkl", NULL, pkl_keys, false,
                                           "test checkpoint loader", pkl_build, pkl_destroy,
                                           NULL};

mt_device *mtt_host(void)
{
    static mt_device *dev;
    if (!dev) MT_CHECK_OK(mt_device_open(&dev, "host"));
    return dev;
}

mt_cfg_registry *mtt_registry(void)
{
    static mt_cfg_registry *r;
    if (r) return r;
    MT_CHECK_OK(mt_cfg_registry_new(&r));
    MT_CHECK_OK(mt_model_register_components(r));
    MT_CHECK_OK(mt_cfg_registry_add(r, &pkl_component));
    return r;
}

mt_status mtt_try_model(mt_model **out, const char *yaml)
{
    return mt_model_from_yaml(out, mtt_registry(), yaml);
}

void mtt_expect_error_at(const char *file, int line, const char *yaml, mt_status code,
                         const char *needle)
{
    mt_model *m = NULL;
    mt_err_clear();
    mt_status st = mtt_try_model(&m, yaml);
    if (st != code || !strstr(mt_last_error(), needle))
        mt_test_fail(file, line, "model %s\n  gave %s: '%s'\n  expected %s with '%s'", yaml,
                     mt_status_name(st), mt_last_error(), mt_status_name(code), needle);
    if (m != NULL) mt_test_fail(file, line, "a model was returned with the error");
}

mt_status mtt_validate_only(const char *text)
{
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    mt_cfg_doc *doc = NULL;
    mt_status st = mt_cfg_load_string(&doc, text, strlen(text), "job.yaml", &o);
    if (!st) st = mt_cfg_validate(mtt_registry(), mt_cfg_doc_root(doc), "model");
    mt_cfg_doc_free(doc);
    return st;
}

double mtt_param_sumsq(mt_model *m, const char *name)
{
    const mt_array *a = mtt_param_array(m, name);
    const float *p = mtt_param(m, name);
    double s = 0;
    for (int64_t i = 0; i < mt_array_size(a); i++) s += (double)p[i] * p[i];
    return s;
}

mt_model *mtt_model(const char *yaml)
{
    mt_model *m = NULL;
    MT_CHECK_OK(mtt_try_model(&m, yaml));
    return m;
}

const mt_array *mtt_param_array(mt_model *m, const char *name)
{
    int32_t i = mt_model_find_param(m, name);
    if (i < 0) mt_test_fail(__FILE__, __LINE__, "no parameter '%s'", name);
    return &mt_model_param_at(m, i)->value;
}

float *mtt_param(mt_model *m, const char *name)
{
    return (float *)mt_buffer_host_ptr(mtt_param_array(m, name)->buf);
}

void mtt_ctx_init(mtt_ctx *c, mt_model *m, bool labels, int64_t n_classes, int64_t y_dim,
                  uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->m = m;
    MT_CHECK_OK(mt_graph_new(&c->g));
    mt_graph_set_origin(c->g, __FILE__, __LINE__);
    c->info.n = 100;
    c->info.dim = mt_model_input_dim(m);
    c->info.has_y = labels || y_dim > 0;
    c->info.y_is_labels = labels;
    c->info.n_classes = n_classes;
    c->info.y_dim = y_dim;
    c->info.name = "test data";
    MT_CHECK_OK(mt_model_graph_init(&c->mg, m, c->g, &c->info, -1, seed));
}

void mtt_ctx_clear(mtt_ctx *c)
{
    mt_model_graph_clear(&c->mg);
    mt_graph_free(c->g);
    c->g = NULL;
}

mt_function *mtt_compile(mtt_ctx *c, int32_t n_out, const mt_var *outs, bool with_y,
                         mt_mode mode)
{
    mt_var ins[2] = {c->mg.X, c->mg.y};
    mt_function_options o;
    mt_function_options_init(&o);
    o.mode = mode;
    mt_function *f = NULL;
    MT_CHECK_OK(mt_function_new(&f, c->g, with_y ? 2 : 1, ins, n_out, outs, 0, NULL, NULL, &o));
    for (int32_t k = 0; k < mt_function_n_shared(f); k++) {
        mt_var v = mt_function_shared(f, k);
        for (int32_t i = 0; i < c->mg.n_params; i++)
            if (c->mg.params[i] == v)
                MT_CHECK_OK(mt_function_set_shared(f, v, &mt_model_param_at(c->m, i)->value));
    }
    return f;
}

void mtt_call(mt_function *f, const float *X, int64_t n, int64_t dim, const int64_t *labels,
              const float *Y, int64_t y_dim, int32_t n_out, mt_array *outs)
{
    mt_array ax = {0}, ay = {0};
    int64_t xd[2] = {n, dim}, yd[2] = {n, y_dim};
    MT_CHECK_OK(mt_array_from_host(&ax, mtt_host(), MT_FLOAT32, 2, xd, X));
    const mt_array *ins[2] = {&ax, &ay};
    int32_t nin = 1;
    if (labels) {
        MT_CHECK_OK(mt_array_from_host(&ay, mtt_host(), MT_INT64, 1, &n, labels));
        nin = 2;
    } else if (Y) {
        MT_CHECK_OK(mt_array_from_host(&ay, mtt_host(), MT_FLOAT32, 2, yd, Y));
        nin = 2;
    }
    MT_CHECK_OK(mt_function_call(f, nin, ins, n_out, outs));
    mt_array_clear(&ax);
    mt_array_clear(&ay);
}

double *mtt_to_double(const mt_array *a)
{
    int64_t n = mt_array_size(a);
    float *f = mt_malloc((size_t)(n ? n : 1) * sizeof(float));
    double *d = mt_malloc((size_t)(n ? n : 1) * sizeof(double));
    MT_CHECK(f && d);
    mt_array tmp = {0};
    MT_CHECK_OK(mt_array_astype(&tmp, a, MT_FLOAT32));
    MT_CHECK_OK(mt_array_to_host(f, (size_t)n * sizeof(float), &tmp));
    mt_array_clear(&tmp);
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    mt_free(f);
    return d;
}

double mtt_scalar(const mt_array *a)
{
    MT_CHECK(a->ndim == 0);
    double *d = mtt_to_double(a);
    double v = d[0];
    mt_free(d);
    return v;
}

void mtt_fill(float *x, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}
