/* Fuzz target: the expression language (graph_parse.h) — lexer, parser and the type and shape
 * checks of the graph builders it calls — plus the error renderer and the node printer. The
 * input is the expression text (cut at the first NUL). Placeholders of several dtypes and
 * ranks (the names of the parser's tests) give the type checker something to work on.
 * Invariants checked: a failed parse names a span inside the text with begin <= point <
 * max(end, begin + 1), leaves *out at MT_VAR_NONE and the graph's sticky status unchanged; a
 * successful one returns a variable. */
#include "fuzz_common.h"
#include "mltrain/graph_parse.h"

static void add_placeholders(mt_graph *g)
{
    static const struct {
        const char *name;
        mt_dtype dt;
        int32_t ndim;
        int64_t dims[3];
    } ph[] = {
        {"a", MT_FLOAT32, 1, {3}},     {"b", MT_FLOAT32, 1, {3}},     {"c", MT_FLOAT32, 1, {4}},
        {"m", MT_FLOAT64, 2, {2, 3}},  {"q", MT_FLOAT64, 2, {3, 3}},  {"t", MT_FLOAT32, 3, {2, 3, 4}},
        {"ia", MT_INT32, 1, {3}},      {"i", MT_INT64, 1, {2}},       {"bl", MT_BOOL, 1, {3}},
        {"u", MT_FLOAT32, 2, {-1, 3}}, {"x", MT_FLOAT32, 2, {-1, 784}}, {"W", MT_FLOAT32, 2, {784, 10}},
        {"s", MT_FLOAT64, 0, {0}},     {"h", MT_FLOAT16, 1, {3}},
    };
    for (size_t k = 0; k < sizeof ph / sizeof ph[0]; k++)
        mt_graph_placeholder(g, ph[k].name, ph[k].dt, ph[k].ndim, ph[k].dims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 70000) return 0; /* past the parser's own limit: one test of that is enough */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text);
    mt_graph *g = NULL;
    if (mt_graph_new(&g) != MT_OK) {
        free(text);
        return 0;
    }
    add_placeholders(g);
    mt_status before = mt_graph_status(g);
    mt_var out = MT_VAR_NONE;
    mt_parse_error err;
    mt_status st = mt_graph_parse(g, text, 0, NULL, NULL, &out, &err);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    if (st != MT_OK) {
        MT_FUZZ_CHECK(out == MT_VAR_NONE, "failed parse returned v%d", (int)out);
        MT_FUZZ_CHECK(err.status == st, "err.status %d vs %d", (int)err.status, (int)st);
        MT_FUZZ_CHECK(err.begin >= 0 && err.begin <= err.end && (size_t)err.end <= len + 1,
                      "span [%d, %d) for a text of %zu bytes", (int)err.begin, (int)err.end, len);
        MT_FUZZ_CHECK(err.point >= err.begin &&
                          err.point < (err.end > err.begin + 1 ? err.end : err.begin + 1),
                      "point %d outside [%d, %d)", (int)err.point, (int)err.begin, (int)err.end);
        MT_FUZZ_CHECK(err.line >= 1 && err.col >= 1, "line %d col %d", (int)err.line,
                      (int)err.col);
        MT_FUZZ_CHECK(mt_graph_status(g) == before, "graph status changed by a failed parse");
        mt_parse_error_format(&err, text, &sb);
    } else {
        MT_FUZZ_CHECK(out != MT_VAR_NONE, "successful parse without a variable");
        mt_graph_print_node(g, out, &sb);
    }
    mt_strbuf_deinit(&sb);
    mt_graph_free(g);
    free(text);
    return 0;
}
