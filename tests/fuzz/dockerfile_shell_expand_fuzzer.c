/*
 * dockerfile_shell_expand_fuzzer.c: the shell lexer on arbitrary words. The first byte picks the
 * lexer options (escape token, raw quotes/escapes, skip quotes, skip unset); the rest, up to the
 * first NUL, is the word, expanded against a small fixed environment.
 */
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/map.h"
#include "frontends/dockerfile/shell.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const env_list[] = {"A=a b", "PATHV=/usr/bin:/bin", "EMPTY=", "G=*?[x]"};
    kiln_shlex lex;
    kiln_shlex_result r;
    kiln_error *err = NULL;
    kiln_map env;
    char *word;

    if (size == 0)
        return 0;
    kiln_shlex_init(&lex, (data[0] & 1) ? '`' : '\\');
    lex.raw_quotes = data[0] & 2;
    lex.raw_escapes = data[0] & 4;
    lex.skip_process_quotes = data[0] & 8;
    lex.skip_unset_env = data[0] & 16;
    word = xstrndup((const char *)data + 1, size - 1);
    kiln_shlex_env_build(&env, env_list, sizeof(env_list) / sizeof(env_list[0]));
    if (kiln_shlex_process(&r, &lex, word, kiln_shlex_map_lookup, &env, &err) == 0)
        kiln_shlex_result_dispose(&r);
    else
        kiln_error_free(&err);
    kiln_map_dispose(&env, free);
    free(word);
    return 0;
}
