/*
 * Command-line parsing. QEMU passes "PATH ARGS", Kiln passes "ARGS": only
 * key=value tokens count, and a key must start its token, so a kernel path
 * (which may contain digits or even '=') can never be mistaken for a value.
 */
#include "kiln_guest.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Locate key's value (first occurrence); returns it and its length, or NULL. */
static const char *find_value(const char *cmdline, const char *key, size_t *len)
{
    size_t klen = strlen(key);
    const char *p = cmdline;

    while (*p) {
        while (is_space(*p))
            p++;
        const char *tok = p;
        const char *eq = NULL;
        while (*p && !is_space(*p)) {
            if (*p == '=' && !eq) {
                eq = p;
                if (p[1] == '"') {          /* quoted value may contain spaces */
                    p += 2;
                    while (*p && *p != '"')
                        p++;
                    if (*p)
                        p++;
                    continue;
                }
            }
            p++;
        }
        if (eq && (size_t)(eq - tok) == klen && memcmp(tok, key, klen) == 0) {
            const char *v = eq + 1, *end = p;
            if (*v == '"') {
                v++;
                if (end > v && end[-1] == '"')
                    end--;
            }
            *len = (size_t)(end - v);
            return v;
        }
    }
    return NULL;
}

bool arg_get(const char *cmdline, const char *key, char *buf, size_t size)
{
    size_t len;
    const char *v = find_value(cmdline, key, &len);
    if (!v)
        return false;
    if (size) {
        if (len >= size)
            len = size - 1;
        memcpy(buf, v, len);
        buf[len] = '\0';
    }
    return true;
}

const char *arg_str(const char *cmdline, const char *key)
{
    static char pool[8][256];
    static unsigned next;
    char *buf = pool[next++ % 8];
    return arg_get(cmdline, key, buf, sizeof(pool[0])) ? buf : NULL;
}

uint64_t arg_u64(const char *cmdline, const char *key, uint64_t def)
{
    size_t len;
    const char *v = find_value(cmdline, key, &len);
    if (!v || len == 0)
        return def;

    unsigned base = 10;
    if (len > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
        base = 16;
        v += 2;
        len -= 2;
    }
    uint64_t r = 0;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return def;                     /* malformed: fall back rather than half-parse */
        r = r * base + d;
    }
    return r;
}
