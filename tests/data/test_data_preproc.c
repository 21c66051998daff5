/* Preprocessors against NumPy float64 implementations of Pylearn2's formulas
 * (make_data_refs.py): Standardize, GlobalContrastNormalization, ZCA (all components,
 * n_components, n_drop_components), PCA (plain, whitened, all components) and a Pipeline, each
 * fitted on a training split and applied to a validation split; fit/apply errors. */
#include "test_data_util.h"

static mt_dataset *pp_split(const char *which)
{
    char rel[64], p[1024];
    snprintf(rel, sizeof rel, "pp/%s.npy", which);
    require_refs(rel);
    mt_dataset *d;
    MT_CHECK_OK(mt_dataset_npy(&d, refs_path(p, sizeof p, rel), NULL));
    return d;
}

static void check_ref(const mt_dataset *d, const char *ref, int64_t k, double tol)
{
    char rel[128];
    snprintf(rel, sizeof rel, "pp/ref_%s.npy", ref);
    int64_t n, rows;
    double *ex = load_ref(rel, &n, &rows);
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.n, rows);
    MT_CHECK_EQ_INT(info.dim, k);
    MT_CHECK_EQ_INT(info.n * info.dim, n);
    double *got = dataset_X64(d);
    MT_CHECK_ALLCLOSE(got, ex, (size_t)n, tol, tol);
    mt_free(got);
    mt_free(ex);
}

/* Fits p on train (checking train against ref_train when given), applies to valid. */
static void fit_apply(mt_preprocessor *p, const char *ref, const char *ref_train, int64_t k,
                      double tol)
{
    mt_dataset *tr = pp_split("train"), *va = pp_split("valid");
    MT_CHECK_OK(mt_preproc_apply(p, tr, true));
    if (ref_train) check_ref(tr, ref_train, k, tol);
    MT_CHECK_OK(mt_preproc_apply(p, va, false));
    check_ref(va, ref, k, tol);
    mt_dataset_free(tr);
    mt_dataset_free(va);
}

MT_TEST(standardize_matches_numpy)
{
    mt_preprocessor *p;
    MT_CHECK_OK(mt_preproc_standardize(&p, false, false, 1e-4));
    fit_apply(p, "std", "std_train", 12, 1e-5);
    mt_preproc_free(p);
    MT_CHECK_OK(mt_preproc_standardize(&p, true, true, 0.5));
    fit_apply(p, "std_global", NULL, 12, 1e-5);
    mt_preproc_free(p);
    MT_CHECK_ERR(mt_preproc_standardize(&p, false, false, -1), MT_ERR_INVALID, "std_eps");
}

MT_TEST(gcn_matches_numpy)
{
    struct {
        bool sub, use_std;
        double scale, bias;
        const char *ref;
    } cases[] = {{true, false, 1.0, 0.0, "gcn_default"},
                 {true, true, 55.0, 10.0, "gcn_std"},
                 {false, false, 1.0, 1.0, "gcn_nosub"}};
    for (size_t c = 0; c < 3; c++) {
        mt_preprocessor *p;
        MT_CHECK_OK(mt_preproc_gcn(&p, cases[c].sub, cases[c].scale, cases[c].bias,
                                   cases[c].use_std, 1e-8));
        mt_dataset *va = pp_split("valid");
        MT_CHECK_OK(mt_preproc_apply(p, va, false)); /* nothing to fit */
        check_ref(va, cases[c].ref, 12, 1e-5);
        mt_dataset_free(va);
        mt_preproc_free(p);
    }
    mt_preprocessor *p;
    MT_CHECK_ERR(mt_preproc_gcn(&p, true, 1e-9, 0, false, 1e-8), MT_ERR_INVALID, "scale");
}

MT_TEST(zca_matches_numpy)
{
    mt_preprocessor *p;
    MT_CHECK_OK(mt_preproc_zca(&p, 0, 0, 0.1));
    fit_apply(p, "zca", "zca_train", 12, 1e-5);
    mt_preproc_free(p);
    MT_CHECK_OK(mt_preproc_zca(&p, 5, 0, 0.1));
    fit_apply(p, "zca_k5", "zca_k5_train", 12, 1e-5);
    mt_preproc_free(p);
    MT_CHECK_OK(mt_preproc_zca(&p, 0, 2, 0.01));
    fit_apply(p, "zca_drop2", "zca_drop2_train", 12, 1e-5);
    mt_preproc_free(p);
    MT_CHECK_ERR(mt_preproc_zca(&p, 3, 2, 0.1), MT_ERR_INVALID, "not both");
}

MT_TEST(pca_matches_numpy)
{
    mt_preprocessor *p;
    MT_CHECK_OK(mt_preproc_pca(&p, 4, false));
    fit_apply(p, "pca4", NULL, 4, 1e-5);
    mt_preproc_free(p);
    MT_CHECK_OK(mt_preproc_pca(&p, 4, true));
    fit_apply(p, "pca4w", NULL, 4, 1e-5);
    mt_preproc_free(p);
    MT_CHECK_OK(mt_preproc_pca(&p, 0, false));
    fit_apply(p, "pca_all", NULL, 12, 1e-5);
    mt_preproc_free(p);
    /* more components than features */
    MT_CHECK_OK(mt_preproc_pca(&p, 13, false));
    mt_dataset *tr = pp_split("train");
    MT_CHECK_ERR(mt_preproc_apply(p, tr, true), MT_ERR_INVALID, "num_components 13");
    mt_dataset_free(tr);
    mt_preproc_free(p);
}

MT_TEST(pipeline_gcn_then_zca)
{
    mt_preprocessor *items[2], *p;
    MT_CHECK_OK(mt_preproc_gcn(&items[0], true, 2.0, 0.0, false, 1e-8));
    MT_CHECK_OK(mt_preproc_zca(&items[1], 0, 0, 0.1));
    MT_CHECK_OK(mt_preproc_pipeline(&p, 2, items));
    fit_apply(p, "pipe", NULL, 12, 1e-5);
    mt_preproc_free(p);
    MT_CHECK_OK(mt_preproc_zca(&items[0], 0, 0, 0.1));
    items[1] = NULL;
    MT_CHECK_ERR(mt_preproc_pipeline(&p, 2, items), MT_ERR_INVALID, "item 1 is NULL");
}

MT_TEST(preproc_fit_errors)
{
    mt_preprocessor *p;
    MT_CHECK_OK(mt_preproc_standardize(&p, false, false, 1e-4));
    mt_dataset *va = pp_split("valid");
    MT_CHECK_ERR(mt_preproc_apply(p, va, false), MT_ERR_INVALID, "never fitted");
    MT_CHECK_OK(mt_preproc_apply(p, va, true));
    /* fitted on 12 features, applied to 3 */
    float X[6] = {1, 2, 3, 4, 5, 6};
    mt_dataset *small;
    MT_CHECK_OK(mt_dataset_from_memory(&small, "three", 2, 3, X, NULL, NULL, 0, NULL, 0));
    MT_CHECK_ERR(mt_preproc_apply(p, small, false), MT_ERR_SHAPE, "fitted on 12 features");
    mt_preproc_free(p);
    /* ZCA without filter_bias on a rank-deficient matrix: eigenvalue not positive */
    MT_CHECK_OK(mt_preproc_zca(&p, 0, 0, 0.0));
    MT_CHECK_ERR(mt_preproc_apply(p, small, true), MT_ERR_RANGE, "raise filter_bias");
    mt_preproc_free(p);
    /* a pipeline reports which item failed */
    mt_preprocessor *items[1];
    MT_CHECK_OK(mt_preproc_pca(&items[0], 0, true));
    MT_CHECK_OK(mt_preproc_pipeline(&p, 1, items));
    MT_CHECK_ERR(mt_preproc_apply(p, small, true), MT_ERR_RANGE, "Pipeline item 0: PCA whiten");
    mt_preproc_free(p);
    mt_dataset_free(small);
    mt_dataset_free(va);
}
