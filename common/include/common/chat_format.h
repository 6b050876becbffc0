/*
 * chat_format.h - how a conversation is laid out for a model: the chat formats of
 * `bitnet chat` (app/cli/cmd_chat.c) and of the TUI's chat screen (ui/engine.c), so that a
 * conversation in one is the same conversation in the other.
 *
 * The formats, chosen from the model's tokenizer.chat_template:
 *   2b4t    (microsoft/bitnet-b1.58-2B-4T; a template with "User: " and "Assistant: ")
 *           [System: S<|eot_id|>]User: M<|eot_id|>Assistant: R<|eot_id|>
 *   llama3  (a template with <|start_header_id|>)
 *           [<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>]
 *           <|start_header_id|>user<|end_header_id|>\n\nM<|eot_id|>
 *           <|start_header_id|>assistant<|end_header_id|>\n\nR<|eot_id|>
 *   chatml  (a template with <|im_start|>)
 *           [<|im_start|>system\nS<|im_end|>\n]<|im_start|>user\nM<|im_end|>\n
 *           <|im_start|>assistant\nR<|im_end|>\n
 *   plain   (no template, or one not recognised): [S\n]User: M\nAssistant: R\n, where a
 *           reply also ends at its first line break
 *
 * Usage:
 *
 *     const char *why;
 *     const bn_chat_format *f = bn_chat_format_for(bn_tokenizer_chat_template(tok), &why);
 *     size_t len;
 *     char *t = bn_chat_turn_text(f, 0, "Be kind.", "hello", &len);   // the first turn
 *     ...  tokenize t (special tokens parsed), evaluate, generate the reply  ...
 *     free(t);
 *     t = bn_chat_turn_text(f, !reply_ended_by_itself, NULL, "and then?", &len);
 *
 * or, to tokenize the format's texts and the user's texts differently, the same turn as
 * pieces (bn_chat_turn_pieces), whose concatenation is bn_chat_turn_text's text.
 *
 * The formats are static: nothing here is freed but the text of bn_chat_turn_text (free).
 * Pieces point into the format and into the caller's strings.
 */
#ifndef BITNET_COMMON_CHAT_FORMAT_H
#define BITNET_COMMON_CHAT_FORMAT_H

#include <stddef.h>

typedef struct bn_chat_format {
    const char *name;                 /* "plain", "2b4t", "llama3", "chatml" */
    const char *sys_pre, *sys_post;   /* around the system prompt */
    const char *user_pre, *user_post; /* around a message; user_post opens the reply */
    const char *reply_end;            /* closes a reply that ended without its own end */
    int line_reply;                   /* a reply ends at its first line break */
} bn_chat_format;

/* The format for a chat template (NULL or "": none); never NULL: plain when the template is
 * not one we know. *why (why may be NULL) says how it was chosen, as a phrase. */
const bn_chat_format *bn_chat_format_for(const char *tmpl, const char **why);

/* A piece of a turn: the format's text (own 0) or the user's (own 1: a system prompt or a
 * message, which a caller may tokenize without parsing special tokens). */
typedef struct bn_chat_piece {
    const char *text;
    int own;
} bn_chat_piece;

#define BN_CHAT_TURN_MAX_PIECES 7

/* The pieces of a turn, in order, into out; returns how many. A turn is: reply_end when
 * close_reply (the previous reply ended without its own end), the system prompt in sys_pre
 * and sys_post when system is not NULL (the first turn of a conversation), the message in
 * user_pre and user_post. Pieces may be empty (""). */
int bn_chat_turn_pieces(const bn_chat_format *f, int close_reply, const char *system,
                        const char *msg, bn_chat_piece out[BN_CHAT_TURN_MAX_PIECES]);

/* The text of a turn (its pieces joined), malloc'ed and NUL-terminated, its length in *len;
 * NULL when out of memory. */
char *bn_chat_turn_text(const bn_chat_format *f, int close_reply, const char *system,
                        const char *msg, size_t *len);

#endif
