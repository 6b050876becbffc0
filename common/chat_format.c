/* chat_format.c - the chat formats and the text of a turn; see chat_format.h. */
#include "common/chat_format.h"

#include <stdlib.h>
#include <string.h>

static const bn_chat_format g_formats[] = {
        {"plain", "", "\n", "User: ", "\nAssistant:", "\n", 1},
        {"2b4t", "System: ", "<|eot_id|>", "User: ", "<|eot_id|>Assistant: ", "<|eot_id|>", 0},
        {"llama3", "<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>",
         "<|start_header_id|>user<|end_header_id|>\n\n",
         "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", 0},
        {"chatml", "<|im_start|>system\n", "<|im_end|>\n", "<|im_start|>user\n",
         "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>\n", 0},
};

const bn_chat_format *bn_chat_format_for(const char *tmpl, const char **why)
{
    const char *w = "the model's chat template";
    const bn_chat_format *f = &g_formats[0];
    if (tmpl && strstr(tmpl, "<|start_header_id|>"))
        f = &g_formats[2];
    else if (tmpl && strstr(tmpl, "<|im_start|>"))
        f = &g_formats[3];
    else if (tmpl && strstr(tmpl, "Assistant: ") &&
             (strstr(tmpl, "User: ") || (strstr(tmpl, "capitalize") && strstr(tmpl, "<|eot_id|>"))))
        /* 2B4T: "User: " written out, or the role capitalized before ': ' with <|eot_id|>
         * (our convert fixture's template; 2B4T's published tokenizer_config.json is
         * reported to build it that way, which could not be checked offline) */
        f = &g_formats[1];
    else
        w = tmpl && *tmpl ? "the model's chat template is not one we know" : "no chat template";
    if (why) *why = w;
    return f;
}

int bn_chat_turn_pieces(const bn_chat_format *f, int close_reply, const char *system,
                        const char *msg, bn_chat_piece out[BN_CHAT_TURN_MAX_PIECES])
{
    int n = 0;
    if (close_reply) out[n++] = (bn_chat_piece){f->reply_end, 0};
    if (system) {
        out[n++] = (bn_chat_piece){f->sys_pre, 0};
        out[n++] = (bn_chat_piece){system, 1};
        out[n++] = (bn_chat_piece){f->sys_post, 0};
    }
    out[n++] = (bn_chat_piece){f->user_pre, 0};
    out[n++] = (bn_chat_piece){msg, 1};
    out[n++] = (bn_chat_piece){f->user_post, 0};
    return n;
}

char *bn_chat_turn_text(const bn_chat_format *f, int close_reply, const char *system,
                        const char *msg, size_t *len)
{
    bn_chat_piece p[BN_CHAT_TURN_MAX_PIECES];
    const int n = bn_chat_turn_pieces(f, close_reply, system, msg, p);
    size_t lens[BN_CHAT_TURN_MAX_PIECES], total = 0;
    for (int i = 0; i < n; i++) {
        lens[i] = strlen(p[i].text);
        if (lens[i] > (size_t)-1 - 1 - total) return NULL;
        total += lens[i];
    }
    char *t = malloc(total + 1);
    if (!t) return NULL;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        memcpy(t + at, p[i].text, lens[i]);
        at += lens[i];
    }
    t[at] = '\0';
    *len = at;
    return t;
}
