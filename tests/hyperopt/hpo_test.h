/* Helpers shared by the hyperopt tests. */
#ifndef MT_HPO_TEST_H
#define MT_HPO_TEST_H

#include <string.h>

#include "mltrain/hyperopt.h"
#include "mt_test.h"

/* Loads YAML text as file `name` (for messages) without the environment and keeping unknown
 * ${VAR} references as they are. */
static inline mt_cfg_doc *hpo_load(const char *text, const char *name)
{
    mt_cfg_doc *d = NULL;
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    o.keep_unknown_vars = true;
    MT_CHECK_OK(mt_cfg_load_string(&d, text, strlen(text), name, &o));
    return d;
}

#endif
