/* test_chat_format.c - the chat formats of bitnet chat and the TUI: the choice from a chat
 * template (2B4T's, LLaMA 3's, ChatML's, none or an unknown one -> plain), the exact text
 * of a two-turn conversation with a system prompt in each format, and the pieces of a turn
 * (what the TUI tokenizes one by one) joining to the same text.
 *
 * common/chat_format.c comes from libbitnetcommon.a. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/chat_format.h"

#include <stdlib.h>
#include <string.h>

#include <stdio.h>

/* The 2B4T template as tests/cli/test_chat.sh writes it into a model. */
#define TMPL_2B4T                                                                                  \
    "{% for m in messages %}{{ 'User: ' + m['content'] + '<|eot_id|>Assistant: ' }}{% endfor %}"
/* The role capitalized instead of "User: " written out, as tests/convert/make_fixtures.py
 * spells it (and, as reported, microsoft/bitnet-b1.58-2B-4T's tokenizer_config.json). */
#define TMPL_2B4T_CAP                                                                              \
    "{% for message in messages %}{% set content = message['role'] | capitalize + ': ' + "         \
    "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = "        \
    "bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"     \
    "{{ 'Assistant: ' }}{% endif %}"
#define TMPL_LLAMA3                                                                                \
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "        \
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "                       \
    "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = "        \
    "bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"     \
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
#define TMPL_CHATML                                                                                \
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "                   \
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"        \
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"

static void test_format_for(void **state)
{
    (void)state;
    static const struct {
        const char *tmpl, *name, *why;
        int line_reply;
    } cases[] = {
            {TMPL_2B4T, "2b4t", "the model's chat template", 0},
            {TMPL_2B4T_CAP, "2b4t", "the model's chat template", 0},
            /* capitalized roles without <|eot_id|> are some other format */
            {"{{ m['role'] | capitalize + ': ' }}{{ 'Assistant: ' }}", "plain",
             "the model's chat template is not one we know", 1},
            {TMPL_LLAMA3, "llama3", "the model's chat template", 0},
            {TMPL_CHATML, "chatml", "the model's chat template", 0},
            {NULL, "plain", "no chat template", 1},
            {"", "plain", "no chat template", 1},
            {"{{ messages }}", "plain", "the model's chat template is not one we know", 1},
            /* "User: " alone, or "Assistant: " alone, is not 2B4T's */
            {"{{ 'User: ' + m }}", "plain", "the model's chat template is not one we know", 1},
            {"{{ 'Assistant: ' }}", "plain", "the model's chat template is not one we know", 1},
            /* the header tokens win over the words */
            {"User: Assistant: <|start_header_id|>", "llama3", "the model's chat template", 0},
            {"User: Assistant: <|im_start|>", "chatml", "the model's chat template", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = NULL;
        const bn_chat_format *f = bn_chat_format_for(cases[i].tmpl, &why);
        assert_non_null(f);
        assert_string_equal(f->name, cases[i].name);
        assert_string_equal(why, cases[i].why);
        assert_int_equal(f->line_reply, cases[i].line_reply);
        assert_ptr_equal(bn_chat_format_for(cases[i].tmpl, NULL), f); /* why may be NULL */
    }
}

/* Two turns with a system prompt: the first reply ended without its own end (at -n tokens,
 * say), so the second turn opens by closing it. */
static void test_two_turns(void **state)
{
    (void)state;
    static const struct {
        const char *tmpl, *text;
    } cases[] = {
            {NULL, "Be kind.\nUser: Hi\nAssistant:"
                   "Hello."
                   "\nUser: Bye\nAssistant:"},
            {TMPL_2B4T, "System: Be kind.<|eot_id|>User: Hi<|eot_id|>Assistant: "
                        "Hello."
                        "<|eot_id|>User: Bye<|eot_id|>Assistant: "},
            {TMPL_LLAMA3, "<|start_header_id|>system<|end_header_id|>\n\nBe kind.<|eot_id|>"
                          "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n"
                          "Hello."
                          "<|eot_id|>"
                          "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n"},
            {TMPL_CHATML, "<|im_start|>system\nBe kind.<|im_end|>\n"
                          "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
                          "Hello."
                          "<|im_end|>\n"
                          "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bn_chat_format *f = bn_chat_format_for(cases[i].tmpl, NULL);
        size_t n1, n2;
        char *t1 = bn_chat_turn_text(f, 0, "Be kind.", "Hi", &n1);
        char *t2 = bn_chat_turn_text(f, 1, NULL, "Bye", &n2);
        assert_non_null(t1);
        assert_non_null(t2);
        assert_int_equal(n1, strlen(t1));
        assert_int_equal(n2, strlen(t2));
        char conv[1024];
        snprintf(conv, sizeof conv, "%s%s%s", t1, "Hello.", t2);
        assert_string_equal(conv, cases[i].text);
        free(t1);
        free(t2);
    }
}

/* A reply that ended by itself (an end token, a line break) is not closed again; the
 * pieces join to the text, the user's own texts marked. */
static void test_pieces(void **state)
{
    (void)state;
    const char *tmpls[] = {NULL, TMPL_2B4T, TMPL_LLAMA3, TMPL_CHATML};
    for (size_t i = 0; i < sizeof tmpls / sizeof tmpls[0]; i++) {
        const bn_chat_format *f = bn_chat_format_for(tmpls[i], NULL);
        size_t len;
        char *t = bn_chat_turn_text(f, 0, NULL, "Bye", &len);
        char want[256];
        snprintf(want, sizeof want, "%sBye%s", f->user_pre, f->user_post);
        assert_string_equal(t, want);
        free(t);

        for (int close = 0; close <= 1; close++) {
            for (int sys = 0; sys <= 1; sys++) {
                bn_chat_piece p[BN_CHAT_TURN_MAX_PIECES];
                const char *system = sys ? "Be kind." : NULL;
                const int n = bn_chat_turn_pieces(f, close, system, "Hi", p);
                assert_int_equal(n, 3 + close + 3 * sys);
                char joined[256] = "";
                int own = 0;
                for (int k = 0; k < n; k++) {
                    strncat(joined, p[k].text, sizeof joined - strlen(joined) - 1);
                    own += p[k].own;
                    if (p[k].own) assert_true(p[k].text == system || !strcmp(p[k].text, "Hi"));
                }
                assert_int_equal(own, 1 + sys);
                assert_string_equal(p[0].text, close ? f->reply_end
                                               : sys ? f->sys_pre
                                                     : f->user_pre);
                t = bn_chat_turn_text(f, close, system, "Hi", &len);
                assert_string_equal(t, joined);
                assert_int_equal(len, strlen(joined));
                free(t);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_format_for),
            cmocka_unit_test(test_two_turns),
            cmocka_unit_test(test_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
