/* Which strings of an Arrow string array are JSON objects: the export's payload check in C.
 *
 * objects(data, offsets, validity, offset, length) -> bytes of `length` (1 or 0 per row): 1 where
 * the row is null, or starts with '{' and is one JSON object that orjson.loads accepts, followed
 * only by JSON whitespace. The buffers are the array's own (Arrow's `string` type: int32 offsets),
 * read in place with the GIL released, so the reader thread keeps decoding meanwhile.
 *
 * The reference is `export._json_objects_python` (orjson); the tests compare the two on edge cases
 * and on mutated documents. orjson's rules kept here beyond RFC 8259's grammar:
 * - nesting deeper than 1024 arrays and objects is refused;
 * - a number that is infinite as a double (1e400, a 400-digit integer) is refused; bigger
 *   integers than 64 bits are accepted (orjson gives a float);
 * - a \u escape of a surrogate must be a high one followed by an escaped low one;
 * - a byte-order mark is not whitespace.
 * The text itself is valid UTF-8 (Arrow strings from PostgreSQL text), so bytes of 0x80 and above
 * are taken as they are; bytes below 0x20 in a string are refused, as orjson does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 1024

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

static int value(Cursor *c, int depth);

static void skip_ws(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

static int hex4(Cursor *c, unsigned *out) {
    unsigned u = 0;
    if (c->end - c->p < 4) return 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = *c->p++;
        u <<= 4;
        if (ch >= '0' && ch <= '9') u |= ch - '0';
        else if (ch >= 'a' && ch <= 'f') u |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') u |= ch - 'A' + 10;
        else return 0;
    }
    *out = u;
    return 1;
}

static int string(Cursor *c) { /* at the opening quote */
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = *c->p++;
        if (ch == '"') return 1;
        if (ch < 0x20) return 0;
        if (ch != '\\') continue;
        if (c->p >= c->end) return 0;
        ch = *c->p++;
        switch (ch) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            break;
        case 'u': {
            unsigned u, low;
            if (!hex4(c, &u)) return 0;
            if (u >= 0xDC00 && u <= 0xDFFF) return 0; /* a low surrogate first */
            if (u >= 0xD800 && u <= 0xDBFF) {          /* a high one: an escaped low one must follow */
                if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u') return 0;
                c->p += 2;
                if (!hex4(c, &low) || low < 0xDC00 || low > 0xDFFF) return 0;
            }
            break;
        }
        default:
            return 0;
        }
    }
    return 0;
}

/* A number of the grammar's form is refused only where its double is infinite. Its magnitude is
 * below 10^(e + 1), e the decimal exponent of its first significant digit: finite for e < 308,
 * infinite for e > 308 (DBL_MAX is 1.8e308); for e == 308 the C library decides (strtod on the
 * number's text, which has no locale-dependent character but the '.', replaced here by the
 * locale's own). */
static int finite_number(const unsigned char *start, const unsigned char *end) {
    const unsigned char *p = start;
    long digits_before_point = 0, leading_zeros_after_point = 0;
    int significant = 0;
    long exponent = 0;
    if (*p == '-') p++;
    while (p < end && is_digit(*p)) {
        if (*p != '0' || significant) { significant = 1; digits_before_point++; }
        p++;
    }
    if (p < end && *p == '.') {
        p++;
        while (p < end && is_digit(*p)) {
            if (!significant) {
                if (*p == '0') leading_zeros_after_point++;
                else significant = 1;
            }
            p++;
        }
    }
    if (!significant) return 1; /* zero */
    if (p < end && (*p == 'e' || *p == 'E')) {
        int negative = 0;
        p++;
        if (*p == '+' || *p == '-') negative = *p++ == '-';
        while (p < end && is_digit(*p)) {
            if (exponent < 100000) exponent = exponent * 10 + (*p - '0');
            p++;
        }
        if (negative) exponent = -exponent;
    }
    long e = (digits_before_point ? digits_before_point - 1 : -(leading_zeros_after_point + 1)) + exponent;
    if (e < 308) return 1;
    if (e > 308) return 0;
    size_t n = (size_t)(end - start);
    char *text = malloc(n + 1);
    if (text == NULL) return 0;
    memcpy(text, start, n);
    text[n] = '\0';
    char *point = memchr(text, '.', n);
    if (point != NULL) *point = *localeconv()->decimal_point;
    double d = strtod(text, NULL);
    free(text);
    return !isinf(d);
}

static int number(Cursor *c) {
    const unsigned char *start = c->p;
    int simple = 1;
    if (*c->p == '-') c->p++;
    if (c->p >= c->end) return 0;
    if (*c->p == '0') c->p++;
    else if (*c->p >= '1' && *c->p <= '9') {
        while (c->p < c->end && is_digit(*c->p)) c->p++;
    } else return 0;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (c->p >= c->end || !is_digit(*c->p)) return 0;
        while (c->p < c->end && is_digit(*c->p)) c->p++;
        simple = 0;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        if (c->p >= c->end || !is_digit(*c->p)) return 0;
        while (c->p < c->end && is_digit(*c->p)) c->p++;
        simple = 0;
    }
    if (simple && c->p - start <= 20) return 1; /* an integer of 20 characters at most: finite */
    return finite_number(start, c->p);
}

static int literal(Cursor *c, const char *word, size_t n) {
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
    c->p += n;
    return 1;
}

static int array(Cursor *c, int depth) { /* at '[' */
    if (depth > MAX_DEPTH) return 0;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') { c->p++; return 1; }
    for (;;) {
        if (!value(c, depth)) return 0;
        skip_ws(c);
        if (c->p >= c->end) return 0;
        if (*c->p == ']') { c->p++; return 1; }
        if (*c->p != ',') return 0;
        c->p++;
        skip_ws(c);
    }
}

static int object(Cursor *c, int depth) { /* at '{' */
    if (depth > MAX_DEPTH) return 0;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') { c->p++; return 1; }
    for (;;) {
        if (c->p >= c->end || *c->p != '"' || !string(c)) return 0;
        skip_ws(c);
        if (c->p >= c->end || *c->p != ':') return 0;
        c->p++;
        skip_ws(c);
        if (!value(c, depth)) return 0;
        skip_ws(c);
        if (c->p >= c->end) return 0;
        if (*c->p == '}') { c->p++; return 1; }
        if (*c->p != ',') return 0;
        c->p++;
        skip_ws(c);
    }
}

static int value(Cursor *c, int depth) {
    if (c->p >= c->end) return 0;
    switch (*c->p) {
    case '{': return object(c, depth + 1);
    case '[': return array(c, depth + 1);
    case '"': return string(c);
    case 't': return literal(c, "true", 4);
    case 'f': return literal(c, "false", 5);
    case 'n': return literal(c, "null", 4);
    default: return (*c->p == '-' || is_digit(*c->p)) ? number(c) : 0;
    }
}

static int json_object(const unsigned char *text, size_t n) {
    Cursor c = {text, text + n};
    if (n == 0 || text[0] != '{' || !object(&c, 1)) return 0;
    skip_ws(&c);
    return c.p == c.end;
}

static PyObject *objects(PyObject *self, PyObject *args) {
    Py_buffer data, offsets, validity = {0};
    PyObject *validity_obj;
    Py_ssize_t offset, length;
    if (!PyArg_ParseTuple(args, "y*y*Onn", &data, &offsets, &validity_obj, &offset, &length)) return NULL;
    PyObject *result = NULL;
    int have_validity = validity_obj != Py_None;
    if (have_validity && PyObject_GetBuffer(validity_obj, &validity, PyBUF_SIMPLE) < 0) goto done;
    if (offset < 0 || length < 0 || offsets.len < (Py_ssize_t)((offset + length + 1) * sizeof(int32_t)) ||
        (have_validity && validity.len * 8 < offset + length)) {
        PyErr_SetString(PyExc_ValueError, "offset and length do not fit the buffers");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, length);
    if (result == NULL) goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    const int32_t *offs = (const int32_t *)offsets.buf + offset;
    const unsigned char *bits = have_validity ? validity.buf : NULL;
    const unsigned char *text = data.buf;
    int bad_offsets = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_ssize_t bit = offset + i;
        if (bits != NULL && !(bits[bit >> 3] & (1u << (bit & 7)))) { out[i] = 1; continue; }
        int32_t lo = offs[i], hi = offs[i + 1];
        if (lo < 0 || hi < lo || hi > data.len) { bad_offsets = 1; break; }
        out[i] = (unsigned char)json_object(text + lo, (size_t)(hi - lo));
    }
    Py_END_ALLOW_THREADS
    if (bad_offsets) {
        Py_CLEAR(result);
        PyErr_SetString(PyExc_ValueError, "string offsets point outside the data buffer");
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    if (have_validity && validity.obj != NULL) PyBuffer_Release(&validity);
    return result;
}

static PyMethodDef methods[] = {
    {"objects", objects, METH_VARARGS,
     "objects(data, offsets, validity, offset, length) -> bytes: 1 per null or JSON-object row, else 0."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_json_check",
                                    "The export's payload check (JSON objects) over Arrow buffers.", -1, methods};

PyMODINIT_FUNC PyInit__json_check(void) { return PyModule_Create(&module); }
