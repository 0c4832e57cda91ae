/*
 * provider: the input-token estimator measured on tests/data/token_corpus.jsonl against the
 * reference counts in tests/data/token_counts.json (published tokenizers, run offline by
 * tests/data/tokref/count.mjs; docs/pricing.md). Prints the error table docs/pricing.md quotes
 * and fails when the estimator stops being conservative or grows too loose.
 *
 * Usage: test_provider_tokens DATA_DIR
 */
#include "provider/provider.h"

#include <json-c/json.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static const char *data_dir = "tests/data";

static char *slurp(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", data_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

struct stats {
    const char *name;
    double sum_rel, worst_under, worst_over;
    size_t n, under;
    char worst_under_id[64], worst_over_id[64];
};

static void add(struct stats *s, const char *id, int64_t est, int64_t ref)
{
    double rel = ((double)est - (double)ref) / (double)ref;
    s->sum_rel += rel;
    s->n++;
    if (est < ref)
        s->under++;
    if (rel < s->worst_under) {
        s->worst_under = rel;
        snprintf(s->worst_under_id, sizeof s->worst_under_id, "%s", id);
    }
    if (rel > s->worst_over) {
        s->worst_over = rel;
        snprintf(s->worst_over_id, sizeof s->worst_over_id, "%s", id);
    }
}

static void test_corpus(void **state)
{
    (void)state;
    size_t clen, rlen;
    char *corpus = slurp("token_corpus.jsonl", &clen);
    char *refs_text = slurp("token_counts.json", &rlen);
    struct json_object *refs = json_tokener_parse(refs_text);
    assert_non_null(refs);
    struct stats st[3] = {{.name = "o200k_base"}, {.name = "cl100k_base"}, {.name = "claude"}};
    const char *keys[3] = {"o200k", "cl100k", "claude"};
    size_t items = 0;
    for (char *line = strtok(corpus, "\n"); line; line = strtok(NULL, "\n")) {
        struct json_object *it = json_tokener_parse(line), *id, *msgs, *ref;
        assert_non_null(it);
        assert_true(json_object_object_get_ex(it, "id", &id));
        assert_true(json_object_object_get_ex(it, "messages", &msgs));
        assert_true(json_object_object_get_ex(refs, json_object_get_string(id), &ref));
        /* The estimator sees what a client sends: a chat.completions body. */
        struct json_object *body = json_object_new_object();
        json_object_object_add(body, "model", json_object_new_string("m"));
        json_object_object_add(body, "messages", json_object_get(msgs));
        size_t blen;
        const char *b = json_object_to_json_string_length(body, JSON_C_TO_STRING_PLAIN, &blen);
        int64_t est = sg_tokens_estimate_request(b, blen);
        for (int k = 0; k < 3; k++) {
            struct json_object *v;
            assert_true(json_object_object_get_ex(ref, keys[k], &v));
            add(&st[k], json_object_get_string(id), est, json_object_get_int64(v));
        }
        if (getenv("SG_TOKENS_VERBOSE"))
            printf("%-16s est %6lld  o200k %6d  cl100k %6d  claude %6d\n",
                   json_object_get_string(id), (long long)est,
                   json_object_get_int(json_object_object_get(ref, "o200k")),
                   json_object_get_int(json_object_object_get(ref, "cl100k")),
                   json_object_get_int(json_object_object_get(ref, "claude")));
        json_object_put(body);
        json_object_put(it);
        items++;
    }
    assert_true(items >= 200);
    printf("%zu prompts; error = (estimate - reference) / reference\n", items);
    printf("| reference | mean error | under-estimates | worst under | worst over |\n");
    printf("|---|---|---|---|---|\n");
    for (int k = 0; k < 3; k++)
        printf("| %s | %+.1f%% | %zu of %zu | %+.1f%% (%s) | %+.1f%% (%s) |\n", st[k].name,
               100 * st[k].sum_rel / (double)st[k].n, st[k].under, st[k].n, 100 * st[k].worst_under,
               st[k].worst_under_id[0] ? st[k].worst_under_id : "-", 100 * st[k].worst_over,
               st[k].worst_over_id);
    /* Conservative against OpenAI's tokenizers: at most 2% of prompts under, never by 20%.
     * The Claude reference is Anthropic's older published tokenizer (Claude 3+ has none
     * public): looser bounds, and the documented weak spot is low-resource Latin-script
     * languages (Swahili, Indonesian). Not absurdly loose on average either. */
    for (int k = 0; k < 3; k++) {
        bool claude = k == 2;
        assert_true(st[k].under * 100 <= st[k].n * (claude ? 6 : 2));
        assert_true(st[k].worst_under > (claude ? -0.35 : -0.20));
        assert_true(st[k].sum_rel / (double)st[k].n < 0.65);
    }
    json_object_put(refs);
    free(corpus);
    free(refs_text);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        data_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
