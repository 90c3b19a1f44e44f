/*
 * Minimal printf: enough for test output, no floating point (this file is
 * built with -mgeneral-regs-only because the ring-0 handler uses it too).
 */
#include "kiln_guest.h"

struct sink {
    char *buf;          /* NULL: write to the serial port */
    size_t size;
    size_t len;         /* characters produced so far (even if truncated) */
};

static void emit(struct sink *s, char c)
{
    if (!s->buf)
        putchar(c);
    else if (s->len + 1 < s->size)
        s->buf[s->len] = c;
    s->len++;
}

static void emit_padded(struct sink *s, const char *str, size_t n, int width, bool left, char pad)
{
    int fill = width > (int)n ? width - (int)n : 0;
    if (!left && pad == '0' && n > 0 && *str == '-') {  /* zero padding goes after the sign */
        emit(s, *str++);
        n--;
    }
    if (!left)
        while (fill-- > 0)
            emit(s, pad);
    while (n--)
        emit(s, *str++);
    if (left)
        while (fill-- > 0)
            emit(s, ' ');
}

static size_t format_u64(char *out, uint64_t v, unsigned base, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static int format(struct sink *s, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(s, *fmt);
            continue;
        }
        fmt++;
        bool left = false;
        char pad = ' ';
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '0')
                pad = '0';
            else
                break;
        }
        int width = 0;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        int longs = 0;
        while (*fmt == 'l' || *fmt == 'z' || *fmt == 'h') {
            if (*fmt != 'h')
                longs++;
            fmt++;
        }

        char num[24];
        size_t n;
        uint64_t u;
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            u = v < 0 ? -(uint64_t)v : (uint64_t)v;
            n = 0;
            if (v < 0)
                num[n++] = '-';
            n += format_u64(num + n, u, 10, false);
            emit_padded(s, num, n, width, left, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
            u = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            n = format_u64(num, u, *fmt == 'u' ? 10 : 16, *fmt == 'X');
            emit_padded(s, num, n, width, left, pad);
            break;
        case 'p':
            num[0] = '0';
            num[1] = 'x';
            n = 2 + format_u64(num + 2, (uintptr_t)va_arg(ap, void *), 16, false);
            emit_padded(s, num, n, width, left, pad);
            break;
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            emit_padded(s, str, strlen(str), width, left, ' ');
            break;
        }
        case 'c':
            num[0] = (char)va_arg(ap, int);
            emit_padded(s, num, 1, width, left, ' ');
            break;
        case '%':
            emit(s, '%');
            break;
        case '\0':
            return (int)s->len;
        default:                            /* unknown: print it verbatim */
            emit(s, '%');
            emit(s, *fmt);
            break;
        }
    }
    return (int)s->len;
}

int vprintf(const char *fmt, va_list ap)
{
    struct sink s = { 0 };
    return format(&s, fmt, ap);
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    struct sink s = { buf, size, 0 };
    va_list ap;
    va_start(ap, fmt);
    format(&s, fmt, ap);
    va_end(ap);
    if (size)
        buf[s.len < size ? s.len : size - 1] = '\0';
    return (int)s.len;
}
