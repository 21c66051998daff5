/* Loading YAML into the node tree: scalar typing (YAML 1.1 + Pylearn2's 1e-3 rule), positions
 * of nodes and keys, anchors and aliases (same pointer), duplicate keys, tags, templates
 * (%(name)i, @file, missing names), ${VAR} substitution (table, environment, MLTRAIN_/PYLEARN2_
 * stand-ins, unknown-variable suggestions), includes and include cycles, limits (alias bombs,
 * depth, file size), syntax errors with positions, the typed getters, job variables, the
 * suggestion function and the module's hash maps. Files are written under the build
 * directory. */
#include <time.h>

#include "config_impl.h"
#include "config_test_util.h"

/* ================================================================ scalar typing */

typedef struct scalar_case {
    const char *text;
    mt_cfg_kind kind;
    double value; /* BOOL 0/1, INT, FLOAT (NAN = expect NaN) */
} scalar_case;

MT_TEST(scalar_typing_table)
{
    static const scalar_case cases[] = {
        {"~", MT_CFG_NULL, 0},
        {"null", MT_CFG_NULL, 0},
        {"Null", MT_CFG_NULL, 0},
        {"NULL", MT_CFG_NULL, 0},
        {"", MT_CFG_NULL, 0},
        {"true", MT_CFG_BOOL, 1},
        {"False", MT_CFG_BOOL, 0},
        {"yes", MT_CFG_BOOL, 1},
        {"NO", MT_CFG_BOOL, 0},
        {"on", MT_CFG_BOOL, 1},
        {"Off", MT_CFG_BOOL, 0},
        {"y", MT_CFG_STRING, 0},
        {"n", MT_CFG_STRING, 0},
        {"tRue", MT_CFG_STRING, 0},
        {"0", MT_CFG_INT, 0},
        {"42", MT_CFG_INT, 42},
        {"-17", MT_CFG_INT, -17},
        {"+5", MT_CFG_INT, 5},
        {"0x1F", MT_CFG_INT, 31},
        {"-0x10", MT_CFG_INT, -16},
        {"017", MT_CFG_INT, 15},
        {"0b101", MT_CFG_INT, 5},
        {"1_000", MT_CFG_INT, 1000},
        {"08", MT_CFG_STRING, 0},
        {"0x", MT_CFG_STRING, 0},
        {"0xG", MT_CFG_STRING, 0},
        {"1.5", MT_CFG_FLOAT, 1.5},
        {".5", MT_CFG_FLOAT, 0.5},
        {"0.", MT_CFG_FLOAT, 0.0},
        {"-.5", MT_CFG_FLOAT, -0.5},
        {"1e-3", MT_CFG_FLOAT, 1e-3},
        {"1E3", MT_CFG_FLOAT, 1000},
        {"1.5E+2", MT_CFG_FLOAT, 150},
        {"1.5e3", MT_CFG_FLOAT, 1500},
        {"-2e-2", MT_CFG_FLOAT, -0.02},
        {"1_000.25", MT_CFG_FLOAT, 1000.25},
        {"0.00891030471479", MT_CFG_FLOAT, 0.00891030471479},
        {".inf", MT_CFG_FLOAT, INFINITY},
        {"-.Inf", MT_CFG_FLOAT, -INFINITY},
        {"+.INF", MT_CFG_FLOAT, INFINITY},
        {".nan", MT_CFG_FLOAT, NAN},
        {".NaN", MT_CFG_FLOAT, NAN},
        {"1e", MT_CFG_STRING, 0},
        {"e3", MT_CFG_STRING, 0},
        {"1.2.3", MT_CFG_STRING, 0},
        {".", MT_CFG_STRING, 0},
        {"1e3.5", MT_CFG_STRING, 0},
        {"inf", MT_CFG_STRING, 0},
        {"nan", MT_CFG_STRING, 0},
        {"abc", MT_CFG_STRING, 0},
        {"1:30", MT_CFG_STRING, 0},
        {"valid_y_misclass", MT_CFG_STRING, 0},
        {"'5'", MT_CFG_STRING, 0},
        {"\"true\"", MT_CFG_STRING, 0},
        {"'~'", MT_CFG_STRING, 0},
        {"!!str 5", MT_CFG_STRING, 0},
        {"!float '1e-3'", MT_CFG_FLOAT, 1e-3},
        {"!float 3", MT_CFG_FLOAT, 3},
        {"!!int 7", MT_CFG_INT, 7},
        {"!!float 2", MT_CFG_FLOAT, 2},
        {"!!bool yes", MT_CFG_BOOL, 1},
        {"!!null ~", MT_CFG_NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const scalar_case *c = &cases[i];
        char text[128];
        snprintf(text, sizeof text, "v: %s\n", c->text);
        mt_cfg_doc *doc = LOAD_OK(text, NULL);
        const mt_cfg_node *v = mt_cfg_get(mt_cfg_doc_root(doc), "v");
        MT_CHECK(v != NULL);
        if (v->kind != c->kind)
            mt_test_fail(__FILE__, __LINE__, "'%s' typed as %s, expected %s", c->text,
                         mt_cfg_kind_name(v->kind), mt_cfg_kind_name(c->kind));
        if (c->kind == MT_CFG_BOOL) MT_CHECK_EQ_INT(v->b, c->value != 0);
        if (c->kind == MT_CFG_INT) {
            MT_CHECK_EQ_INT(v->i, (int64_t)c->value);
            MT_CHECK_CLOSE(v->f, c->value, 0, 0); /* INT also sets f */
        }
        if (c->kind == MT_CFG_FLOAT) MT_CHECK_CLOSE(v->f, c->value, 0, 1e-15);
        bool quoted = strchr(c->text, '\'') || strchr(c->text, '"');
        MT_CHECK_EQ_INT(v->quoted, quoted);
        MT_CHECK(v->str != NULL); /* every scalar keeps its text */
        mt_cfg_doc_free(doc);
    }
    mt_cfg_doc *big = LOAD_OK("a: 9223372036854775807\nb: -9223372036854775808\n", NULL);
    MT_CHECK_EQ_INT(NODE(mt_cfg_doc_root(big), "a")->i, INT64_MAX);
    MT_CHECK_EQ_INT(NODE(mt_cfg_doc_root(big), "b")->i, INT64_MIN);
    mt_cfg_doc_free(big);
    LOAD_ERR("v: 9223372036854775808\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:4: integer '9223372036854775808' is out of the 64-bit range");
    LOAD_ERR("v: !!int abc\n", NULL, MT_ERR_FORMAT, "t.yaml:1:4: 'abc' is not an int");
    LOAD_ERR("v: !float abc\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:4: !float needs a number, got 'abc'");
    /* string text is kept exactly */
    mt_cfg_doc *doc = LOAD_OK("a: 'it''s'\nb: \"tab\\there\"\nc: plain text here\n", NULL);
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "a")->str, "it's");
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "b")->str, "tab\there");
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "c")->str, "plain text here");
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "c")->str, "plain text here");
    MT_CHECK_STR_EQ(mt_cfg_kind_name(MT_CFG_TAGGED), "tagged");
    MT_CHECK_STR_EQ(mt_cfg_kind_name(MT_CFG_KIND_COUNT), "invalid");
    mt_cfg_doc_free(doc);
}

/* ================================================================ positions */

MT_TEST(positions_of_nodes_and_keys)
{
    const char *text = "# comment\n"                               /* 1 */
                       "!obj:pylearn2.train.Train {\n"             /* 2 */
                       "    dataset: &train !obj:MNIST {\n"        /* 3 */
                       "        which_set: 'train', stop: 50000\n" /* 4 */
                       "    },\n"                                  /* 5 */
                       "    layers: [ 1, [2, 3],\n"                /* 6 */
                       "              4.5 ],\n"                    /* 7 */
                       "    monitor: { 'train' : *train },\n"      /* 8 */
                       "}\n";                                      /* 9 */
    mt_cfg_doc *doc = LOAD_OK(text, NULL);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    MT_CHECK_EQ_INT(r->kind, MT_CFG_OBJ);
    MT_CHECK_STR_EQ(r->tag, "pylearn2.train.Train");
    CHECK_LOC(r->loc, "t.yaml", 2, 1);
    MT_CHECK_EQ_INT(r->n, 3);
    MT_CHECK_STR_EQ(r->keys[0], "dataset");
    MT_CHECK_STR_EQ(r->keys[1], "layers");
    MT_CHECK_STR_EQ(r->keys[2], "monitor");
    CHECK_LOC(r->key_locs[0], "t.yaml", 3, 5);
    CHECK_LOC(r->key_locs[1], "t.yaml", 6, 5);
    CHECK_LOC(mt_cfg_key_loc(r, "monitor"), "t.yaml", 8, 5);
    CHECK_LOC(mt_cfg_key_loc(r, "absent"), "t.yaml", 2, 1); /* the map's own position */
    const mt_cfg_node *ds = NODE(r, "dataset");
    CHECK_LOC(ds->loc, "t.yaml", 3, 14); /* the anchor starts the node */
    CHECK_LOC(mt_cfg_key_loc(ds, "which_set"), "t.yaml", 4, 9);
    CHECK_LOC(NODE(ds, "which_set")->loc, "t.yaml", 4, 20);
    CHECK_LOC(mt_cfg_key_loc(ds, "stop"), "t.yaml", 4, 29);
    CHECK_LOC(NODE(ds, "stop")->loc, "t.yaml", 4, 35);
    CHECK_LOC(NODE(r, "layers")->loc, "t.yaml", 6, 13);
    CHECK_LOC(NODE(r, "layers.0")->loc, "t.yaml", 6, 15);
    CHECK_LOC(NODE(r, "layers.1")->loc, "t.yaml", 6, 18);
    CHECK_LOC(NODE(r, "layers.1.1")->loc, "t.yaml", 6, 22);
    CHECK_LOC(NODE(r, "layers.2")->loc, "t.yaml", 7, 15);
    CHECK_LOC(mt_cfg_key_loc(NODE(r, "monitor"), "train"), "t.yaml", 8, 16);
    mt_cfg_doc_free(doc);

    /* block style, and a file on disk (its path is the position's file) */
    const char *path = test_path("positions", "block.yaml");
    write_text(path, "model:\n"
                     "  nvis: 784\n"
                     "  layers:\n"
                     "    - !obj:Softmax\n"
                     "      n_classes: 10\n"
                     "    - name: x\n");
    mt_cfg_options o;
    opts_clean(&o);
    MT_CHECK_OK(mt_cfg_load_file(&doc, path, &o));
    r = mt_cfg_doc_root(doc);
    MT_CHECK_STR_EQ(r->loc.file, path);
    CHECK_LOC(NODE(r, "model")->loc, "block.yaml", 2, 3);
    CHECK_LOC(mt_cfg_key_loc(NODE(r, "model"), "layers"), "block.yaml", 3, 3);
    CHECK_LOC(NODE(r, "model.layers.0")->loc, "block.yaml", 4, 7);
    MT_CHECK_EQ_INT(NODE(r, "model.layers.0")->kind, MT_CFG_OBJ);
    CHECK_LOC(NODE(r, "model.layers.0.n_classes")->loc, "block.yaml", 5, 18);
    CHECK_LOC(NODE(r, "model.layers.1.name")->loc, "block.yaml", 6, 13);
    mt_cfg_doc_free(doc);

    /* columns count characters, not bytes (as libyaml does) */
    doc = LOAD_OK("{k: \"\xc3\xa9t\xc3\xa9\", v: 1}\n", NULL);
    CHECK_LOC(mt_cfg_key_loc(mt_cfg_doc_root(doc), "v"), "t.yaml", 1, 12);
    mt_cfg_doc_free(doc);
}

/* ================================================================ anchors and keys */

MT_TEST(anchors_are_the_same_node)
{
    mt_cfg_doc *doc = LOAD_OK("a: &x {k: 1, l: [1, 2]}\n"
                              "b: *x\n"
                              "c: [*x, *x, &s hello, *s]\n"
                              "d: &x 5\n" /* an anchor may be redefined: later aliases see it */
                              "e: *x\n",
                              NULL);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    const mt_cfg_node *a = NODE(r, "a");
    MT_CHECK(a->anchor >= 0);
    MT_CHECK(NODE(r, "b") == a);
    MT_CHECK(NODE(r, "c.0") == a);
    MT_CHECK(NODE(r, "c.1") == a);
    MT_CHECK(NODE(r, "c.3") == NODE(r, "c.2"));
    MT_CHECK_STR_EQ(NODE(r, "c.3")->str, "hello");
    MT_CHECK(NODE(r, "c.2")->anchor >= 0 && NODE(r, "c.2")->anchor != a->anchor);
    MT_CHECK_EQ_INT(NODE(r, "e")->kind, MT_CFG_INT);
    MT_CHECK(NODE(r, "e") == NODE(r, "d"));
    MT_CHECK_EQ_INT(NODE(r, "c")->anchor, -1);
    mt_cfg_doc_free(doc);
    LOAD_ERR("a: *nope\n", NULL, MT_ERR_FORMAT, "t.yaml:1:4: unknown anchor '*nope'");
    LOAD_ERR("a: &r [1, *r]\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:11: alias '*r' is used inside the node it names");
}

MT_TEST(duplicate_and_bad_keys)
{
    LOAD_ERR("a: 1\nb: 2\na: 3\n", NULL, MT_ERR_FORMAT,
             "t.yaml:3:1: duplicate key 'a' (first written at t.yaml:1:1)");
    LOAD_ERR("x: {p: 1, q: 2, 'p': 3}\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:17: duplicate key 'p' (first written at t.yaml:1:5)");
    /* a large mapping goes through the hash set */
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    for (int i = 0; i < 200; i++)
        mt_strbuf_appendf(&sb, "key%d: %d\n", i, i);
    mt_cfg_doc *doc = LOAD_OK(sb.data, NULL);
    MT_CHECK_EQ_INT(mt_cfg_doc_root(doc)->n, 200);
    MT_CHECK_EQ_INT(NODE(mt_cfg_doc_root(doc), "key150")->i, 150);
    mt_cfg_doc_free(doc);
    mt_strbuf_append(&sb, "key77: again\n");
    LOAD_ERR(sb.data, NULL, MT_ERR_FORMAT,
             "t.yaml:201:1: duplicate key 'key77' (first written at t.yaml:78:1)");
    mt_strbuf_deinit(&sb);
    LOAD_ERR("? [1, 2]\n: x\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:3: mapping keys must be plain strings, not lists");
    LOAD_ERR("{a: 1}: x\n", NULL, MT_ERR_FORMAT, "mapping keys must be plain strings");
    LOAD_ERR("!obj:X k: 1\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:1: mapping keys must be plain strings, not tagged (!obj:X)");
    LOAD_ERR("base: &b {x: 1}\nd: {<<: *b, y: 2}\n", NULL, MT_ERR_FORMAT,
             "t.yaml:2:5: merge keys '<<' are not supported");
    /* an anchored key can be used as a value */
    doc = LOAD_OK("&k name: 1\nother: *k\n", NULL);
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "other")->str, "name");
    mt_cfg_doc_free(doc);
}

MT_TEST(tags)
{
    mt_cfg_doc *doc = LOAD_OK("a: !obj:pylearn2.models.mlp.MLP { nvis: 3 }\n"
                              "b: !pkl: \"model.pkl\"\n"
                              "c: !pkl 'other.pkl'\n"
                              "d: !ckpt: run/best.ckpt\n"
                              "e: !pkl:inline.pkl\n"
                              "f: !uniform [0.1, 0.5]\n"
                              "g: !choice [64, 128]\n"
                              "h: !param lr\n"
                              "i: !loguniform {low: 1.0e-4, high: 0.1}\n"
                              "j: !obj:Default {}\n",
                              NULL);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    MT_CHECK_EQ_INT(NODE(r, "a")->kind, MT_CFG_OBJ);
    MT_CHECK_STR_EQ(NODE(r, "a")->tag, "pylearn2.models.mlp.MLP");
    MT_CHECK_EQ_INT(NODE(r, "a.nvis")->i, 3);
    MT_CHECK_EQ_INT(NODE(r, "b")->kind, MT_CFG_PKL);
    MT_CHECK_STR_EQ(NODE(r, "b")->str, "model.pkl");
    MT_CHECK(NODE(r, "b")->tag == NULL);
    MT_CHECK_STR_EQ(NODE(r, "c")->str, "other.pkl");
    MT_CHECK_EQ_INT(NODE(r, "d")->kind, MT_CFG_PKL);
    MT_CHECK_STR_EQ(NODE(r, "d")->str, "run/best.ckpt");
    MT_CHECK_STR_EQ(NODE(r, "e")->str, "inline.pkl");
    const mt_cfg_node *f = NODE(r, "f");
    MT_CHECK_EQ_INT(f->kind, MT_CFG_TAGGED);
    MT_CHECK_STR_EQ(f->tag, "uniform");
    MT_CHECK_EQ_INT(f->n, 1);
    MT_CHECK_EQ_INT(f->items[0]->kind, MT_CFG_LIST);
    MT_CHECK_CLOSE(NODE(r, "f.~.1")->f, 0.5, 0, 0);
    CHECK_LOC(f->loc, "t.yaml", 6, 4);
    MT_CHECK_STR_EQ(NODE(r, "g")->tag, "choice");
    MT_CHECK_EQ_INT(NODE(r, "g.~.1")->i, 128);
    MT_CHECK_STR_EQ(NODE(r, "h")->tag, "param");
    MT_CHECK_STR_EQ(NODE(r, "h.~")->str, "lr");
    MT_CHECK_EQ_INT(NODE(r, "i.~")->kind, MT_CFG_MAP);
    MT_CHECK_CLOSE(NODE(r, "i.~.low")->f, 1e-4, 0, 0);
    MT_CHECK_EQ_INT(NODE(r, "j")->kind, MT_CFG_OBJ);
    MT_CHECK_EQ_INT(NODE(r, "j")->n, 0);
    mt_cfg_doc_free(doc);
    LOAD_ERR("a: !import 'os.system'\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:4: '!import' is not supported: a config file cannot import or run code");
    LOAD_ERR("a: !import:os.system\n", NULL, MT_ERR_FORMAT, "cannot import or run code");
    LOAD_ERR("a: !flaot 1\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:4: unknown tag '!flaot' on a scalar (did you mean '!float'?)");
    LOAD_ERR("a: !python/object:os.system [x]\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:4: unknown tag '!python/object:os.system' on a list");
    LOAD_ERR("a: !!python/object/apply:os.system [ls]\n", NULL, MT_ERR_FORMAT,
             "unknown tag 'tag:yaml.org,2002:python/object/apply:os.system'");
    LOAD_ERR("a: !obj:MLP\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:4: '!obj:MLP' needs a mapping of arguments ('{}' for none), not a scalar");
    LOAD_ERR("a: !obj:MLP [1]\n", NULL, MT_ERR_FORMAT,
             "'!obj:MLP' needs a mapping of arguments, not a list");
    LOAD_ERR("a: !obj: {x: 1}\n", NULL, MT_ERR_FORMAT, "'!obj:' needs a component name");
    LOAD_ERR("a: !pkl: ''\n", NULL, MT_ERR_FORMAT, "t.yaml:1:4: !pkl: needs a path");
    LOAD_ERR("a: !pkl:x.pkl y.pkl\n", NULL, MT_ERR_FORMAT,
             "write the path either in the tag or as the value");
    LOAD_ERR("a: !pkl: {x: 1}\n", NULL, MT_ERR_FORMAT, "'!pkl:' takes a scalar");
    LOAD_ERR("--- 1\n--- 2\n", NULL, MT_ERR_FORMAT, "t.yaml:2:1: a second YAML document");
}

/* ================================================================ templates */

MT_TEST(templates)
{
    mt_cfg_var params[] = {{"train_stop", "50000"},
                           {"save_path", "out"},
                           {"lr", "0.5"},
                           {"which", "train"},
                           {"n", "+7"}};
    mt_cfg_options o;
    opts_clean(&o);
    o.params = params;
    o.n_params = 5;
    const char *text = "stop: %(train_stop)i\n"
                       "path: \"%(save_path)s/best.pkl\"\n"
                       "lr: %(lr)f\n"
                       "which: %(which)r\n"
                       "n: [%(n)d, 50%%]\n"
                       "again: %(train_stop)s\n"
                       "after: [%(train_stop)i, x]\n";
    mt_cfg_doc *doc = LOAD_OK(text, &o);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    MT_CHECK_EQ_INT(NODE(r, "stop")->kind, MT_CFG_INT);
    MT_CHECK_EQ_INT(NODE(r, "stop")->i, 50000);
    MT_CHECK_STR_EQ(NODE(r, "path")->str, "out/best.pkl");
    MT_CHECK_STR_EQ(NODE(r, "lr")->str, "0.500000"); /* Python's %f */
    MT_CHECK_STR_EQ(NODE(r, "which")->str, "train");
    MT_CHECK(NODE(r, "which")->quoted);
    MT_CHECK_EQ_INT(NODE(r, "n.0")->i, 7);
    MT_CHECK_STR_EQ(NODE(r, "n.1")->str, "50%");
    /* positions after a substitution still name where things were written */
    CHECK_LOC(NODE(r, "stop")->loc, "t.yaml", 1, 7);
    CHECK_LOC(NODE(r, "n.1")->loc, "t.yaml", 5, 12);
    CHECK_LOC(NODE(r, "after.1")->loc, "t.yaml", 7, 25);
    MT_CHECK_EQ_INT(mt_cfg_doc_n_template_names(doc), 5);
    MT_CHECK_STR_EQ(mt_cfg_doc_template_name(doc, 0), "train_stop");
    MT_CHECK_STR_EQ(mt_cfg_doc_template_name(doc, 4), "n");
    MT_CHECK(mt_cfg_doc_template_name(doc, 5) == NULL);
    mt_cfg_doc_free(doc);

    /* missing names: the first one's position, every missing name, the names given */
    mt_cfg_var two[] = {{"a", "1"}, {"b", "2"}};
    o.params = two;
    o.n_params = 2;
    LOAD_ERR("x: %(a)i\ny: [%(dim_h0)i, %(dim_h1)i, %(dim_h0)i]\n", &o, MT_ERR_FORMAT,
             "t.yaml:2:5: template parameter 'dim_h0' has no value (missing: 'dim_h0', "
             "'dim_h1'; given: a, b)");
    o.n_params = 0;
    LOAD_ERR("x: %(a)i\n", &o, MT_ERR_FORMAT, "given: none");
    mt_cfg_var bad[] = {{"a", "12abc"}};
    o.params = bad;
    o.n_params = 1;
    LOAD_ERR("x: 1\ny: %(a)i\n", &o, MT_ERR_FORMAT,
             "t.yaml:2:4: template '%(a)i' needs an integer, got '12abc'");
    LOAD_ERR("y: %(a)f\n", &o, MT_ERR_FORMAT, "needs a number");
    LOAD_ERR("y: %(a\n", &o, MT_ERR_FORMAT, "t.yaml:1:4: unterminated template '%('");
    LOAD_ERR("y: %(a)x\n", &o, MT_ERR_FORMAT, "needs a conversion s, i, d, f or r");
    /* a file without templates is left alone, '%%' included */
    o.n_params = 0;
    doc = LOAD_OK("a: 50%%\nb: 100%\n", &o);
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "a")->str, "50%%");
    MT_CHECK_EQ_INT(mt_cfg_doc_n_template_names(doc), 0);
    mt_cfg_doc_free(doc);
    /* %r quotes strings YAML-safely */
    mt_cfg_var q[] = {{"s", "it's: here"}};
    o.params = q;
    o.n_params = 1;
    doc = LOAD_OK("a: %(s)r\n", &o);
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "a")->str, "it's: here");
    mt_cfg_doc_free(doc);
}

MT_TEST(template_at_file)
{
    const char *part = test_path("template_at_file", "part.yaml");
    write_text(part, "!obj:MNIST {\n"
                     "    which_set: 'train',\n"
                     "    stop: %(stop)i\n"
                     "}\n");
    char at[1100];
    snprintf(at, sizeof at, "@%s", part);
    mt_cfg_var params[] = {{"dataset", at}, {"stop", "100"}};
    mt_cfg_options o;
    opts_clean(&o);
    o.params = params;
    o.n_params = 2;
    mt_cfg_doc *doc = LOAD_OK("!obj:Train {\n"
                              "    dataset: &train %(dataset)s,\n"
                              "    monitor: *train, after: 1\n"
                              "}\n",
                              &o);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    const mt_cfg_node *ds = NODE(r, "dataset");
    MT_CHECK_EQ_INT(ds->kind, MT_CFG_OBJ);
    MT_CHECK_STR_EQ(ds->tag, "MNIST");
    MT_CHECK(NODE(r, "monitor") == ds);
    MT_CHECK_EQ_INT(NODE(ds, "stop")->i, 100);
    /* nodes from the @file keep that file's name and positions */
    MT_CHECK_STR_EQ(NODE(ds, "which_set")->loc.file, part);
    CHECK_LOC(NODE(ds, "which_set")->loc, "part.yaml", 2, 16);
    CHECK_LOC(mt_cfg_key_loc(ds, "stop"), "part.yaml", 3, 5);
    CHECK_LOC(NODE(ds, "stop")->loc, "part.yaml", 3, 11);
    /* the including file's positions after the spliced text */
    CHECK_LOC(mt_cfg_key_loc(r, "monitor"), "t.yaml", 3, 5);
    CHECK_LOC(mt_cfg_key_loc(r, "after"), "t.yaml", 3, 22);
    MT_CHECK_EQ_INT(mt_cfg_doc_n_template_names(doc), 2);
    mt_cfg_doc_free(doc);
    /* a syntax error inside the @file is reported in that file */
    write_text(part, "!obj:MNIST {\n    which_set: 'train'\n    stop: ]\n}\n");
    LOAD_ERR("a: %(dataset)s\n", &o, MT_ERR_FORMAT, "part.yaml:3:");
    /* missing @file, and an @file that uses itself */
    mt_cfg_var missing[] = {{"dataset", "@/nonexistent/x.yaml"}};
    o.params = missing;
    o.n_params = 1;
    LOAD_ERR("a: %(dataset)s\n", &o, MT_ERR_IO,
             "t.yaml:1:4: template parameter 'dataset' = '@/nonexistent/x.yaml'");
    write_text(part, "x: %(dataset)s\n");
    o.params = params;
    LOAD_ERR("a: %(dataset)s\n", &o, MT_ERR_FORMAT, "nested deeper than 8");
}

/* ================================================================ variables */

MT_TEST(variables_table_and_environment)
{
    char *store = NULL;
    mt_cfg_var vars[16];
    int32_t n = mt_cfg_job_vars(vars, 16, "runs/exp/mlp.yaml", 0, &store);
    MT_CHECK_EQ_INT(n, 8);
    mt_cfg_options o;
    opts_clean(&o);
    o.vars = vars;
    o.n_vars = n;
    mt_cfg_doc *doc = LOAD_OK("a: \"${PYLEARN2_TRAIN_FILE_FULL_STEM}.pkl\"\n"
                              "b: ${MLTRAIN_TRAIN_FILE_STEM}_best.pkl\n"
                              "c: !pkl: \"${MLTRAIN_TRAIN_DIR}/x.pkl\"\n"
                              "d: '${PYLEARN2_TRAIN_BASE_NAME}'\n"
                              "e: $HOME and $ alone\n",
                              &o);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    MT_CHECK_STR_EQ(NODE(r, "a")->str, "runs/exp/mlp.pkl");
    MT_CHECK_STR_EQ(NODE(r, "b")->str, "mlp_best.pkl");
    MT_CHECK_EQ_INT(NODE(r, "c")->kind, MT_CFG_PKL);
    MT_CHECK_STR_EQ(NODE(r, "c")->str, "runs/exp/x.pkl");
    MT_CHECK_STR_EQ(NODE(r, "d")->str, "mlp.yaml");
    MT_CHECK_STR_EQ(NODE(r, "e")->str, "$HOME and $ alone");
    mt_cfg_doc_free(doc);
    mt_cfg_vars_free(store);

    /* re-typing: plain scalars only */
    mt_cfg_var nv[] = {{"N", "5"}, {"LR", "1e-3"}, {"EMPTY", ""}, {"MY_VARIABLE", "v"}};
    o.vars = nv;
    o.n_vars = 4;
    doc = LOAD_OK("n: ${N}\nq: \"${N}\"\nlr: ${LR}\ne: ${EMPTY}\nlist:\n  - a\n  - ${N}\n", &o);
    r = mt_cfg_doc_root(doc);
    MT_CHECK_EQ_INT(NODE(r, "n")->kind, MT_CFG_INT);
    MT_CHECK_EQ_INT(NODE(r, "n")->i, 5);
    MT_CHECK_EQ_INT(NODE(r, "q")->kind, MT_CFG_STRING);
    MT_CHECK_STR_EQ(NODE(r, "q")->str, "5");
    MT_CHECK_EQ_INT(NODE(r, "lr")->kind, MT_CFG_FLOAT);
    MT_CHECK_EQ_INT(NODE(r, "e")->kind, MT_CFG_NULL);
    MT_CHECK_EQ_INT(NODE(r, "list.1")->i, 5);
    mt_cfg_doc_free(doc);

    /* unknown variables */
    LOAD_ERR("a: 1\nb: \"x/${MY_VARIABL}/y\"\n", &o, MT_ERR_FORMAT,
             "t.yaml:2:4: unknown variable '${MY_VARIABL}' (did you mean 'MY_VARIABLE'?)");
    LOAD_ERR("a: \"${ZZZZZZZZ}\"\n", &o, MT_ERR_FORMAT,
             "unknown variable '${ZZZZZZZZ}' (not among the job's variables)");
    LOAD_ERR("a: \"${PYLEARN2_DATA_PATH}/mnist\"\n", &o, MT_ERR_FORMAT,
             "t.yaml:1:4: unknown variable '${PYLEARN2_DATA_PATH}': set MLTRAIN_DATA_PATH (or "
             "PYLEARN2_DATA_PATH)");
    LOAD_ERR("a: \"${N\"\n", &o, MT_ERR_FORMAT, "t.yaml:1:4: '${' without a closing '}'");
    o.keep_unknown_vars = true;
    doc = LOAD_OK("a: \"${trial.dir}/best.ckpt\"\nb: ${N}\n", &o);
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "a")->str, "${trial.dir}/best.ckpt");
    MT_CHECK_EQ_INT(NODE(mt_cfg_doc_root(doc), "b")->i, 5);
    mt_cfg_doc_free(doc);
    o.keep_unknown_vars = false;

    /* the environment, with MLTRAIN_ / PYLEARN2_ standing in for each other */
    o.no_environment = false;
    unsetenv("PYLEARN2_DATA_PATH");
    setenv("MLTRAIN_DATA_PATH", "/data/m", 1);
    setenv("MT_CFG_TEST_VARIABLE", "envval", 1);
    doc = LOAD_OK("a: \"${PYLEARN2_DATA_PATH}/mnist\"\nb: ${MLTRAIN_DATA_PATH}\nc: "
                  "${MT_CFG_TEST_VARIABLE}\nd: ${N}\n",
                  &o);
    r = mt_cfg_doc_root(doc);
    MT_CHECK_STR_EQ(NODE(r, "a")->str, "/data/m/mnist");
    MT_CHECK_STR_EQ(NODE(r, "b")->str, "/data/m");
    MT_CHECK_STR_EQ(NODE(r, "c")->str, "envval");
    MT_CHECK_EQ_INT(NODE(r, "d")->i, 5); /* the table first */
    mt_cfg_doc_free(doc);
    unsetenv("MLTRAIN_DATA_PATH");
    setenv("PYLEARN2_DATA_PATH", "/data/p", 1);
    doc = LOAD_OK("a: ${MLTRAIN_DATA_PATH}/x\n", &o);
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "a")->str, "/data/p/x");
    mt_cfg_doc_free(doc);
    /* a suggestion from the environment */
    LOAD_ERR("a: ${MT_CFG_TEST_VARIABEL}\n", &o, MT_ERR_FORMAT,
             "(did you mean 'MT_CFG_TEST_VARIABLE'?)");
    unsetenv("PYLEARN2_DATA_PATH");
}

MT_TEST(job_vars)
{
    char *store = NULL;
    mt_cfg_var v[16];
    int32_t n = mt_cfg_job_vars(v, 16, "dir/sub/foo.yaml", 3, &store);
    MT_CHECK_EQ_INT(n, 10);
    const char *want[][2] = {{"MLTRAIN_TRAIN_FILE_FULL_STEM", "dir/sub/foo"},
                             {"PYLEARN2_TRAIN_FILE_FULL_STEM", "dir/sub/foo"},
                             {"MLTRAIN_TRAIN_DIR", "dir/sub"},
                             {"PYLEARN2_TRAIN_DIR", "dir/sub"},
                             {"MLTRAIN_TRAIN_BASE_NAME", "foo.yaml"},
                             {"PYLEARN2_TRAIN_BASE_NAME", "foo.yaml"},
                             {"MLTRAIN_TRAIN_FILE_STEM", "foo"},
                             {"PYLEARN2_TRAIN_FILE_STEM", "foo"},
                             {"MLTRAIN_TRAIN_PHASE", "phase3"},
                             {"PYLEARN2_TRAIN_PHASE", "phase3"}};
    for (int i = 0; i < 10; i++) {
        MT_CHECK_STR_EQ(v[i].name, want[i][0]);
        MT_CHECK_STR_EQ(v[i].value, want[i][1]);
    }
    mt_cfg_vars_free(store);
    n = mt_cfg_job_vars(v, 16, "foo.yml", 0, &store);
    MT_CHECK_EQ_INT(n, 8);
    MT_CHECK_STR_EQ(v[0].value, "foo");
    MT_CHECK_STR_EQ(v[2].value, ".");
    mt_cfg_vars_free(store);
    n = mt_cfg_job_vars(v, 3, "a/b.yaml", 0, &store); /* capped */
    MT_CHECK_EQ_INT(n, 3);
    MT_CHECK_STR_EQ(v[2].value, "a");
    mt_cfg_vars_free(store);
    n = mt_cfg_job_vars(v, 16, "/top.txt", 0, &store);
    MT_CHECK_STR_EQ(v[0].value, "/top.txt");
    MT_CHECK_STR_EQ(v[2].value, "/");
    MT_CHECK_STR_EQ(v[6].value, "top.txt");
    mt_cfg_vars_free(store);
}

/* ================================================================ includes */

MT_TEST(includes)
{
    const char *main_path = test_path("includes", "main.yaml");
    write_text(test_path("includes", "sub/model.yaml"),
               "# the model\n"
               "!obj:MLP { nvis: 784, layers: !include \"layers.yaml\" }\n");
    write_text(test_path("includes", "sub/layers.yaml"), "[ !obj:Softmax { n_classes: 10 } ]\n");
    write_text(test_path("includes", "data.yaml"), "&d !obj:MNIST { which_set: train }\n");
    write_text(main_path, "model: !include \"sub/model.yaml\"\n"
                          "data: !include:data.yaml\n"
                          "again: !include data.yaml\n");
    mt_cfg_options o;
    opts_clean(&o);
    mt_cfg_doc *doc = NULL;
    MT_CHECK_OK(mt_cfg_load_file(&doc, main_path, &o));
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    const mt_cfg_node *m = NODE(r, "model");
    MT_CHECK_EQ_INT(m->kind, MT_CFG_OBJ);
    MT_CHECK_STR_EQ(m->tag, "MLP");
    CHECK_LOC(m->loc, "includes/sub/model.yaml", 2, 1);
    CHECK_LOC(NODE(m, "layers.0.n_classes")->loc, "includes/sub/layers.yaml", 1, 29);
    MT_CHECK_EQ_INT(NODE(m, "layers.0.n_classes")->i, 10);
    CHECK_LOC(mt_cfg_key_loc(r, "data"), "includes/main.yaml", 2, 1);
    MT_CHECK_STR_EQ(NODE(r, "data.which_set")->str, "train");
    MT_CHECK(NODE(r, "again") != NODE(r, "data")); /* two includes are two nodes */
    mt_cfg_doc_free(doc);

    /* cycles: a -> b -> a */
    write_text(test_path("includes", "a.yaml"), "x: !include b.yaml\n");
    write_text(test_path("includes", "b.yaml"), "y: [1, !include a.yaml]\n");
    mt_err_clear();
    MT_CHECK_EQ_INT(mt_cfg_load_file(&doc, test_path("includes", "a.yaml"), &o), MT_ERR_FORMAT);
    MT_CHECK(doc == NULL);
    MT_CHECK(strstr(mt_last_error(), "b.yaml:1:8: include cycle: ") != NULL);
    MT_CHECK(strstr(mt_last_error(), "a.yaml -> ") != NULL);
    /* self-inclusion */
    write_text(test_path("includes", "self.yaml"), "x: !include self.yaml\n");
    MT_CHECK_ERR(mt_cfg_load_file(&doc, test_path("includes", "self.yaml"), &o), MT_ERR_FORMAT,
                 "self.yaml:1:4: include cycle");
    /* a missing file names the include position */
    write_text(test_path("includes", "missing.yaml"), "a: 1\nb: !include nope.yaml\n");
    MT_CHECK_ERR(mt_cfg_load_file(&doc, test_path("includes", "missing.yaml"), &o), MT_ERR_IO,
                 "missing.yaml:2:4: !include '");
    MT_CHECK(strstr(mt_last_error(), "includes/nope.yaml': cannot open") != NULL);
    /* nesting depth of includes */
    for (int i = 0; i < 12; i++) {
        char name[32], text[64];
        snprintf(name, sizeof name, "chain%d.yaml", i);
        snprintf(text, sizeof text, "v: !include chain%d.yaml\n", i + 1);
        write_text(test_path("includes", name), text);
    }
    write_text(test_path("includes", "chain12.yaml"), "end\n");
    o.limits.max_include_depth = 12;
    MT_CHECK_OK(mt_cfg_load_file(&doc, test_path("includes", "chain0.yaml"), &o));
    MT_CHECK_STR_EQ(NODE(mt_cfg_doc_root(doc), "v.v.v.v.v.v.v.v.v.v.v.v")->str, "end");
    mt_cfg_doc_free(doc);
    o.limits.max_include_depth = 0; /* the default, 8 */
    MT_CHECK_ERR(mt_cfg_load_file(&doc, test_path("includes", "chain0.yaml"), &o), MT_ERR_FORMAT,
                 "chain8.yaml:1:4: !include 'chain9.yaml': includes nested deeper than 8");
    /* include depth counts towards the nesting limit */
    o.limits.max_depth = 5;
    write_text(test_path("includes", "deep_in.yaml"), "[[[[1]]]]\n");
    write_text(test_path("includes", "deep.yaml"), "a: {b: !include deep_in.yaml}\n");
    MT_CHECK_ERR(mt_cfg_load_file(&doc, test_path("includes", "deep.yaml"), &o), MT_ERR_FORMAT,
                 "deep_in.yaml:1:4: nesting deeper than 5 levels");
    /* load_string includes relative to the directory of its name */
    o.limits.max_depth = 0;
    char name[1100];
    snprintf(name, sizeof name, "%s", test_path("includes", "virtual.yaml"));
    const char *text = "m: !include data.yaml\n";
    MT_CHECK_OK(mt_cfg_load_string(&doc, text, strlen(text), name, &o));
    MT_CHECK_EQ_INT(NODE(mt_cfg_doc_root(doc), "m")->kind, MT_CFG_OBJ);
    mt_cfg_doc_free(doc);
    MT_CHECK_ERR(mt_cfg_load_file(&doc, test_path("includes", "absent.yaml"), &o), MT_ERR_IO,
                 "absent.yaml");
}

/* ================================================================ limits */

MT_TEST(billion_laughs_is_bounded_and_fast)
{
    const char *lol =
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
        "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
        "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    double t0 = mt_now_seconds();
    LOAD_ERR(lol, NULL, MT_ERR_FORMAT,
             "the document has more than 1000000 nodes, counting each alias as a copy");
    double dt = mt_now_seconds() - t0;
    MT_CHECK(dt < 0.5);
    /* the first levels are fine: 'e' expands to about 9^5 nodes */
    mt_cfg_options o;
    opts_clean(&o);
    char *small = strdup(lol);
    *strstr(small, "f: &f") = '\0';
    mt_cfg_doc *doc = LOAD_OK(small, &o);
    MT_CHECK(NODE(mt_cfg_doc_root(doc), "e.8.8.8.8") == NODE(mt_cfg_doc_root(doc), "a"));
    mt_cfg_doc_free(doc);
    /* and a lower limit stops it: error at the alias that crosses it */
    o.limits.max_nodes = 50000;
    LOAD_ERR(small, &o, MT_ERR_FORMAT, "t.yaml:5:");
    free(small);
    /* the same with a mapping bomb */
    LOAD_ERR("a: &a {x: 1, y: 2, z: 3, w: 4}\n"
             "b: &b {a: *a, b: *a, c: *a, d: *a, e: *a, f: *a, g: *a, h: *a}\n"
             "c: &c {a: *b, b: *b, c: *b, d: *b, e: *b, f: *b, g: *b, h: *b}\n"
             "d: &d {a: *c, b: *c, c: *c, d: *c, e: *c, f: *c, g: *c, h: *c}\n"
             "e: &e {a: *d, b: *d, c: *d, d: *d, e: *d, f: *d, g: *d, h: *d}\n"
             "f: &f {a: *e, b: *e, c: *e, d: *e, e: *e, f: *e, g: *e, h: *e}\n",
             &o, MT_ERR_FORMAT, "t.yaml:6:");
}

MT_TEST(depth_limit)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    for (int i = 0; i < 64; i++)
        mt_strbuf_append(&sb, "[");
    mt_strbuf_append(&sb, "1");
    for (int i = 0; i < 64; i++)
        mt_strbuf_append(&sb, "]");
    mt_cfg_doc *doc = LOAD_OK(sb.data, NULL); /* exactly the limit */
    mt_cfg_doc_free(doc);
    mt_strbuf_clear(&sb);
    for (int i = 0; i < 65; i++)
        mt_strbuf_append(&sb, "[");
    for (int i = 0; i < 65; i++)
        mt_strbuf_append(&sb, "]");
    LOAD_ERR(sb.data, NULL, MT_ERR_FORMAT,
             "t.yaml:1:65: nesting deeper than 64 levels (mt_cfg_limits.max_depth)");
    /* very deep input fails quickly without recursion */
    mt_strbuf_clear(&sb);
    for (int i = 0; i < 100000; i++)
        mt_strbuf_append(&sb, "{a: ");
    LOAD_ERR(sb.data, NULL, MT_ERR_FORMAT, "nesting deeper than 64");
    mt_cfg_options o;
    opts_clean(&o);
    o.limits.max_depth = 3;
    LOAD_ERR("a: {b: {c: [1]}}\n", &o, MT_ERR_FORMAT, "t.yaml:1:12: nesting deeper than 3");
    mt_strbuf_deinit(&sb);
}

MT_TEST(file_size_limit)
{
    mt_cfg_options o;
    opts_clean(&o);
    o.limits.max_file_bytes = 100;
    const char *path = test_path("file_size_limit", "big.yaml");
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    for (int i = 0; i < 20; i++)
        mt_strbuf_appendf(&sb, "k%02d: 1\n", i); /* 140 bytes */
    write_text(path, sb.data);
    mt_cfg_doc *doc = NULL;
    MT_CHECK_ERR(mt_cfg_load_file(&doc, path, &o), MT_ERR_FORMAT, "big.yaml:1:1: '");
    MT_CHECK(strstr(
        mt_last_error(),
        "big.yaml' is 140 bytes, more than the limit of 100 bytes (mt_cfg_limits.max_file_bytes)"));
    LOAD_ERR(sb.data, &o, MT_ERR_FORMAT,
             "t.yaml:1:1: 't.yaml' is 140 bytes, more than the limit of 100");
    /* after templating */
    mt_cfg_var p[] = {{"x", "0123456789012345678901234567890123456789012345678901234567890123456789"
                            "0123456789012345678901234567890123456789"}};
    o.params = p;
    o.n_params = 1;
    LOAD_ERR("a: %(x)s\n", &o, MT_ERR_FORMAT,
             "t.yaml:1:1: 't.yaml' grows to more than the limit of 100 bytes when templated");
    /* an @file used many times stops as soon as the text is too big */
    const char *part = test_path("file_size_limit", "part.yaml");
    write_text(part, "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]");
    char at[1100];
    snprintf(at, sizeof at, "@%s", part);
    mt_cfg_var pp[] = {{"p", at}};
    o.params = pp;
    LOAD_ERR("a: [%(p)s, %(p)s, %(p)s, %(p)s]\n", &o, MT_ERR_FORMAT, "grows to more than the limit of 100 bytes");
    o.n_params = 0;
    /* included files add up: at most 4 x max_file_bytes in all */
    o.limits.max_file_bytes = 200;
    mt_strbuf_clear(&sb);
    mt_strbuf_append(&sb, "[");
    for (int i = 0; i < 18; i++) mt_strbuf_append(&sb, "abcdefghi, "); /* 199 bytes */
    mt_strbuf_append(&sb, "]");
    write_text(test_path("file_size_limit", "i.yaml"), sb.data);
    const char *incs = test_path("file_size_limit", "incs.yaml");
    write_text(incs, "[!include i.yaml, !include i.yaml, !include i.yaml]\n");
    MT_CHECK_OK(mt_cfg_load_file(&doc, incs, &o));
    mt_cfg_doc_free(doc);
    write_text(incs, "[!include i.yaml, !include i.yaml, !include i.yaml, !include i.yaml]\n");
    MT_CHECK_ERR(mt_cfg_load_file(&doc, incs, &o), MT_ERR_FORMAT,
                 "i.yaml:1:1: the included files add up to more than 800 bytes");
    o.limits.max_file_bytes = 200;
    MT_CHECK_OK(mt_cfg_load_file(&doc, path, &o));
    mt_cfg_doc_free(doc);
    mt_strbuf_deinit(&sb);
}

/* ================================================================ syntax errors */

MT_TEST(syntax_errors_have_positions)
{
    LOAD_ERR("a: {b: 1, c: 2\n", NULL, MT_ERR_FORMAT,
             "t.yaml:2:1: YAML syntax error: did not find expected ',' or '}' (while parsing a "
             "flow mapping at t.yaml:1:4)");
    LOAD_ERR("a: 1\n  b: 2\n", NULL, MT_ERR_FORMAT,
             "t.yaml:2:4: YAML syntax error: mapping values are not allowed in this context");
    LOAD_ERR("a: [1, 2\nb: 3\n", NULL, MT_ERR_FORMAT, "t.yaml:2:2: YAML syntax error");
    LOAD_ERR("a: \"unterminated\n", NULL, MT_ERR_FORMAT,
             "t.yaml:2:1: YAML syntax error: found unexpected end of stream");
    LOAD_ERR("a: \x01\n", NULL, MT_ERR_FORMAT,
             "t.yaml:1:4: cannot read the text: control characters are not allowed");
    LOAD_ERR("a: \xff\xfe\n", NULL, MT_ERR_FORMAT, "cannot read the text: invalid");
    /* positions inside a templated line point at what was written */
    mt_cfg_var p[] = {{"long_parameter_name", "1"}};
    mt_cfg_options o;
    opts_clean(&o);
    o.params = p;
    o.n_params = 1;
    LOAD_ERR("a: [%(long_parameter_name)i, 2]]\n", &o, MT_ERR_FORMAT,
             "t.yaml:1:32: YAML syntax error");
    /* an empty file is a null root */
    mt_cfg_doc *doc = LOAD_OK("# nothing\n", NULL);
    MT_CHECK_EQ_INT(mt_cfg_doc_root(doc)->kind, MT_CFG_NULL);
    mt_cfg_doc_free(doc);
}

/* ================================================================ getters */

MT_TEST(typed_getters)
{
    mt_cfg_doc *doc = LOAD_OK("i: 5\nf: 2.5\nfi: 3.0\nb: true\nb1: 1\nb2: 2\ns: hi\nn: ~\n"
                              "list: [1, 2.5, 3]\nints: [1, 2, 3.0]\none: 7\nbad: [1, x]\n"
                              "big: 1.0e30\n",
                              NULL);
    const mt_cfg_node *r = mt_cfg_doc_root(doc);
    int64_t i;
    double f;
    bool b;
    const char *s;
    MT_CHECK_OK(mt_cfg_get_int(r, "i", 0, &i));
    MT_CHECK_EQ_INT(i, 5);
    MT_CHECK_OK(mt_cfg_get_int(r, "fi", 0, &i));
    MT_CHECK_EQ_INT(i, 3);
    MT_CHECK_OK(mt_cfg_get_int(r, "absent", -4, &i));
    MT_CHECK_EQ_INT(i, -4);
    MT_CHECK_OK(mt_cfg_get_int(r, "n", -5, &i));
    MT_CHECK_EQ_INT(i, -5);
    MT_CHECK_ERR(mt_cfg_get_int(r, "f", 0, &i), MT_ERR_INVALID,
                 "t.yaml:2:4: 'f' must be an integer, got float '2.5'");
    MT_CHECK_ERR(mt_cfg_get_int(r, "s", 0, &i), MT_ERR_INVALID,
                 "t.yaml:7:4: 's' must be an integer, got string 'hi'");
    MT_CHECK_ERR(mt_cfg_get_int(r, "big", 0, &i), MT_ERR_INVALID, "must be an integer");
    MT_CHECK_OK(mt_cfg_get_float(r, "i", 0, &f));
    MT_CHECK_CLOSE(f, 5, 0, 0);
    MT_CHECK_OK(mt_cfg_get_float(r, "f", 0, &f));
    MT_CHECK_CLOSE(f, 2.5, 0, 0);
    MT_CHECK_ERR(mt_cfg_get_float(r, "list", 0, &f), MT_ERR_INVALID,
                 "'list' must be a number, got a list of 3");
    MT_CHECK_OK(mt_cfg_get_bool(r, "b", false, &b));
    MT_CHECK(b);
    MT_CHECK_OK(mt_cfg_get_bool(r, "b1", false, &b));
    MT_CHECK(b);
    MT_CHECK_ERR(mt_cfg_get_bool(r, "b2", false, &b), MT_ERR_INVALID, "'b2' must be a boolean");
    MT_CHECK_OK(mt_cfg_get_string(r, "s", NULL, &s));
    MT_CHECK_STR_EQ(s, "hi");
    MT_CHECK_OK(mt_cfg_get_string(r, "n", "dflt", &s));
    MT_CHECK_STR_EQ(s, "dflt");
    MT_CHECK_ERR(mt_cfg_get_string(r, "i", NULL, &s), MT_ERR_INVALID,
                 "'i' must be a string, got int '5'");
    double fs[4];
    int64_t is[4];
    int32_t n;
    MT_CHECK_OK(mt_cfg_get_floats(r, "list", 4, fs, &n));
    MT_CHECK_EQ_INT(n, 3);
    MT_CHECK_CLOSE(fs[1], 2.5, 0, 0);
    MT_CHECK_OK(mt_cfg_get_floats(r, "one", 4, fs, &n));
    MT_CHECK_EQ_INT(n, 1);
    MT_CHECK_CLOSE(fs[0], 7, 0, 0);
    MT_CHECK_OK(mt_cfg_get_floats(r, "absent", 4, fs, &n));
    MT_CHECK_EQ_INT(n, 0);
    MT_CHECK_ERR(mt_cfg_get_floats(r, "list", 2, fs, &n), MT_ERR_INVALID,
                 "'list' has 3 values, at most 2 allowed");
    MT_CHECK_ERR(mt_cfg_get_floats(r, "bad", 4, fs, &n), MT_ERR_INVALID,
                 "t.yaml:12:10: 'bad' must be a number or a list of numbers, got string 'x'");
    MT_CHECK_OK(mt_cfg_get_ints(r, "ints", 4, is, &n));
    MT_CHECK_EQ_INT(n, 3);
    MT_CHECK_EQ_INT(is[2], 3);
    MT_CHECK_ERR(mt_cfg_get_ints(r, "list", 4, is, &n), MT_ERR_INVALID,
                 "must be an integer or a list of integers, got float '2.5'");
    MT_CHECK(mt_cfg_get(r, "nope") == NULL);
    MT_CHECK(mt_cfg_get(NODE(r, "list"), "x") == NULL); /* not a mapping */
    MT_CHECK_ERR(mt_cfg_error(MT_ERR_RANGE, NODE(r, "s")->loc, "custom %d", 42), MT_ERR_RANGE,
                 "t.yaml:7:4: custom 42");
    mt_cfg_doc_free(doc);

    char *e = NULL;
    setenv("HOME", "/home/tester", 1);
    MT_CHECK_OK(mt_cfg_expand_user(&e, "~/data/x"));
    MT_CHECK_STR_EQ(e, "/home/tester/data/x");
    mt_free(e);
    MT_CHECK_OK(mt_cfg_expand_user(&e, "a/~/b"));
    MT_CHECK_STR_EQ(e, "a/~/b");
    mt_free(e);
    MT_CHECK_OK(mt_cfg_expand_user(&e, "~"));
    MT_CHECK_STR_EQ(e, "/home/tester");
    mt_free(e);
}

MT_TEST(suggest)
{
    const char *keys[] = {"nvis", "layers", "batch_size", "learning_rate", "N", "MLP"};
    MT_CHECK_STR_EQ(mt_cfg_suggest("nvs", 6, keys), "nvis");
    MT_CHECK_STR_EQ(mt_cfg_suggest("learnin_rate", 6, keys), "learning_rate");
    MT_CHECK_STR_EQ(mt_cfg_suggest("LEARNING_RATE", 6, keys), "learning_rate");
    MT_CHECK_STR_EQ(mt_cfg_suggest("mlp", 6, keys), "MLP");
    MT_CHECK_STR_EQ(mt_cfg_suggest("batchsize", 6, keys), "batch_size");
    MT_CHECK(mt_cfg_suggest("lr", 6, keys) == NULL); /* not close to "N" */
    MT_CHECK(mt_cfg_suggest("momentum", 6, keys) == NULL);
    MT_CHECK(mt_cfg_suggest("x", 0, keys) == NULL);
    /* the threshold grows with the word: len/3 */
    const char *long_names[] = {"termination_criterion"};
    MT_CHECK_STR_EQ(mt_cfg_suggest("terminaton_critrion", 1, long_names), "termination_criterion");
    MT_CHECK(mt_cfg_suggest("terminate", 1, long_names) == NULL);
}

/* The two maps share one open-addressing table: growth past the first 32 slots, overwriting,
 * backward-shift deletion in the pointer map (every other key still found after it), string
 * keys compared by content, and zeroed maps as empty ones. Checked against plain arrays. */
MT_TEST(hash_maps)
{
    enum { N = 300 };
    static char objs[N];
    mt__ptrmap pm = {0};
    int64_t v = -1;
    MT_CHECK(!mt__ptrmap_get(&pm, &objs[0], &v));
    MT_CHECK(!mt__ptrmap_del(&pm, &objs[0]));
    for (int i = 0; i < N; i++) MT_CHECK_OK(mt__ptrmap_put(&pm, &objs[i], i));
    MT_CHECK_OK(mt__ptrmap_put(&pm, &objs[7], 1007)); /* overwrite: no new entry */
    MT_CHECK(pm.n == N);
    MT_CHECK_ERR(mt__ptrmap_put(&pm, NULL, 1), MT_ERR_INTERNAL, "NULL key");
    for (int i = 0; i < N; i += 3) MT_CHECK(mt__ptrmap_del(&pm, &objs[i]));
    MT_CHECK(!mt__ptrmap_del(&pm, &objs[0]));
    for (int i = 0; i < N; i++) {
        bool kept = i % 3 != 0;
        v = -1;
        MT_CHECK(mt__ptrmap_get(&pm, &objs[i], &v) == kept);
        if (kept) MT_CHECK(v == (i == 7 ? 1007 : i));
    }
    MT_CHECK(pm.n == N - (N + 2) / 3);
    mt__ptrmap_deinit(&pm);
    MT_CHECK(pm.cap == 0 && pm.n == 0 && !mt__ptrmap_get(&pm, &objs[1], NULL));

    mt__strmap sm = {0};
    char names[N][16], probe[16];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "key%d", i);
        MT_CHECK_OK(mt__strmap_put(&sm, names[i], 10 * i));
    }
    MT_CHECK(sm.n == N);
    for (int i = 0; i < N; i++) {
        snprintf(probe, sizeof probe, "key%d", i); /* another copy of the text */
        MT_CHECK(mt__strmap_get(&sm, probe, &v) && v == 10 * i);
    }
    MT_CHECK_OK(mt__strmap_put(&sm, "key5", -5));
    MT_CHECK(sm.n == N && mt__strmap_get(&sm, "key5", &v) && v == -5);
    MT_CHECK(!mt__strmap_get(&sm, "key", NULL) && !mt__strmap_get(&sm, "", NULL));
    mt__strmap_deinit(&sm);
}
