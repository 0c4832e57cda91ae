/*
 * config: the YAML document under the sections. Syntax errors, the top level, empty files,
 * duplicate keys, anchors and merge keys, the alias budget ("billion laughs"), the nesting limit
 * and a second document.
 */
#include "config_load.h"

/* ---- YAML level ---- */

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x\n"
                               "router_settings:\n"
                               "  timeout: 30\n");
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_error(4, "YAML syntax error: did not find expected ',' or '}'");

    c = load("a: b: c\n");
    assert_null(c);
    assert_error(1, "YAML syntax error: mapping values are not allowed in this context");

    c = load("model_list:\n  - model_name: \"\xff\xfe\"\n");
    assert_null(c);
    assert_error(2, "the file is not valid text");
}

static void test_top_level_not_mapping(void **state)
{
    (void)state;
    struct sg_config *c = load("- model_name: a\n");
    assert_null(c);
    assert_error(1, "the top level must be a mapping of sections (model_list:, router_settings:, "
                    "...), got a list");
    c = load("just text\n");
    assert_null(c);
    assert_error(1, "got \"just text\"");
}

static void test_empty_file(void **state)
{
    (void)state;
    const char *empties[] = {"", "# only a comment\n", "---\n", "~\n", "\n\n   \n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        struct sg_config *c = load(empties[i]);
        assert_null(c);
        assert_int_equal(sg_diags_errors(&D), 1);
        assert_error(0, "the config is empty");
    }
}

/* PyYAML, and so LiteLLM, keeps the last of duplicate keys: a LiteLLM config that has one
 * loads as LiteLLM reads it, and each value that is ignored gets a warning on its line. */
static void test_duplicate_keys(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params:\n"
                               "      model: openai/cheap\n"
                               "      api_key: k\n"
                               "      model: openai/expensive\n"
                               "router_settings: { timeout: 1 }\n"
                               "router_settings: { timeout: 2, num_retries: 1, num_retries: 4 }\n"
                               "router_settings: { timeout: 3 }\n");
    assert_loaded(c);
    assert_string_equal(c->deployments[0].model, "openai/expensive");
    assert_int_equal(c->router.timeout_ms, 3000);
    assert_int_equal(c->router.num_retries, 1); /* the second router_settings is dropped whole */
    assert_warning(4, "duplicate key 'model': this value is ignored, the one at line 6 is used (as "
                      "PyYAML, and so LiteLLM, reads it); remove one of them");
    assert_warning(7, "duplicate key 'router_settings': this value is ignored, the one at line 9 "
                      "is used");
    assert_warning(8, "duplicate key 'num_retries': this value is ignored, the one at line 8");
    assert_warning(8, "duplicate key 'router_settings': this value is ignored, the one at line 9");
    sg_config_unref(c);
}

static void test_anchors_and_merge(void **state)
{
    (void)state;
    struct sg_config *c = load("x-defaults: &defaults\n"
                               "  api_key: os.environ/PROVIDER_A_KEY\n"
                               "  timeout: 30\n"
                               "  stream_timeout: 2\n"
                               "model_list:\n"
                               "  - model_name: &alias app/chat\n"
                               "    litellm_params:\n"
                               "      <<: *defaults\n"
                               "      model: openai/gpt-4o-mini\n"
                               "      timeout: 10\n"
                               "  - model_name: *alias\n"
                               "    litellm_params: { <<: [*defaults], model: openai/gpt-4o }\n"
                               "router_settings:\n"
                               "  fallbacks: [ { *alias : [*alias] } ]\n");
    assert_loaded(c); /* the alias resolves in the fallbacks too: a fallback to itself */
    assert_warning(14, "'app/chat' falls back to itself: skipped");
    assert_warning(1, "unknown key 'x-defaults' at the top level");
    assert_int_equal(c->router.n_fallbacks, 0);
    sg_config_unref(c);

    c = load("x-defaults: &defaults\n"
             "  api_key: os.environ/PROVIDER_A_KEY\n"
             "  timeout: 30\n"
             "model_list:\n"
             "  - model_name: &alias app/chat\n"
             "    litellm_params:\n"
             "      <<: *defaults\n"
             "      model: openai/gpt-4o-mini\n"
             "      timeout: 10\n"
             "  - model_name: *alias\n"
             "    litellm_params: { <<: [*defaults], model: openai/gpt-4o }\n");
    assert_loaded(c);
    assert_int_equal(c->n_groups, 1);
    assert_int_equal(c->deployments[0].timeout_ms, 10000); /* explicit key beats the merge */
    assert_int_equal(c->deployments[1].timeout_ms, 30000);
    assert_string_equal(c->deployments[1].api_key, "sk-a");
    assert_string_equal(c->deployments[1].provider_model, "gpt-4o");
    sg_config_unref(c);
}

static void test_billion_laughs(void **state)
{
    (void)state;
    struct sg_config *c = load("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                               "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                               "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                               "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                               "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                               "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                               "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                               "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n");
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_error(-1, "aliases expand to more than 50000 nodes");
}

static void test_bad_aliases(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "server: { host: *nowhere }\n");
    assert_null(c);
    assert_error(4, "alias *nowhere has no anchor &nowhere defined before it");

    c = load("a: &loop\n"
             "  b: *loop\n");
    assert_null(c);
    assert_error(2, "alias *loop refers to a node that contains it");
}

static void test_depth_limit(void **state)
{
    (void)state;
    char y[1024];
    size_t o = 0;
    o += (size_t)snprintf(y + o, sizeof y - o, "a: ");
    for (int i = 0; i < 100; i++)
        y[o++] = '[';
    for (int i = 0; i < 100; i++)
        y[o++] = ']';
    y[o++] = '\n';
    y[o] = '\0';
    struct sg_config *c = load(y);
    assert_null(c);
    assert_error(1, "nesting is deeper than 64 levels");
}

static void test_multiple_documents(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "---\nserver: { port: 1 }\n");
    assert_null(c);
    assert_error(4, "a second YAML document starts here");
}

int main(void)
{
    sg_diags_init(&D);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_yaml_syntax_error, teardown),
        cmocka_unit_test_teardown(test_top_level_not_mapping, teardown),
        cmocka_unit_test_teardown(test_empty_file, teardown),
        cmocka_unit_test_teardown(test_duplicate_keys, teardown),
        cmocka_unit_test_teardown(test_anchors_and_merge, teardown),
        cmocka_unit_test_teardown(test_billion_laughs, teardown),
        cmocka_unit_test_teardown(test_bad_aliases, teardown),
        cmocka_unit_test_teardown(test_depth_limit, teardown),
        cmocka_unit_test_teardown(test_multiple_documents, teardown),
    };
    return cmocka_run_group_tests_name("config_yaml", tests, NULL, NULL);
}
