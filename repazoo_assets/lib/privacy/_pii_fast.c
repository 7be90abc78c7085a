/* Compiled engine of the PII detector (repazoo_assets/lib/privacy/pii.py).
 *
 * It returns exactly what pii.py's pure-Python engine returns (a differential test checks it):
 * the four candidate scans of pii.py's RE2 patterns, reproduced as loops over a one-byte-per-
 * character buffer with the same leftmost-first semantics, then the judgement of the frequent
 * candidates (digit runs: phones, cards, SSNs, IPv4 in them; IPv4 addresses; plain e-mail
 * addresses) in C, then the merge of overlapping findings and the split per text.
 *
 * What stays in Python, called back with the same arguments pii.py would pass: the candidates of
 * the rare kinds (provider keys, bearer tokens, password assignments, spelled-out e-mails, IBANs,
 * IPv6), and any frequent candidate whose surroundings hold a non-ASCII character (Unicode word
 * and digit rules then apply, and pii.py is the one place that states them).
 *
 * Every loop is linear in the input: each scan resumes where its last candidate ended, and the
 * checks that could revisit a long run (hex runs for IPv6, digit runs) remember where that run
 * failed. docs/pii.md explains the design.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Kinds, in pii.PII_KINDS order. */
enum { K_EMAIL, K_PHONE, K_CARD, K_IP, K_IBAN, K_SSN, K_SECRET, N_KINDS };

/* --- configuration, set once by pii.py ------------------------------------------------------ */
static Py_UCS1 norm_table[0x10000]; /* non-ASCII character -> ASCII character it stands for, or 0 */
static unsigned char iban_cc[26][26]; /* an IBAN's length in that country, or 0 */
#define MAX_TLDS 64
static char tlds[MAX_TLDS][16];
static int tld_len[MAX_TLDS];
static int n_tlds;
#define MAX_NSN 128
static char nsn_key[MAX_NSN][4];
static int nsn_keylen[MAX_NSN], nsn_lo[MAX_NSN], nsn_hi[MAX_NSN];
static int n_nsn;
static int priority[N_KINDS];
static PyObject *kind_names[N_KINDS];
static char kind_upper[N_KINDS][24]; /* the kinds' names in capitals, as in "[EMAIL]" */
static int kind_len[N_KINDS];
static PyTypeObject *finding_type;
static PyObject *h_letters, *h_emails, *h_digits, *h_ipv4; /* pii.py's pass handlers */
static PyObject *separator;
static PyObject *placeholders[N_KINDS];
#define MAX_PROSE 256
static char prose[MAX_PROSE][24]; /* pii._NOT_A_LOCAL_PART */
static int prose_len[MAX_PROSE], n_prose;
static int configured; /* 0 until a configure() ran to its end, and while one runs */
/* The module is single-phase and its tables are process globals: only the interpreter that
 * configured it may use it (a subinterpreter gets an ImportError and pii.py falls back). */
static PyInterpreterState *owner;

/* --- per call ------------------------------------------------------------------------------- */
typedef struct {
    int kind;
    Py_ssize_t start, end;
} Fnd;

typedef struct {
    const unsigned char *d; /* one byte per character: ASCII as is, 0xFF for any other */
    Py_ssize_t n;
    int all_ascii;
    int mapped; /* some non-ASCII character was normalized */
    Py_UCS4 nmax; /* the largest character of the normalized text */
    Py_ssize_t *mpos, nmpos, capmpos; /* where the normalized characters are */
    PyObject *joined;     /* the batch joined with the separator */
    int jkind;            /* its PyUnicode kind and data, for the properties of non-ASCII characters */
    const void *jdata;
    int bail;             /* a check met what only pii.py states: the candidate goes to pii.py */
    Py_ssize_t key_from, key_end, aln_from, aln_end; /* the last key-character and alnum runs */
    PyObject *text;       /* the normalized text (built when a handler needs it) */
    PyObject *out;        /* list the Python handlers append to */
    Fnd *f;
    Py_ssize_t nf, capf;
} Ctx;

#define ISD(c) ((c) >= '0' && (c) <= '9')
#define ISUP(c) ((c) >= 'A' && (c) <= 'Z')
#define ISLO(c) ((c) >= 'a' && (c) <= 'z')
#define ISAL(c) (ISUP(c) || ISLO(c))
#define ISALNUM(c) (ISAL(c) || ISD(c))
#define ISWORD(c) (ISALNUM(c) || (c) == '_')
#define ISHEX(c) (ISD(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define ISHEXCOLON(c) (ISHEX(c) || (c) == ':')
#define ISHEXCOLONDOT(c) (ISHEX(c) || (c) == ':' || (c) == '.')
#define LOWER(c) (ISUP(c) ? (c) + 32 : (c))
#define ISNUMSEP(c) ((c) == '-' || (c) == '.' || (c) == ' ' || (c) == '(' || (c) == ')' || (c) == '/')
#define ISSPTAB(c) ((c) == ' ' || (c) == '\t')
#define ISUPDIG(c) (ISUP(c) || ISD(c))

static Py_ssize_t assign_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t p);
static inline int lit_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t p, const char *lit);

static int add_finding(Ctx *c, int kind, Py_ssize_t start, Py_ssize_t end)
{
    if (c->nf == c->capf) {
        Py_ssize_t cap = c->capf ? c->capf * 2 : 64;
        Fnd *f = PyMem_Realloc(c->f, cap * sizeof(Fnd));
        if (!f) {
            PyErr_NoMemory();
            return -1;
        }
        c->f = f;
        c->capf = cap;
    }
    c->f[c->nf].kind = kind;
    c->f[c->nf].start = start;
    c->f[c->nf].end = end;
    c->nf++;
    return 0;
}

/* Properties of the character at i as Python's str methods and re's \w and \d state them.
 * A mapped character is its ASCII mapping in d (that is the normalized text); any other
 * non-ASCII character is itself in the normalized text, so its properties come from CPython's. */
static Py_UCS4 orig(const Ctx *c, Py_ssize_t i) { return PyUnicode_READ(c->jkind, c->jdata, i); }

static int u_isalnum(const Ctx *c, Py_ssize_t i)
{
    if (i < 0 || i >= c->n)
        return 0;
    unsigned char ch = c->d[i];
    return ch < 0x80 ? ISALNUM(ch) : Py_UNICODE_ISALNUM(orig(c, i));
}

static int u_isword(const Ctx *c, Py_ssize_t i)
{
    return u_isalnum(c, i) || (i >= 0 && i < c->n && c->d[i] == '_');
}

static int u_isdecimal(const Ctx *c, Py_ssize_t i)
{
    if (i < 0 || i >= c->n)
        return 0;
    unsigned char ch = c->d[i];
    return ch < 0x80 ? ISD(ch) : Py_UNICODE_ISDECIMAL(orig(c, i));
}

/* one of the currency signs pii.py lists next to ASCII ones ("€£¥") */
static int u_iscurrency(const Ctx *c, Py_ssize_t i)
{
    if (i < 0 || i >= c->n || c->d[i] < 0x80)
        return 0;
    Py_UCS4 ch = orig(c, i);
    return ch == 0x20AC || ch == 0xA3 || ch == 0xA5;
}

static int nonascii(const Ctx *c, Py_ssize_t lo, Py_ssize_t hi)
{
    if (c->all_ascii)
        return 0;
    if (lo < 0)
        lo = 0;
    if (hi > c->n)
        hi = c->n;
    for (Py_ssize_t i = lo; i < hi; i++)
        if (c->d[i] & 0x80)
            return 1;
    return 0;
}

/* The normalized text pii.py's handlers judge: the joined batch with the mapped characters. */
static PyObject *get_text(Ctx *c)
{
    if (c->text)
        return c->text;
    if (!c->mapped) {
        Py_INCREF(c->joined);
        c->text = c->joined;
        return c->text;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(c->joined);
    int kind = PyUnicode_KIND(c->joined);
    const void *src = PyUnicode_DATA(c->joined);
    PyObject *t = PyUnicode_New(n, c->nmax);
    if (!t)
        return NULL;
    int tkind = PyUnicode_KIND(t);
    void *dst = PyUnicode_DATA(t);
    if (tkind == kind) { /* the usual case: a copy, then the few normalized characters */
        memcpy(dst, src, (size_t)n * kind);
        for (Py_ssize_t k = 0; k < c->nmpos; k++)
            PyUnicode_WRITE(tkind, dst, c->mpos[k], c->d[c->mpos[k]]);
    } else { /* normalizing made the text narrower */
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 ch = PyUnicode_READ(kind, src, i);
            if (ch >= 0x80 && ch < 0x10000 && norm_table[ch])
                ch = norm_table[ch];
            PyUnicode_WRITE(tkind, dst, i, ch);
        }
    }
    c->text = t;
    return t;
}

/* the index of the kind named `k`, -1 when it is none (with an exception set on an error) */
static int kind_index(PyObject *k)
{
    for (int j = 0; j < N_KINDS; j++)
        if (k == kind_names[j])
            return j;
    if (!PyUnicode_Check(k)) {
        PyErr_Format(PyExc_TypeError, "a finding's kind must be str, not %s", Py_TYPE(k)->tp_name);
        return -1;
    }
    for (int j = 0; j < N_KINDS; j++) {
        int r = PyUnicode_Compare(k, kind_names[j]);
        if (r == 0)
            return j;
        if (r == -1 && PyErr_Occurred())
            return -1;
    }
    return -1;
}

/* pii.py's handler for the candidate text[start:end]; its findings are taken over. */
static int call_handler(Ctx *c, PyObject *handler, Py_ssize_t start, Py_ssize_t end)
{
    PyObject *text = get_text(c);
    if (!text)
        return -1;
    PyObject *ps = PyLong_FromSsize_t(start), *pe = PyLong_FromSsize_t(end);
    PyObject *r = NULL;
    if (ps && pe) {
        PyObject *args[4] = {text, ps, pe, c->out};
        /* a reference of our own: the handler may run configure(), which replaces it */
        Py_INCREF(handler);
        r = PyObject_Vectorcall(handler, args, 4, NULL);
        Py_DECREF(handler);
    }
    Py_XDECREF(ps);
    Py_XDECREF(pe);
    if (!r)
        return -1;
    Py_DECREF(r);
    if (!configured) { /* a configure() that failed while the handler ran: the tables are not whole */
        PyErr_SetString(PyExc_RuntimeError, "_pii_fast was reconfigured during the call and is not configured");
        return -1;
    }
    Py_ssize_t m = PyList_GET_SIZE(c->out);
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *f = PyList_GET_ITEM(c->out, i);
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 3) {
            PyErr_SetString(PyExc_TypeError, "a handler returned something that is not a Finding");
            return -1;
        }
        int kind = kind_index(PyTuple_GET_ITEM(f, 0));
        if (kind < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a handler returned an unknown kind");
            return -1;
        }
        Py_ssize_t s = PyLong_AsSsize_t(PyTuple_GET_ITEM(f, 1));
        Py_ssize_t e = PyLong_AsSsize_t(PyTuple_GET_ITEM(f, 2));
        if ((s == -1 || e == -1) && PyErr_Occurred())
            return -1;
        if (add_finding(c, kind, s, e) < 0)
            return -1;
    }
    return PyList_SetSlice(c->out, 0, m, NULL);
}

/* ================================================================================================
 * Judgement of digit runs (pii._number, pii._classify_number and what they call), on ASCII.
 * s = d[s0:e0] is always inside a candidate run: digits and "+-. ()/" only.
 * ============================================================================================== */

static int ipv4_full(const unsigned char *s, Py_ssize_t len)
{
    /* (?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|...) */
    Py_ssize_t i = 0;
    for (int k = 0; k < 4; k++) {
        Py_ssize_t j = i;
        int v = 0;
        while (j < len && ISD(s[j]) && j - i < 4) {
            v = v * 10 + (s[j] - '0');
            j++;
        }
        Py_ssize_t w = j - i;
        if (w < 1 || w > 3 || (j < len && ISD(s[j])))
            return 0;
        if (w > 1 && s[i] == '0')
            return 0;
        if (v > 255)
            return 0;
        if (k < 3) {
            if (j >= len || s[j] != '.')
                return 0;
            i = j + 1;
        } else if (j != len) {
            return 0;
        }
    }
    return 1;
}

static int ssn_full(const unsigned char *s, Py_ssize_t len)
{
    /* (?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4} */
    if (len != 11)
        return 0;
    for (int i = 0; i < 11; i++)
        if (i != 3 && i != 6 && !ISD(s[i]))
            return 0;
    if ((s[3] != '-' && s[3] != ' ') || s[6] != s[3])
        return 0;
    if ((s[0] == '0' && s[1] == '0' && s[2] == '0') || (s[0] == '6' && s[1] == '6' && s[2] == '6') || s[0] == '9')
        return 0;
    if (s[4] == '0' && s[5] == '0')
        return 0;
    if (s[7] == '0' && s[8] == '0' && s[9] == '0' && s[10] == '0')
        return 0;
    return 1;
}

static inline int ci_lit_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t p, const char *lit, Py_ssize_t len)
{
    if (p < 0 || p + len > n)
        return 0;
    for (Py_ssize_t i = 0; i < len; i++)
        if (LOWER(d[p + i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}

/* (?i)(?:ssn|social security(?: number| no\.?| #)?|ss#)\W{0,3}\Z searched in d[max(0,s0-24):s0] */
static int ssn_context(const Ctx *c, Py_ssize_t s0)
{
    static const char *kws[] = {"ssn", "social security", "social security number", "social security no",
                                "social security no.", "social security #", "ss#"};
    Py_ssize_t lo = s0 - 24 < 0 ? 0 : s0 - 24;
    if (nonascii(c, lo, s0)) {
        /* Unicode case folding and \W: pii.py judges this candidate */
        ((Ctx *)c)->bail = 1;
        return 0;
    }
    for (int w = 0; w <= 3; w++) {
        Py_ssize_t q = s0 - w;
        if (q < lo)
            break;
        if (w > 0 && ISWORD(c->d[q]))
            break; /* d[q..s0) must be non-word characters */
        for (int k = 0; k < 7; k++) {
            Py_ssize_t len = (Py_ssize_t)strlen(kws[k]);
            if (q - len >= lo && ci_lit_at(c->d, c->n, q - len, kws[k], len))
                return 1;
        }
    }
    return 0;
}

static int card_shape(const unsigned char *s, Py_ssize_t len)
{
    /* \d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -]?)\d{6}\2\d{4,5}|\d{13,19} */
    Py_ssize_t i;
    int all = 1;
    for (i = 0; i < len; i++)
        if (!ISD(s[i])) {
            all = 0;
            break;
        }
    if (all)
        return len >= 13 && len <= 19;
    if (len < 5)
        return 0;
    unsigned char sep = s[4];
    if (sep != ' ' && sep != '-')
        return 0;
    /* 4 S 4 S 4 S 1-7 */
    if (len >= 16 && len <= 22) {
        int ok = 1;
        for (i = 0; i < len && ok; i++) {
            if (i == 4 || i == 9 || i == 14)
                ok = s[i] == sep;
            else
                ok = ISD(s[i]);
        }
        if (ok)
            return 1;
    }
    /* 4 S 6 S 4-5 */
    if (len == 16 || len == 17) {
        int ok = 1;
        for (i = 0; i < len && ok; i++) {
            if (i == 4 || i == 11)
                ok = s[i] == sep;
            else
                ok = ISD(s[i]);
        }
        if (ok)
            return 1;
    }
    return 0;
}

static int luhn(const unsigned char *s, Py_ssize_t len)
{
    int sum = 0, k = 0;
    for (Py_ssize_t i = len - 1; i >= 0; i--) {
        if (!ISD(s[i]))
            continue;
        int v = s[i] - '0';
        if (k & 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
        k++;
    }
    return sum % 10 == 0;
}

/* Integer interval [lo, hi] of how many groups of 2..8 digits a run of `len` digits splits into. */
static int groups_2_8(Py_ssize_t len, int *lo, int *hi)
{
    if (len < 2)
        return 0;
    *lo = (int)((len + 7) / 8);
    *hi = (int)(len / 2);
    return 1;
}

/* Runs of digits separated by single separators from `seps`, from s[i] to the end; each run
 * is split into groups of 2..8 digits. The interval of possible group counts. */
static int runs_groups(const unsigned char *s, Py_ssize_t i, Py_ssize_t len, const char *seps, int *lo, int *hi)
{
    *lo = 0;
    *hi = 0;
    if (i >= len || !ISD(s[i]))
        return 0;
    while (i < len) {
        Py_ssize_t j = i;
        while (j < len && ISD(s[j]))
            j++;
        int a, b;
        if (!groups_2_8(j - i, &a, &b))
            return 0;
        *lo += a;
        *hi += b;
        if (j == len)
            return 1;
        if (!strchr(seps, s[j]) || s[j] == 0)
            return 0;
        i = j + 1;
        if (i >= len || !ISD(s[i]))
            return 0;
    }
    return 1;
}

/* 0\d{1,4}(?:[ .\-/]?\d{2,8}){1,4} */
static int phone_p4(const unsigned char *s, Py_ssize_t len)
{
    if (len < 1 || s[0] != '0' || len < 2 || !ISD(s[1]))
        return 0;
    Py_ssize_t j = 1;
    while (j < len && ISD(s[j]))
        j++;
    Py_ssize_t l0 = j - 1; /* digits of the first run after the '0' */
    int rlo = 0, rhi = 0;
    if (j < len) {
        if (!strchr(" .-/", s[j]) || s[j] == 0)
            return 0;
        if (!runs_groups(s, j + 1, len, " .-/", &rlo, &rhi))
            return 0;
    }
    for (Py_ssize_t a = 1; a <= 4 && a <= l0; a++) {
        Py_ssize_t r = l0 - a;
        int lo, hi;
        if (r == 0) {
            lo = hi = 0;
        } else if (!groups_2_8(r, &lo, &hi)) {
            continue;
        }
        lo += rlo;
        hi += rhi;
        if (lo <= 4 && hi >= 1)
            return 1;
    }
    return 0;
}

/* \(0\d{1,4}\)[ ]?\d{2,8}(?:[ .\-]?\d{2,8}){0,3} */
static int phone_p5(const unsigned char *s, Py_ssize_t len)
{
    if (len < 4 || s[0] != '(' || s[1] != '0')
        return 0;
    Py_ssize_t j = 2;
    while (j < len && ISD(s[j]))
        j++;
    if (j - 2 < 1 || j - 2 > 4 || j >= len || s[j] != ')')
        return 0;
    j++;
    if (j < len && s[j] == ' ')
        j++;
    int lo, hi;
    if (!runs_groups(s, j, len, " .-", &lo, &hi))
        return 0;
    return lo <= 4 && hi >= 1;
}

/* (?:1[ .\-])?(?:\(\d{3}\)[ ]?|\d{3}[ .\-])\d{3}[ .\-]\d{4} */
static int p2_tail(const unsigned char *s, Py_ssize_t i, Py_ssize_t len)
{
    Py_ssize_t j;
    if (i < len && s[i] == '(') {
        if (i + 5 > len || !ISD(s[i + 1]) || !ISD(s[i + 2]) || !ISD(s[i + 3]) || s[i + 4] != ')')
            return 0;
        j = i + 5;
        if (j < len && s[j] == ' ')
            j++;
    } else {
        if (i + 4 > len || !ISD(s[i]) || !ISD(s[i + 1]) || !ISD(s[i + 2]) || !strchr(" .-", s[i + 3]) || s[i + 3] == 0)
            return 0;
        j = i + 4;
    }
    if (j + 8 != len)
        return 0;
    for (int k = 0; k < 8; k++) {
        if (k == 3) {
            if (s[j + k] != ' ' && s[j + k] != '.' && s[j + k] != '-')
                return 0;
        } else if (!ISD(s[j + k])) {
            return 0;
        }
    }
    return 1;
}

static int phone_p2(const unsigned char *s, Py_ssize_t len)
{
    if (len >= 2 && s[0] == '1' && (s[1] == ' ' || s[1] == '.' || s[1] == '-') && p2_tail(s, 2, len))
        return 1;
    return p2_tail(s, 0, len);
}

static int pattern_at(const unsigned char *s, Py_ssize_t len, const char *pat)
{
    /* Fixed-length shapes: 'd' digit, 'a'..: class, literal otherwise. */
    Py_ssize_t plen = (Py_ssize_t)strlen(pat);
    if (plen != len)
        return 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char ch = s[i], p = (unsigned char)pat[i];
        switch (p) {
        case 'd': if (!ISD(ch)) return 0; break;
        case 's': if (ch != ' ' && ch != '.') return 0; break; /* [ .] */
        case 'A': if (ch < '2' || ch > '9') return 0; break;   /* [2-9] */
        case 'B': if (ch < '6' || ch > '9') return 0; break;   /* [6-9] */
        case 'C': if (ch != '8' && ch != '9') return 0; break; /* [89] */
        default: if (ch != p) return 0;
        }
    }
    return 1;
}

/* (?:\+|00)[1-9]\d{0,3}(?:[ .\-/]?(?:\(0\)[ ]?)?\(?\d{1,5}\)?){1,6}: memoized over (position, groups) */
typedef struct {
    const unsigned char *s;
    Py_ssize_t len;
    signed char memo[82][7];
} P1;

static int p1_groups(P1 *m, Py_ssize_t pos, int g);

static int p1_group_digits(P1 *m, Py_ssize_t p, int g)
{
    /* \(?\d{1,5}\)? from p, then the remaining groups */
    const unsigned char *s = m->s;
    Py_ssize_t len = m->len;
    if (p < len && s[p] == '(')
        p++;
    for (Py_ssize_t k = 1; k <= 5 && p + k <= len && ISD(s[p + k - 1]); k++) {
        Py_ssize_t q = p + k; /* a shorter group may be followed by more digits: the next group */
        if (q < len && s[q] == ')') {
            if (p1_groups(m, q + 1, g + 1))
                return 1;
            /* not taking ')' leaves a ')' no group starts with */
        } else if (p1_groups(m, q, g + 1)) {
            return 1;
        }
    }
    return 0;
}

static int p1_groups(P1 *m, Py_ssize_t pos, int g)
{
    if (pos == m->len)
        return g >= 1;
    if (g >= 6)
        return 0;
    if (m->memo[pos][g])
        return m->memo[pos][g] > 0;
    const unsigned char *s = m->s;
    Py_ssize_t len = m->len;
    Py_ssize_t p = pos;
    int ok = 0;
    if (s[p] == ' ' || s[p] == '.' || s[p] == '-' || s[p] == '/')
        p++;
    if (p + 3 <= len && s[p] == '(' && s[p + 1] == '0' && s[p + 2] == ')') {
        Py_ssize_t q = p + 3;
        if (q < len && s[q] == ' ')
            q++;
        ok = p1_group_digits(m, q, g);
    }
    if (!ok)
        ok = p1_group_digits(m, p, g);
    m->memo[pos][g] = ok ? 1 : -1;
    return ok;
}

static int phone_p1(const unsigned char *s, Py_ssize_t len)
{
    Py_ssize_t i;
    if (len >= 1 && s[0] == '+')
        i = 1;
    else if (len >= 2 && s[0] == '0' && s[1] == '0')
        i = 2;
    else
        return 0;
    if (i >= len || s[i] < '1' || s[i] > '9')
        return 0;
    if (len > 81)
        return 0;
    P1 m;
    m.s = s;
    m.len = len;
    memset(m.memo, 0, sizeof(m.memo));
    for (Py_ssize_t cc = 1; cc <= 4 && i + cc <= len && ISD(s[i + cc - 1]); cc++)
        if (p1_groups(&m, i + cc, 0))
            return 1;
    return 0;
}

static int phone_full(const unsigned char *s, Py_ssize_t len)
{
    if (len > 81)
        return 0; /* longer than any phone shape (at most 78 characters) */
    return phone_p1(s, len) || phone_p2(s, len) || pattern_at(s, len, "AddAdddddd") || phone_p4(s, len) ||
           phone_p5(s, len) || pattern_at(s, len, "Bddsddsddsdd") || pattern_at(s, len, "Cdsdddsddsdd") ||
           pattern_at(s, len, "Bddsdddsddd");
}

/* (?<!\d)(?:\d{1,2}[./-]\d{1,2}[./-](?:19|20)\d\d|(?:19|20)\d\d[./-]\d{1,2}[./-]\d{1,2})(?!\d) in s */
static int date_inside(const unsigned char *s, Py_ssize_t len)
{
    Py_ssize_t rs[3], re_[3];
    int nr = 0;
    Py_ssize_t i = 0;
    while (i < len) {
        if (!ISD(s[i])) {
            i++;
            continue;
        }
        Py_ssize_t j = i;
        while (j < len && ISD(s[j]))
            j++;
        if (nr == 3) {
            rs[0] = rs[1], re_[0] = re_[1];
            rs[1] = rs[2], re_[1] = re_[2];
            nr = 2;
        }
        rs[nr] = i;
        re_[nr] = j;
        nr++;
        if (nr == 3) {
            int gaps = rs[1] - re_[0] == 1 && rs[2] - re_[1] == 1;
            unsigned char g1 = s[re_[0]], g2 = s[re_[1]];
            gaps = gaps && (g1 == '.' || g1 == '/' || g1 == '-') && (g2 == '.' || g2 == '/' || g2 == '-');
            if (gaps) {
                Py_ssize_t l0 = re_[0] - rs[0], l1 = re_[1] - rs[1], l2 = re_[2] - rs[2];
#define CENTURY(k) ((s[rs[k]] == '1' && s[rs[k] + 1] == '9') || (s[rs[k]] == '2' && s[rs[k] + 1] == '0'))
                if (l0 >= 1 && l0 <= 2 && l1 >= 1 && l1 <= 2 && l2 == 4 && CENTURY(2))
                    return 1;
                if (l0 == 4 && CENTURY(0) && l1 >= 1 && l1 <= 2 && l2 >= 1 && l2 <= 2)
                    return 1;
#undef CENTURY
            }
        }
        i = j;
    }
    return 0;
}

static int intl_length_ok(const unsigned char *s, Py_ssize_t len, Py_ssize_t n)
{
    char digits[96];
    int nd = 0;
    for (Py_ssize_t i = 0; i < len && nd < 95; i++)
        if (ISD(s[i]))
            digits[nd++] = (char)s[i];
    int off = 0;
    if (s[0] == '0') {
        off = nd >= 2 ? 2 : nd;
        n -= 2;
    }
    for (Py_ssize_t i = 0; i + 2 < len; i++)
        if (s[i] == '(' && s[i + 1] == '0' && s[i + 2] == ')') {
            n -= 1;
            break;
        }
    for (int size = 1; size <= 3 && size <= nd - off; size++) {
        for (int k = 0; k < n_nsn; k++) {
            if (nsn_keylen[k] == size && memcmp(nsn_key[k], digits + off, size) == 0)
                return nsn_lo[k] <= n - size && n - size <= nsn_hi[k];
        }
    }
    return 8 <= n && n <= 15;
}

/* pii._classify_number: the kind of d[s0:e0] holding n digits, or -1 */
static int classify(const Ctx *c, Py_ssize_t s0, Py_ssize_t e0, Py_ssize_t n)
{
    const unsigned char *s = c->d + s0;
    Py_ssize_t len = e0 - s0;
    if (n <= 12) {
        Py_ssize_t dots = 0;
        for (Py_ssize_t i = 0; i < len; i++)
            dots += s[i] == '.';
        if (dots == 3 && ipv4_full(s, len))
            return K_IP;
    }
    if (n < 9)
        return -1;
    if (n == 9) {
        if (ssn_full(s, len))
            return K_SSN;
        int alld = len > 0;
        for (Py_ssize_t i = 0; i < len && alld; i++)
            alld = ISD(s[i]);
        if (alld && ssn_context(c, s0))
            return K_SSN;
    }
    if (n >= 13 && n <= 19 && card_shape(s, len) && luhn(s, len))
        return K_CARD;
    if (n <= 15 && phone_full(s, len)) {
        int international = s[0] == '+' || (len >= 2 && s[0] == '0' && s[1] == '0');
        if (!international) {
            if (s[0] == '0' && !(n >= 9 && n <= 12))
                return -1;
            int seps = 0;
            for (Py_ssize_t i = 0; i < len; i++)
                seps |= s[i] == '/' || s[i] == '.' || s[i] == '-';
            if (seps && date_inside(s, len))
                return -1;
        } else if (!intl_length_ok(s, len, n)) {
            return -1;
        }
        return K_PHONE;
    }
    return -1;
}

/* pii._CODE_BEFORE.search(text, max(0, start - 48), start): a code just before the run */
static int code_before(const Ctx *c, Py_ssize_t start)
{
    const unsigned char *d = c->d;
    Py_ssize_t e = start - 1; /* the space */
    Py_ssize_t lo = start - 48 < 0 ? 0 : start - 48;
#define FREE_BEFORE(m0) ((m0) == 0 || !(u_isword(c, (m0) - 1) || d[(m0) - 1] == '-'))
    /* (?=[A-Z]*\d)(?=\d*[A-Z])[A-Z0-9]{4} */
    Py_ssize_t m0 = e - 4;
    if (m0 >= lo) {
        int ok = 1, dig = 0, up = 0;
        for (int i = 0; i < 4; i++) {
            unsigned char ch = d[m0 + i];
            ok = ok && ISUPDIG(ch);
            dig |= ISD(ch);
            up |= ISUP(ch);
        }
        if (ok && dig && up && FREE_BEFORE(m0))
            return 1;
    }
    /* [A-Z]{2}\d\d(?: [A-Z0-9]{4}){0,7} */
    for (int g = 0; g <= 7; g++) {
        m0 = e - 4 - 5 * g;
        if (m0 < lo)
            break;
        if (!(ISUP(d[m0]) && ISUP(d[m0 + 1]) && u_isdecimal(c, m0 + 2) && u_isdecimal(c, m0 + 3)))
            continue;
        int ok = 1;
        for (int k = 0; k < g && ok; k++) {
            Py_ssize_t q = m0 + 4 + 5 * k;
            ok = d[q] == ' ' && ISUPDIG(d[q + 1]) && ISUPDIG(d[q + 2]) && ISUPDIG(d[q + 3]) && ISUPDIG(d[q + 4]);
        }
        if (ok && FREE_BEFORE(m0))
            return 1;
    }
#undef FREE_BEFORE
    return 0;
}

static int french_pairs(const unsigned char *s, Py_ssize_t len)
{
    /* 0\d(?:[ .]\d\d){4} */
    if (len != 14 || s[0] != '0' || !ISD(s[1]))
        return 0;
    for (int k = 0; k < 4; k++) {
        const unsigned char *g = s + 2 + 3 * k;
        if ((g[0] != ' ' && g[0] != '.') || !ISD(g[1]) || !ISD(g[2]))
            return 0;
    }
    return 1;
}

#define MAX_GROUPS 6

/* pii._number */
static int judge_number_c(Ctx *c, Py_ssize_t start, Py_ssize_t end);

static int judge_number(Ctx *c, Py_ssize_t start, Py_ssize_t end)
{
    Py_ssize_t nf = c->nf;
    int rc = judge_number_c(c, start, end);
    if (rc == 0 && c->bail) {
        c->bail = 0;
        c->nf = nf;
        return call_handler(c, h_digits, start, end);
    }
    return rc;
}

static int judge_number_c(Ctx *c, Py_ssize_t start, Py_ssize_t end)
{
    const unsigned char *d = c->d;
    if (end < c->n && (u_isalnum(c, end) || d[end] == '_' || d[end] == '@'))
        return 0;
    if (start > 0) {
        unsigned char b = d[start - 1];
        if (u_isalnum(c, start - 1) || b == '_' || b == '$' || b == '%' || b == '#' || b == '@' ||
            u_iscurrency(c, start - 1)) {
            Py_ssize_t s = start;
            if (ISD(d[s])) {
                while (ISD(d[s]))
                    s++;
            } else {
                s = start + 1;
            }
            while (s < end && !ISD(d[s]) && d[s] != '+' && d[s] != '(')
                s++;
            if (s >= end || (d[s - 1] != ' ' && d[s - 1] != '/'))
                return 0;
            start = s;
        }
    }
    if (start > 4 && d[start - 1] == ' ' && ISUPDIG(d[start - 2]) && code_before(c, start))
        return 0;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = start; i < end; i++)
        n += ISD(d[i]);
    int kind = classify(c, start, end, n);
    if (kind >= 0) {
        if (kind == K_PHONE && d[start] == '0' && d[start + 1] != '0' && !french_pairs(d + start, end - start)) {
            Py_ssize_t sp = -1;
            for (Py_ssize_t i = end - 1; i >= start; i--)
                if (d[i] == ' ') {
                    sp = i;
                    break;
                }
            if (sp > start) {
                Py_ssize_t tail = end - sp - 1;
                if (tail <= 3 && classify(c, start, sp, n - tail) >= 0)
                    end = sp;
            }
        }
        return add_finding(c, kind, start, end);
    }
    if (n >= 13 && n <= 19 && card_shape(d + start, end - start))
        return 0;
    /* The run may join several numbers: spans of whole digit groups, longest first. */
    Py_ssize_t ng = 0;
    for (Py_ssize_t i = start; i < end; i++)
        if (ISD(d[i]) && (i == start || !ISD(d[i - 1])))
            ng++;
    if (ng == 0)
        return 0;
    Py_ssize_t *gs = PyMem_Malloc(sizeof(Py_ssize_t) * (3 * ng + 1));
    if (!gs) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t *ge = gs + ng, *dig = gs + 2 * ng; /* dig[k]: digits in the first k groups */
    Py_ssize_t k = 0;
    for (Py_ssize_t i = start; i < end;) {
        if (!ISD(d[i])) {
            i++;
            continue;
        }
        Py_ssize_t j = i;
        while (j < end && ISD(d[j]))
            j++;
        gs[k] = i;
        ge[k] = j;
        k++;
        i = j;
    }
    dig[0] = 0;
    for (k = 0; k < ng; k++)
        dig[k + 1] = dig[k] + ge[k] - gs[k];
    Py_ssize_t last = ng - 1;
    int rc = 0;
    for (Py_ssize_t i = 0; i <= last; i++) {
        Py_ssize_t jmax = i + MAX_GROUPS - 1 < last ? i + MAX_GROUPS - 1 : last;
        for (Py_ssize_t j = jmax; j >= i; j--) {
            Py_ssize_t nn = dig[j + 1] - dig[i];
            if (nn < 9 || nn > 19)
                continue;
            if (i > 0) {
                unsigned char b = d[gs[i] - 1];
                if (b != ' ' && b != '/' && b != '(' && b != '+')
                    continue;
            }
            if (j < last) {
                unsigned char a = d[ge[j]];
                if (a != ' ' && a != '/' && a != ')')
                    continue;
            }
            Py_ssize_t s0s[2], e0s[2];
            int ns, ne;
            if (i == 0 && start < gs[0]) {
                s0s[0] = start, s0s[1] = gs[0], ns = 2;
            } else {
                s0s[0] = gs[i], ns = 1;
            }
            if (j == last && end > ge[j]) {
                e0s[0] = end, e0s[1] = ge[j], ne = 2;
            } else {
                e0s[0] = ge[j], ne = 1;
            }
            int found = -1;
            for (int a = 0; a < ns && found < 0; a++)
                for (int b = 0; b < ne && found < 0; b++) {
                    if (s0s[a] == start && e0s[b] == end)
                        continue;
                    int kk = classify(c, s0s[a], e0s[b], nn);
                    if (kk >= 0) {
                        found = kk;
                        if (add_finding(c, kk, s0s[a], e0s[b]) < 0) {
                            rc = -1;
                            goto done;
                        }
                    }
                }
            if (found >= 0) {
                i = j;
                break;
            }
        }
    }
done:
    PyMem_Free(gs);
    return rc;
}

/* pii._ipv4 */
static int judge_ipv4(Ctx *c, Py_ssize_t start, Py_ssize_t end)
{
    const unsigned char *d = c->d;
    if (start > 0) {
        unsigned char b = d[start - 1];
        if (u_isalnum(c, start - 1) || b == '_' || b == '.' || b == '$' || b == '#' || b == '-' ||
            u_iscurrency(c, start - 1))
            return 0;
    }
    if (end < c->n && (u_isalnum(c, end) || d[end] == '_' || d[end] == '-'))
        return 0;
    if (ipv4_full(d + start, end - start))
        return add_finding(c, K_IP, start, end);
    return 0;
}

/* pii._email: d[start] is '@'; `run_end` ends the [A-Za-z0-9.-] run after it */
static int judge_email(Ctx *c, Py_ssize_t start, Py_ssize_t run_end)
{
    const unsigned char *d = c->d;
    /* _EMAIL_DOMAIN: @[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![\w-]) */
    Py_ssize_t p = start + 1;
    if (!ISALNUM(d[p]))
        return 0;
    Py_ssize_t q = p;
    while (ISALNUM(d[q]) || d[q] == '-')
        q++;
    if (q - p > 63)
        return 0;
    /* labels after L0: starts and ends, up to 10 (8 groups + the last + one more) */
    Py_ssize_t ls[10], le[10];
    int nl = 0;
    while (nl < 10 && d[q] == '.') {
        Py_ssize_t r = q + 1;
        while (ISALNUM(d[r]) || d[r] == '-')
            r++;
        if (r == q + 1)
            break;
        ls[nl] = q + 1;
        le[nl] = r;
        nl++;
        q = r;
    }
    Py_ssize_t dom_end = -1;
    for (int k = nl - 1 < 8 ? nl - 1 : 8; k >= 0; k--) {
        /* k groups (labels 0..k-1, each at most 63), then label k as the top-level domain */
        int ok = 1;
        for (int i = 0; i < k && ok; i++)
            ok = le[i] - ls[i] <= 63;
        if (!ok)
            continue;
        Py_ssize_t a = ls[k], b = le[k];
        Py_ssize_t L = b - a;
        if (L < 2 || L > 24)
            continue;
        for (Py_ssize_t i = a; i < b && ok; i++)
            ok = ISAL(d[i]);
        /* (?![\w-]) after the letters: d[b] is not a label character (the label is whole) and not '_' */
        if (ok && !u_isword(c, b)) {
            dom_end = b;
            break;
        }
    }
    if (dom_end < 0)
        return 0;
    /* _LOCAL_REVERSED on the 64 characters before '@', read backwards */
    Py_ssize_t lo = start - 64 < 0 ? 0 : start - 64;
    Py_ssize_t i = start - 1;
    if (i < lo)
        return 0;
    unsigned char ch = d[i];
    if (!(u_isword(c, i) || ch == '+' || ch == '%' || ch == '-'))
        return 0;
    Py_ssize_t local_start = i;
    for (; i >= lo; i--) {
        ch = d[i];
        if (u_isword(c, i) || ch == '+' || ch == '%' || ch == '-')
            local_start = i;
        else if (ch != '.')
            break;
    }
    return add_finding(c, K_EMAIL, local_start, dom_end);
}

/* pii._iban: d[start:start+2] is a country with IBANs, two digits follow */
static int judge_iban(Ctx *c, Py_ssize_t start)
{
    const unsigned char *d = c->d;
    if (start > 0 && u_isword(c, start - 1))
        return 0;
    /* _IBAN.match: [A-Z][A-Z]\d\d(?:[ ]?[A-Z0-9]){11,30} */
    Py_ssize_t q = start + 4;
    int units = 0;
    while (units < 30) {
        if (d[q] == ' ' && ISUPDIG(d[q + 1]))
            q += 2;
        else if (ISUPDIG(d[q]))
            q += 1;
        else
            break;
        units++;
    }
    if (units < 11)
        return 0;
    Py_ssize_t expected = iban_cc[d[start] - 'A'][d[start + 1] - 'A'];
    Py_ssize_t rend = q, clen = 0;
    for (Py_ssize_t i = start; i < rend; i++)
        clen += d[i] != ' ';
    /* trim whole space-separated chunks from the right until the length fits the country's */
    while (clen > expected) {
        Py_ssize_t sp = rend - 1;
        while (sp >= start && d[sp] != ' ')
            sp--;
        if (sp < start)
            break;
        rend = sp;
        clen = 0;
        for (Py_ssize_t i = start; i < rend; i++)
            clen += d[i] != ' ';
    }
    if (clen > expected) { /* no space left: the first `expected` characters */
        rend = start + expected;
        clen = expected;
    }
    if (clen != expected)
        return 0;
    /* ISO 13616 mod-97 of the compact form with its first four characters moved to the end */
    char compact[40];
    int k = 0;
    for (Py_ssize_t i = start; i < rend && k < 40; i++)
        if (d[i] != ' ')
            compact[k++] = (char)d[i];
    int r = 0;
    for (int i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)compact[(i + 4) % k];
        if (ISD(ch))
            r = (r * 10 + (ch - '0')) % 97;
        else
            r = (r * 100 + (ch - 'A' + 10)) % 97;
    }
    if (r != 1)
        return 0;
    if (rend < c->n && (u_isalnum(c, rend) || d[rend] == '_' || d[rend] == '-'))
        return 0;
    return add_finding(c, K_IBAN, start, rend);
}

/* ================================================================================================
 * The four candidate scans: pii._PASSES, leftmost-first like RE2, non-overlapping.
 * ============================================================================================== */

static inline int lit_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t p, const char *lit)
{
    Py_ssize_t len = (Py_ssize_t)strlen(lit);
    return p + len <= n && memcmp(d + p, lit, len) == 0;
}

/* _SECRET_PREFIXES at p: the end, or -1 */
static Py_ssize_t secret_prefix(const unsigned char *d, Py_ssize_t n, Py_ssize_t p)
{
    unsigned char ch = d[p];
    switch (ch) {
    case 's':
        if (lit_at(d, n, p, "sk-") && (ISALNUM(d[p + 3]) || d[p + 3] == '_' || d[p + 3] == '-'))
            return p + 4;
        /* fallthrough */
    case 'r':
        if (d[p + 1] == 'k' && d[p + 2] == '_' && (lit_at(d, n, p + 3, "live_") || lit_at(d, n, p + 3, "test_")))
            return p + 8;
        return -1;
    case 'A':
        if ((lit_at(d, n, p, "AKIA") || lit_at(d, n, p, "ASIA") || lit_at(d, n, p, "ABIA") || lit_at(d, n, p, "ACCA")) &&
            ISUPDIG(d[p + 4]))
            return p + 5;
        if (lit_at(d, n, p, "AIza"))
            return p + 4;
        return -1;
    case 'g':
        if (d[p + 1] == 'h' && strchr("pousr", d[p + 2]) && d[p + 2] && d[p + 3] == '_')
            return p + 4;
        if (lit_at(d, n, p, "github_pat_"))
            return p + 11;
        return -1;
    case 'x':
        if (d[p + 1] == 'o' && d[p + 2] == 'x' && d[p + 3] && strchr("abposrce", d[p + 3]) && d[p + 4] == '-')
            return p + 5;
        return -1;
    case 'h':
        return lit_at(d, n, p, "hooks.slack.com/") ? p + 16 : -1;
    case 'w':
        return lit_at(d, n, p, "whsec_") ? p + 6 : -1;
    case 'y':
        return lit_at(d, n, p, "ya29.") ? p + 5 : -1;
    case 'G':
        return lit_at(d, n, p, "GOCSPX-") ? p + 7 : -1;
    case 'e':
        return lit_at(d, n, p, "eyJ") ? p + 3 : -1;
    case '-':
        return lit_at(d, n, p, "-----BEGIN") ? p + 10 : -1;
    }
    return -1;
}

static Py_ssize_t bearer_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t p)
{
    if (!(lit_at(d, n, p, "Bearer") || lit_at(d, n, p, "bearer") || lit_at(d, n, p, "BEARER")))
        return -1;
    Py_ssize_t q = p + 6;
    if (!ISSPTAB(d[q]))
        return -1;
    while (ISSPTAB(d[q]))
        q++;
    unsigned char ch = d[q];
    if (ISALNUM(ch) || ch == '.' || ch == '_' || ch == '~' || ch == '+' || ch == '/' || ch == '-')
        return q + 1;
    return -1;
}

/* `word` with an optional [ _-] before the part after `split` characters (case-insensitive) */
static inline Py_ssize_t kw_sep(const unsigned char *d, Py_ssize_t n, Py_ssize_t p, const char *a, Py_ssize_t la,
                                const char *b, Py_ssize_t lb)
{
    if (!ci_lit_at(d, n, p, a, la))
        return -1;
    Py_ssize_t q = p + la;
    if (d[q] == ' ' || d[q] == '_' || d[q] == '-') {
        if (ci_lit_at(d, n, q + 1, b, lb))
            return q + 1 + lb;
    }
    if (ci_lit_at(d, n, q, b, lb))
        return q + lb;
    return -1;
}

static Py_ssize_t assign_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t p)
{
    static const char *plain[] = {"password", "passwd", "passphrase", "passcode", "pwd", "pin", "secret", "token"};
    static const Py_ssize_t plain_len[] = {8, 6, 10, 8, 3, 3, 6, 5};
    Py_ssize_t q = -1;
    switch (LOWER(d[p])) {
    case 'c': q = kw_sep(d, n, p, "client", 6, "secret", 6); break;
    case 'a':
        switch (LOWER(d[p + 1])) {
        case 'p': q = kw_sep(d, n, p, "api", 3, "key", 3); break;
        case 'c': q = kw_sep(d, n, p, "access", 6, "token", 5); break;
        case 'u': q = kw_sep(d, n, p, "auth", 4, "token", 5); break;
        }
        break;
    case 'p': case 's': case 't':
        for (int i = 0; i < 8 && q < 0; i++)
            if (LOWER(d[p + 1]) == (unsigned char)plain[i][1] && ci_lit_at(d, n, p, plain[i], plain_len[i]))
                q = p + plain_len[i];
        break;
    default:
        return -1;
    }
    if (q < 0)
        return -1;
    Py_ssize_t s = q;
    while (ISSPTAB(d[s]))
        s++;
    if (d[s] == ':' || d[s] == '=')
        return s + 1;
    if (s > q) {
        if (ci_lit_at(d, n, s, "is", 2) && ISSPTAB(d[s + 2]))
            return s + 3;
        if (ci_lit_at(d, n, s, "was", 3) && ISSPTAB(d[s + 3]))
            return s + 4;
    }
    return -1;
}

static int u_isspace(const Ctx *c, Py_ssize_t i)
{
    if (i < 0 || i >= c->n)
        return 0;
    unsigned char ch = c->d[i];
    if (ch < 0x80)
        return ch == ' ' || (ch >= '\t' && ch <= '\r') || (ch >= 0x1c && ch <= 0x1f);
    return Py_UNICODE_ISSPACE(orig(c, i));
}

#define ISKEYCH(c) (ISALNUM(c) || (c) == '_' || (c) == '-')

/* length of the run of characters `cls` accepts from p */
#define RUN(var, from, cond)                                                                                           \
    do {                                                                                                               \
        var = (from);                                                                                                  \
        while (cond)                                                                                                   \
            var++;                                                                                                     \
    } while (0)

/* Runs of key characters [A-Za-z0-9_-] and of [A-Za-z0-9] from p. The last run is remembered:
 * "ask-ask-ask-..." or "eyJeyJ..." make a candidate every few characters inside one long run,
 * and measuring it again each time would be quadratic. */
static Py_ssize_t run_key(Ctx *c, Py_ssize_t p)
{
    if (!(p >= c->key_from && p < c->key_end)) {
        Py_ssize_t q;
        RUN(q, p, ISKEYCH(c->d[q]));
        c->key_from = p;
        c->key_end = q;
        if (q == p)
            return 0;
    }
    return c->key_end - p;
}

static Py_ssize_t run_alnum(Ctx *c, Py_ssize_t p)
{
    if (!(p >= c->aln_from && p < c->aln_end)) {
        Py_ssize_t q;
        RUN(q, p, ISALNUM(c->d[q]));
        c->aln_from = p;
        c->aln_end = q;
        if (q == p)
            return 0;
    }
    return c->aln_end - p;
}

/* X{lo,hi} of a class whose run from p is r characters long, nothing after: the end, or -1 */
static Py_ssize_t counted(Py_ssize_t p, Py_ssize_t r, Py_ssize_t lo, Py_ssize_t hi)
{
    return r < lo ? -1 : p + (r < hi ? r : hi);
}

/* [A-Z ]{0,30} PRIVATE KEY----- at q (greedy, so the longest that fits): the end, or -1 */
static Py_ssize_t pem_label(const Ctx *c, Py_ssize_t q)
{
    const unsigned char *d = c->d;
    int k = 0;
    while (k < 30 && (ISUP(d[q + k]) || d[q + k] == ' '))
        k++;
    for (; k >= 0; k--)
        if (lit_at(d, c->n, q + k, " PRIVATE KEY-----"))
            return q + k + 17;
    return -1;
}

/* -----BEGIN[A-Z ]{0,30} PRIVATE KEY-----(?:[A-Za-z0-9+/=\s]|Proc-Type:[^\n\x00]*|DEK-Info:[^\n\x00]*)*+
 * (?:-----END[A-Z ]{0,30} PRIVATE KEY-----)? at p: the end, or -1 */
static Py_ssize_t pem_match(Ctx *c, Py_ssize_t p)
{
    const unsigned char *d = c->d;
    Py_ssize_t q = pem_label(c, p + 10);
    if (q < 0)
        return -1;
    for (;;) { /* possessive: each step takes the first alternative that matches, never gives back */
        unsigned char ch = d[q];
        if (q < c->n && (ISALNUM(ch) || ch == '+' || ch == '/' || ch == '=' || u_isspace(c, q))) {
            q++;
        } else if (lit_at(d, c->n, q, "Proc-Type:") || lit_at(d, c->n, q, "DEK-Info:")) {
            while (q < c->n && d[q] != '\n' && d[q] != 0)
                q++;
        } else {
            break;
        }
    }
    if (lit_at(d, c->n, q, "-----END")) {
        Py_ssize_t e = pem_label(c, q + 8);
        if (e > 0)
            return e;
    }
    return q;
}

/* pii._SECRET.match(text, start) for all but the private-key block: the end, -1, or -2 (ask pii.py) */
static Py_ssize_t secret_match(Ctx *c, Py_ssize_t p)
{
    const unsigned char *d = c->d;
    Py_ssize_t n = c->n, e;
    if (lit_at(d, n, p, "sk-")) {
        if (lit_at(d, n, p, "sk-ant-")) {
            Py_ssize_t q = -1;
            if (lit_at(d, n, p + 7, "api"))
                q = p + 10;
            else if (lit_at(d, n, p + 7, "admin"))
                q = p + 12;
            else if (lit_at(d, n, p + 7, "sid"))
                q = p + 10;
            if (q > 0) {
                if ((d[q] & 0x80) || (d[q + 1] & 0x80))
                    return -2; /* \d is Unicode's */
                if (ISD(d[q]) && ISD(d[q + 1]) && d[q + 2] == '-' && (e = counted(q + 3, run_key(c, q + 3), 20, 300)) > 0)
                    return e;
            }
        }
        Py_ssize_t q = p + 3, pre = 0;
        if (lit_at(d, n, q, "proj-"))
            pre = 5;
        else if (lit_at(d, n, q, "svcacct-"))
            pre = 8;
        else if (lit_at(d, n, q, "admin-"))
            pre = 6;
        if (pre && (e = counted(q + pre, run_key(c, q + pre), 20, 300)) > 0)
            return e;
        return counted(q, run_key(c, q), 20, 300);
    }
    if (lit_at(d, n, p, "AKIA") || lit_at(d, n, p, "ASIA") || lit_at(d, n, p, "ABIA") || lit_at(d, n, p, "ACCA")) {
        for (int i = 4; i < 20; i++)
            if (!ISUPDIG(d[p + i]))
                return -1;
        return ISALNUM(d[p + 20]) ? -1 : p + 20;
    }
    if (d[p] == 'g' && d[p + 1] == 'h' && d[p + 2] && strchr("pousr", d[p + 2]) && d[p + 3] == '_')
        return counted(p + 4, run_alnum(c, p + 4), 36, 255);
    if (lit_at(d, n, p, "github_pat_")) {
        Py_ssize_t q;
        RUN(q, p + 11, q < p + 11 + 256 && (ISALNUM(d[q]) || d[q] == '_'));
        return counted(p + 11, q - p - 11, 22, 255);
    }
    if (d[p] == 'x' && d[p + 1] == 'o' && d[p + 2] == 'x' && d[p + 3] && strchr("abposrce", d[p + 3]) && d[p + 4] == '-') {
        Py_ssize_t q;
        RUN(q, p + 5, q < p + 5 + 251 && (ISALNUM(d[q]) || d[q] == '-'));
        return counted(p + 5, q - p - 5, 10, 250);
    }
    if (lit_at(d, n, p, "hooks.slack.com/")) {
        Py_ssize_t q = -1;
        if (lit_at(d, n, p + 16, "services/"))
            q = p + 25;
        else if (lit_at(d, n, p + 16, "workflows/"))
            q = p + 26;
        if (q < 0)
            return -1;
        Py_ssize_t r;
        RUN(r, q, r < q + 201 && (ISKEYCH(d[r]) || d[r] == '/'));
        return counted(q, r - q, 20, 200);
    }
    if ((d[p] == 's' || d[p] == 'r') && d[p + 1] == 'k' && d[p + 2] == '_' &&
        (lit_at(d, n, p + 3, "live_") || lit_at(d, n, p + 3, "test_")))
        return counted(p + 8, run_alnum(c, p + 8), 16, 247);
    if (lit_at(d, n, p, "whsec_"))
        return counted(p + 6, run_alnum(c, p + 6), 24, 200);
    if (lit_at(d, n, p, "AIza")) {
        if (run_key(c, p + 4) < 35)
            return -1;
        return ISKEYCH(d[p + 39]) ? -1 : p + 39;
    }
    if (lit_at(d, n, p, "ya29."))
        return counted(p + 5, run_key(c, p + 5), 20, 2048);
    if (lit_at(d, n, p, "GOCSPX-"))
        return run_key(c, p + 7) >= 28 ? p + 35 : -1;
    if (lit_at(d, n, p, "eyJ")) {
        Py_ssize_t a = run_key(c, p + 3);
        if (a < 8 || a > 4096)
            return -1;
        Py_ssize_t q = p + 3 + a;
        if (!lit_at(d, n, q, ".eyJ"))
            return -1;
        Py_ssize_t b = run_key(c, q + 4);
        if (b < 8 || b > 8192)
            return -1;
        q += 4 + b;
        if (d[q] != '.')
            return -1;
        return counted(q + 1, run_key(c, q + 1), 8, 4096);
    }
    if (lit_at(d, n, p, "-----BEGIN"))
        return pem_match(c, p);
    return -1;
}

static int judge_secret(Ctx *c, Py_ssize_t p, int *found)
{
    Py_ssize_t e = secret_match(c, p);
    if (e == -2)
        return 2;
    if (e < 0)
        return 0;
    /* inside a longer word ("task-..."): not a key prefix */
    if (p > 0 && u_isword(c, p - 1) && !lit_at(c->d, c->n, p, "-----") && !lit_at(c->d, c->n, p, "hooks."))
        return 0;
    *found = 1;
    return add_finding(c, K_SECRET, p, e);
}

static int judge_bearer(Ctx *c, Py_ssize_t p, int *found)
{
    /* (?:[Bb]earer|BEARER)\s+([A-Za-z0-9._~+/-]{16,4096}=*) */
    const unsigned char *d = c->d;
    if (!(lit_at(d, c->n, p, "Bearer") || lit_at(d, c->n, p, "bearer") || lit_at(d, c->n, p, "BEARER")))
        return 0;
    Py_ssize_t q = p + 6;
    if (!u_isspace(c, q))
        return 0;
    while (u_isspace(c, q))
        q++;
    Py_ssize_t r;
    RUN(r, q, r < q + 4097 && (ISALNUM(d[r]) || d[r] == '.' || d[r] == '_' || d[r] == '~' || d[r] == '+' || d[r] == '/' ||
                               d[r] == '-'));
    Py_ssize_t e = counted(q, r - q, 16, 4096);
    if (e < 0)
        return 0;
    while (d[e] == '=')
        e++;
    if (p > 0 && u_isword(c, p - 1))
        return 0;
    *found = 1;
    return add_finding(c, K_SECRET, q, e);
}

/* the value is an already-redacted placeholder ("[EMAIL]", maybe followed by ".!?") */
static int is_placeholder(const Ctx *c, Py_ssize_t a, Py_ssize_t b)
{
    const unsigned char *d = c->d;
    while (b > a && (d[b - 1] == '.' || d[b - 1] == '!' || d[b - 1] == '?'))
        b--;
    if (b - a < 3 || d[a] != '[' || d[b - 1] != ']')
        return 0;
    for (int k = 0; k < N_KINDS; k++)
        if (kind_len[k] == b - a - 2 && memcmp(d + a + 1, kind_upper[k], (size_t)kind_len[k]) == 0)
            return 1;
    return 0;
}

static int judge_assign(Ctx *c, Py_ssize_t p, Py_ssize_t end, int *found)
{
    const unsigned char *d = c->d;
    if (p > 0 && u_isalnum(c, p - 1))
        return 0; /* "spin: ...", "tokens=...": not the keyword on its own */
    Py_ssize_t e = assign_at(d, c->n, p);
    if (e < 0)
        return 0;
    if (d[e - 1] != ':' && d[e - 1] != '=') {
        /* "token is ..." is prose; "password is ..." is a password */
        unsigned char a = LOWER(d[p]), b = LOWER(d[p + 1]);
        if (!(a == 'p' && (b == 'a' || b == 'w' || b == 'i')))
            return 0;
    }
    /* _ASSIGN_VALUE: \s*(?:"([^"\n\x00]{1,200})"|'([^'\n\x00]{1,200})'|([^\s,;"'<>\x00]{3,200})) */
    Py_ssize_t q = e;
    while (u_isspace(c, q))
        q++;
    Py_ssize_t vs, ve;
    unsigned char ch = d[q];
    if (q >= c->n) {
        return 0;
    } else if (ch == '"' || ch == '\'') {
        Py_ssize_t r = q + 1;
        while (r < c->n && d[r] != ch && d[r] != '\n' && d[r] != 0 && r - q - 1 <= 200)
            r++;
        if (r - q - 1 < 1 || r - q - 1 > 200 || r >= c->n || d[r] != ch)
            return 0;
        vs = q + 1;
        ve = r;
    } else {
        Py_ssize_t r = q;
        while (r < c->n && r - q < 200 && !u_isspace(c, r) && d[r] != ',' && d[r] != ';' && d[r] != '"' &&
               d[r] != '\'' && d[r] != '<' && d[r] != '>' && d[r] != 0)
            r++;
        if (r - q < 3)
            return 0;
        vs = q;
        ve = r;
    }
    if (is_placeholder(c, vs, ve))
        return 0;
    *found = 1;
    return add_finding(c, K_SECRET, vs, ve);
}

/* pii._letters: a key, a bearer token or a password assignment, the first that finds something */
static int judge_letters(Ctx *c, Py_ssize_t p, Py_ssize_t e)
{
    int found = 0;
    int rc = judge_secret(c, p, &found);
    if (rc == 2)
        return call_handler(c, h_letters, p, e);
    if (rc < 0 || found)
        return rc;
    if ((rc = judge_bearer(c, p, &found)) < 0 || found)
        return rc;
    return judge_assign(c, p, e, &found);
}

/* Characters a candidate of each scan can start with (bit 1: first scan, 2: second, 4: third). */
static unsigned char starts[256];

/* The first two characters of a first-scan candidate: key prefixes, "bearer", and the keywords
 * in any case. A fast filter only: the scan then checks the whole candidate as before. */
static unsigned char pair1[128][128];

static void allow_pair(const char *two, int any_case)
{
    unsigned char a = (unsigned char)two[0], b = (unsigned char)two[1];
    pair1[a][b] = 1;
    if (any_case) {
        unsigned char A = ISLO(a) ? a - 32 : a, B = ISLO(b) ? b - 32 : b;
        pair1[A][b] = pair1[a][B] = pair1[A][B] = 1;
    }
}

static void init_starts(void)
{
    static const char *prefixes[] = {"sk", "AK", "AS", "AB", "AC", "AI", "gh", "gi", "xo", "ho", "rk",
                                     "wh", "ya", "GO", "ey", "--", "Be", "be", "BE", NULL};
    static const char *keywords[] = {"cl", "ap", "ac", "au", "pa", "pw", "pi", "se", "to", NULL};
    for (int i = 0; prefixes[i]; i++)
        allow_pair(prefixes[i], 0);
    for (int i = 0; keywords[i]; i++)
        allow_pair(keywords[i], 1);
    const char *first = "sAgxhrwyGe-Bbc" "CaApPsStT";
    for (const char *q = first; *q; q++)
        starts[(unsigned char)*q] |= 1;
    for (const char *q = "@[({< \t\n"; *q; q++)
        starts[(unsigned char)*q] |= 2;
    starts['\t'] |= 2;
    starts['\n'] |= 2;
    for (int ch = 0; ch < 128; ch++)
        if (ISUP(ch) || ISHEX(ch) || ch == ':' || ch == '+' || ch == '(')
            starts[ch] |= 4;
}

static int scan_letters(Ctx *c)
{
    const unsigned char *d = c->d;
    Py_ssize_t n = c->n, p = 0;
    while (p < n) {
        unsigned char ch = d[p], ch2 = d[p + 1];
        if (!(starts[ch] & 1) || ch2 >= 128 || !pair1[ch][ch2]) {
            p++;
            continue;
        }
        Py_ssize_t e = secret_prefix(d, n, p);
        if (e < 0 && (ch == 'B' || ch == 'b'))
            e = bearer_at(d, n, p);
        int is_assign = 0;
        if (e < 0) {
            e = assign_at(d, n, p);
            is_assign = e >= 0;
        }
        if (e < 0) {
            p++;
            continue;
        }
        (void)is_assign;
        if (judge_letters(c, p, e) < 0)
            return -1;
        p = e;
    }
    return 0;
}

/* _DOT at q: its end, or -1 */
static Py_ssize_t obf_dot(const unsigned char *d, Py_ssize_t n, Py_ssize_t q)
{
    Py_ssize_t s = q;
    while (ISSPTAB(d[s]))
        s++;
    unsigned char ch = d[s];
    if (ch == '.') {
        s++;
        while (ISSPTAB(d[s]))
            s++;
        return s;
    }
    if (ch == '[' || ch == '(' || ch == '{' || ch == '<') {
        s++;
        while (ISSPTAB(d[s]))
            s++;
        if (!ci_lit_at(d, n, s, "dot", 3))
            return -1;
        s += 3;
        while (ISSPTAB(d[s]))
            s++;
        ch = d[s];
        if (!(ch == ']' || ch == ')' || ch == '}' || ch == '>'))
            return -1;
        s++;
        while (ISSPTAB(d[s]))
            s++;
        return s;
    }
    if (s > q && ci_lit_at(d, n, s, "dot", 3) && ISSPTAB(d[s + 3])) {
        s += 3;
        while (ISSPTAB(d[s]))
            s++;
        return s;
    }
    return -1;
}

#define ISLABEL(c) (ISALNUM(c) || (c) == '-')

/* the first top-level domain (pii._TLDS order) that starts the label at a, or 0 */
static int tld_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t a)
{
    for (int i = 0; i < n_tlds; i++)
        if (ci_lit_at(d, n, a, tlds[i], tld_len[i]))
            return tld_len[i];
    return 0;
}

/* the email_obf candidate at p: its end, or -1 */
static Py_ssize_t email_obf_at(const unsigned char *d, Py_ssize_t n, Py_ssize_t p)
{
    unsigned char ch = d[p];
    Py_ssize_t s;
    if (ch == '[' || ch == '(' || ch == '{' || ch == '<') {
        s = p + 1;
        while (ISSPTAB(d[s]))
            s++;
        if (!ci_lit_at(d, n, s, "at", 2))
            return -1;
        s += 2;
        while (ISSPTAB(d[s]))
            s++;
        ch = d[s];
        if (!(ch == ']' || ch == ')' || ch == '}' || ch == '>'))
            return -1;
        s++;
        while (ISSPTAB(d[s]))
            s++;
    } else if (ch == ' ' || ch == '\t' || ch == '\n') {
        s = p + 1;
        if (ci_lit_at(d, n, s, "at", 2))
            s += 2;
        else if (d[s] == '@')
            s += 1;
        else
            return -1;
        if (!ISSPTAB(d[s]))
            return -1;
        while (ISSPTAB(d[s]))
            s++;
    } else {
        return -1;
    }
    if (!ISALNUM(d[s]))
        return -1;
    /* label0, then (DOT label)* as far as it goes; the last label that starts with a TLD ends it */
    Py_ssize_t q = s;
    while (ISLABEL(d[q]))
        q++;
    Py_ssize_t best = -1;
    for (;;) {
        Py_ssize_t a = obf_dot(d, n, q);
        if (a < 0 || !ISLABEL(d[a]))
            break;
        int t = tld_at(d, n, a);
        if (t)
            best = a + t;
        q = a;
        while (ISLABEL(d[q]))
            q++;
    }
    return best;
}

#define ISASPACE(ch) ((ch) == ' ' || ((ch) >= '\t' && (ch) <= '\r') || ((ch) >= 0x1c && (ch) <= 0x1f))
#define ISLOCAL(ch) (ISWORD(ch) || (ch) == '+' || (ch) == '%' || (ch) == '-')

/* pii._email_obf for the candidate d[start:end]: the separator is known to match there */
static int judge_email_obf(Ctx *c, Py_ssize_t start, Py_ssize_t end)
{
    const unsigned char *d = c->d;
    Py_ssize_t n = c->n;
    /* the separator again, to where the first label starts */
    Py_ssize_t s = start + 1;
    if (d[start] == '[' || d[start] == '(' || d[start] == '{' || d[start] == '<') {
        while (ISSPTAB(d[s]))
            s++;
        s += 2;
        while (ISSPTAB(d[s]))
            s++;
        s++;
        while (ISSPTAB(d[s]))
            s++;
    } else {
        s += d[s] == '@' ? 1 : 2;
        while (ISSPTAB(d[s]))
            s++;
    }
    /* the labels as far as the chain goes (each after its _DOT); where it stops */
    Py_ssize_t ls[8], le[8];
    int nl = 0;
    Py_ssize_t q = s;
    while (ISLABEL(d[q]))
        q++;
    Py_ssize_t l0 = q - s, stop = q;
    for (;;) {
        Py_ssize_t a = obf_dot(d, n, q);
        if (a < 0 || !ISLABEL(d[a]))
            break;
        q = a;
        while (ISLABEL(d[q]))
            q++;
        if (nl < 8) {
            ls[nl] = a;
            le[nl] = q;
            nl++;
        }
        stop = q;
        if (nl == 8)
            break;
    }
    /* Unicode case folding, \w and \s in pii.py's patterns: let pii.py judge non-ASCII */
    if (nonascii(c, start - 160, start) || nonascii(c, start, (stop > end ? stop : end) + 1))
        return call_handler(c, h_emails, start, end);
    /* _EMAIL_OBFUSCATED: label0 of at most 63, up to six more labels of at most 63, then a TLD
     * that is the whole next label, followed by no word character or '-' */
    if (l0 > 63)
        return 0;
    int usable = 0;
    while (usable < nl && usable < 6 && le[usable] - ls[usable] <= 63)
        usable++;
    Py_ssize_t pend = -1;
    for (int k = usable; k >= 0 && pend < 0; k--) {
        if (k >= nl)
            continue;
        Py_ssize_t a = ls[k], len = le[k] - ls[k];
        for (int t = 0; t < n_tlds; t++)
            if (tld_len[t] == len && ci_lit_at(d, n, a, tlds[t], len)) {
                if (d[le[k]] != '_')
                    pend = le[k];
                break;
            }
    }
    if (pend < 0)
        return 0;
    /* _LOCAL_OBFUSCATED_REVERSED on the 160 characters before, read backwards */
    Py_ssize_t w = start < 160 ? start : 160, i = 0, j;
#define R(k) d[start - 1 - (k)]
#define WORD_RUN(from, out)                                                                                            \
    do {                                                                                                               \
        Py_ssize_t _k = (from);                                                                                        \
        while (_k < w && _k - (from) < 64 && ISLOCAL(R(_k)))                                                          \
            _k++;                                                                                                      \
        out = _k;                                                                                                      \
    } while (0)
    while (i < w && ISASPACE(R(i)))
        i++;
    if (i > 3 || i >= w || !ISLOCAL(R(i)))
        return 0;
    WORD_RUN(i, i);
    for (int g = 0; g < 4; g++) {
        Py_ssize_t next = -1;
        /* \s*\.\s* */
        j = i;
        while (j < w && ISASPACE(R(j)))
            j++;
        if (j < w && R(j) == '.') {
            j++;
            while (j < w && ISASPACE(R(j)))
                j++;
            if (j < w && ISLOCAL(R(j)))
                WORD_RUN(j, next);
        }
        /* \s*[\])}>]\s*tod\s*[\[({<]\s* */
        if (next < 0) {
            j = i;
            while (j < w && ISASPACE(R(j)))
                j++;
            if (j < w && (R(j) == ']' || R(j) == ')' || R(j) == '}' || R(j) == '>')) {
                j++;
                while (j < w && ISASPACE(R(j)))
                    j++;
                if (j + 3 <= w && LOWER(R(j)) == 't' && LOWER(R(j + 1)) == 'o' && LOWER(R(j + 2)) == 'd') {
                    j += 3;
                    while (j < w && ISASPACE(R(j)))
                        j++;
                    if (j < w && (R(j) == '[' || R(j) == '(' || R(j) == '{' || R(j) == '<')) {
                        j++;
                        while (j < w && ISASPACE(R(j)))
                            j++;
                        if (j < w && ISLOCAL(R(j)))
                            WORD_RUN(j, next);
                    }
                }
            }
        }
        /* \s+tod\s+ */
        if (next < 0) {
            j = i;
            while (j < w && ISASPACE(R(j)))
                j++;
            if (j > i && j + 3 <= w && LOWER(R(j)) == 't' && LOWER(R(j + 1)) == 'o' && LOWER(R(j + 2)) == 'd') {
                Py_ssize_t k = j + 3;
                while (k < w && ISASPACE(R(k)))
                    k++;
                if (k > j + 3 && k < w && ISLOCAL(R(k)))
                    WORD_RUN(k, next);
            }
        }
        if (next < 0)
            break;
        i = next;
    }
#undef WORD_RUN
#undef R
    /* prose, not a name: "I work at example.com" */
    Py_ssize_t a = start - i, b = start;
    while (a < b && ISASPACE(d[a]))
        a++;
    while (b > a && ISASPACE(d[b - 1]))
        b--;
    for (int k = 0; k < n_prose; k++) {
        if (prose_len[k] != b - a)
            continue;
        Py_ssize_t m = 0;
        while (m < b - a && LOWER(d[a + m]) == (unsigned char)prose[k][m])
            m++;
        if (m == b - a)
            return 0;
    }
    return add_finding(c, K_EMAIL, start - i, pend);
}

static int scan_emails(Ctx *c)
{
    const unsigned char *d = c->d;
    Py_ssize_t n = c->n, p = 0;
    while (p < n) {
        unsigned char ch = d[p];
        if (!(starts[ch] & 2)) {
            p++;
            continue;
        }
        if (ch == '@') {
            /* @[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\.[A-Za-z][A-Za-z]+ */
            Py_ssize_t q = p + 1;
            if (ISALNUM(d[q])) {
                while (ISLABEL(d[q]))
                    q++;
                Py_ssize_t best = -1;
                while (d[q] == '.' && ISLABEL(d[q + 1])) {
                    Py_ssize_t a = q + 1;
                    if (ISAL(d[a]) && ISAL(d[a + 1])) {
                        Py_ssize_t b = a + 2;
                        while (ISAL(d[b]))
                            b++;
                        best = b;
                    }
                    q = a;
                    while (ISLABEL(d[q]))
                        q++;
                }
                if (best > 0) {
                    /* the [A-Za-z0-9.-] run the plain-address check may read */
                    Py_ssize_t r = p + 1;
                    while (ISLABEL(d[r]) || d[r] == '.')
                        r++;
                    if (judge_email(c, p, r) < 0)
                        return -1;
                    p = best;
                    continue;
                }
            }
            p++;
            continue;
        }
        if (ch == '[' || ch == '(' || ch == '{' || ch == '<' || ch == ' ' || ch == '\t' || ch == '\n') {
            Py_ssize_t e = email_obf_at(d, n, p);
            if (e > 0) {
                if (judge_email_obf(c, p, e) < 0)
                    return -1;
                p = e;
                continue;
            }
        }
        p++;
    }
    return 0;
}

static int scan_digits(Ctx *c)
{
    const unsigned char *d = c->d;
    Py_ssize_t n = c->n, p = 0;
    Py_ssize_t hc_end = -1;     /* end of the [hex:] run holding p (valid while p < hc_end) */
    Py_ssize_t dc = -1;         /* first "::" at or after the last query, or the run end */
    Py_ssize_t v6b_fail = -1;   /* the five-groups form fails for positions before this */
    Py_ssize_t num_fail = -1;   /* a digit run too short: number fails for digits before this */
    int hc_colon = 0;           /* that run holds a ':' (no IPv6 candidate in it otherwise) */
    while (p < n) {
        unsigned char ch = d[p];
        Py_ssize_t e = -1;
        if (!(starts[ch] & 4)) {
            p++;
            continue;
        }
        /* iban: (?:CC)[0-9][0-9] ?[A-Z0-9]{4} */
        if (ISUP(ch) && ISUP(d[p + 1]) && iban_cc[ch - 'A'][d[p + 1] - 'A'] && ISD(d[p + 2]) && ISD(d[p + 3])) {
            Py_ssize_t q = p + 4;
            if (d[q] == ' ' && ISUPDIG(d[q + 1]) && ISUPDIG(d[q + 2]) && ISUPDIG(d[q + 3]) && ISUPDIG(d[q + 4]))
                e = q + 5;
            else if (ISUPDIG(d[q]) && ISUPDIG(d[q + 1]) && ISUPDIG(d[q + 2]) && ISUPDIG(d[q + 3]))
                e = q + 4;
            if (e > 0) {
                if (judge_iban(c, p) < 0)
                    return -1;
                p = e;
                continue;
            }
        }
        /* ipv6 */
        if (ISHEXCOLON(ch)) {
            if (p >= hc_end) {
                hc_end = p;
                hc_colon = 0;
                while (ISHEXCOLON(d[hc_end]))
                    hc_colon |= d[hc_end++] == ':';
            }
        }
        if (ISHEXCOLON(ch) && hc_colon) {
            if (dc < p) {
                dc = p;
                while (dc + 1 < hc_end && !(d[dc] == ':' && d[dc + 1] == ':'))
                    dc++;
                if (dc + 1 >= hc_end)
                    dc = hc_end;
            }
            if (dc + 1 < hc_end) {
                /* [hex]*(?::[hex]+)*::[hex:.]* */
                e = dc + 2;
                while (ISHEXCOLONDOT(d[e]))
                    e++;
            } else if (ISHEX(ch) && p >= v6b_fail) {
                /* [hex]+:[hex]+:[hex]+:[hex]+:[hex]+:[hex:.]+ */
                Py_ssize_t q = p, first_end = -1;
                int ok = 1;
                for (int k = 0; k < 5 && ok; k++) {
                    Py_ssize_t r = q;
                    while (ISHEX(d[r]))
                        r++;
                    if (k == 0)
                        first_end = r;
                    ok = r > q && d[r] == ':';
                    q = r + 1;
                }
                if (ok && ISHEXCOLONDOT(d[q])) {
                    e = q;
                    while (ISHEXCOLONDOT(d[e]))
                        e++;
                } else {
                    v6b_fail = first_end;
                }
            }
            if (e > 0) {
                if (call_handler(c, h_digits, p, e) < 0)
                    return -1;
                p = e;
                continue;
            }
        }
        /* number: [+(]?[0-9](?:[\-. ()/]*[0-9]){8}(?:[0-9\-. ()/]*[0-9])?\)? */
        Py_ssize_t q = -1;
        if (ISD(ch))
            q = p;
        else if ((ch == '+' || ch == '(') && ISD(d[p + 1]))
            q = p + 1;
        if (q >= 0 && q >= num_fail) {
            Py_ssize_t r = q, last = q;
            Py_ssize_t digits = 0;
            while (ISD(d[r]) || ISNUMSEP(d[r])) {
                if (ISD(d[r])) {
                    digits++;
                    last = r;
                }
                r++;
            }
            if (digits >= 9) {
                e = last + 1;
                if (d[e] == ')')
                    e++;
                if (judge_number(c, p, e) < 0)
                    return -1;
                p = e;
                continue;
            }
            num_fail = r;
        }
        p++;
    }
    return 0;
}

static int scan_ipv4(Ctx *c)
{
    const unsigned char *d = c->d;
    Py_ssize_t n = c->n, p = 0;
    while (p < n) {
        if (!ISD(d[p])) {
            p++;
            continue;
        }
        /* [0-9]+\.[0-9]+\.[0-9]+\.[0-9]+ from the start of this digit run */
        Py_ssize_t q = p, first = -1;
        int ok = 1;
        for (int k = 0; k < 4 && ok; k++) {
            Py_ssize_t r = q;
            while (ISD(d[r]))
                r++;
            if (k == 0)
                first = r;
            ok = r > q && (k == 3 || d[r] == '.');
            q = k == 3 ? r : r + 1;
        }
        if (ok) {
            if (judge_ipv4(c, p, q) < 0)
                return -1;
            p = q;
        } else {
            p = first;
        }
    }
    return 0;
}

/* ================================================================================================
 * Entry point
 * ============================================================================================== */

static int cmp_fnd(const void *a, const void *b)
{
    const Fnd *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static PyObject *make_finding(int kind, Py_ssize_t s, Py_ssize_t e)
{
    PyObject *f = finding_type->tp_alloc(finding_type, 3);
    if (!f)
        return NULL;
    PyObject *ps = PyLong_FromSsize_t(s), *pe = PyLong_FromSsize_t(e);
    if (!ps || !pe) {
        Py_XDECREF(ps);
        Py_XDECREF(pe);
        Py_DECREF(f);
        return NULL;
    }
    Py_INCREF(kind_names[kind]);
    PyTuple_SET_ITEM(f, 0, kind_names[kind]);
    PyTuple_SET_ITEM(f, 1, ps);
    PyTuple_SET_ITEM(f, 2, pe);
    return f;
}

static PyObject *find_many(PyObject *self, PyObject *arg)
{
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_pii_fast is not configured (configure() was not called or failed)");
        return NULL;
    }
    if (PyInterpreterState_Get() != owner) {
        PyErr_SetString(PyExc_RuntimeError, "_pii_fast is configured by another interpreter");
        return NULL;
    }
    /* A snapshot of our own: the handlers run Python code, which may change the caller's list
     * (or let another thread change it); a tuple is immutable, and a tuple argument is reused. */
    PyObject *seq = PySequence_Tuple(arg);
    if (!seq)
        return NULL;
    Py_ssize_t m = PyTuple_GET_SIZE(seq);
    PyObject **items = &PyTuple_GET_ITEM(seq, 0);
    PyObject *sep = separator; /* a configure() during the call may replace it */
    Py_INCREF(sep);
    PyObject *result = NULL;
    Ctx c;
    memset(&c, 0, sizeof(c));
    unsigned char *buf = NULL;

    for (Py_ssize_t i = 0; i < m; i++)
        if (!PyUnicode_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "expected str, got %s", Py_TYPE(items[i])->tp_name);
            goto out;
        }
    result = PyList_New(m);
    if (!result)
        goto out;
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *l = PyList_New(0);
        if (!l) {
            Py_CLEAR(result);
            goto out;
        }
        PyList_SET_ITEM(result, i, l);
    }
    if (m == 0)
        goto out;
    c.joined = PyUnicode_Join(sep, seq);
    if (!c.joined) {
        Py_CLEAR(result);
        goto out;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(c.joined);
    buf = PyMem_Malloc(n + 16);
    if (!buf) {
        PyErr_NoMemory();
        Py_CLEAR(result);
        goto out;
    }
    memset(buf + n, 0, 16);
    c.all_ascii = PyUnicode_IS_ASCII(c.joined);
    c.jkind = PyUnicode_KIND(c.joined);
    c.jdata = PyUnicode_DATA(c.joined);
    if (c.all_ascii) {
        memcpy(buf, PyUnicode_DATA(c.joined), n);
    } else {
        int kind = PyUnicode_KIND(c.joined);
        const void *src = PyUnicode_DATA(c.joined);
        Py_UCS4 nmax = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 ch = PyUnicode_READ(kind, src, i);
            if (ch < 0x80) {
                buf[i] = (unsigned char)ch;
            } else if (ch < 0x10000 && norm_table[ch]) {
                buf[i] = norm_table[ch];
                c.mapped = 1;
                if (c.nmpos == c.capmpos) {
                    Py_ssize_t cap = c.capmpos ? 2 * c.capmpos : 64;
                    Py_ssize_t *mp = PyMem_Realloc(c.mpos, cap * sizeof(Py_ssize_t));
                    if (!mp) {
                        PyErr_NoMemory();
                        Py_CLEAR(result);
                        goto out;
                    }
                    c.mpos = mp;
                    c.capmpos = cap;
                }
                c.mpos[c.nmpos++] = i;
                continue; /* an ASCII character now */
            } else {
                buf[i] = 0xFF;
            }
            if (ch > nmax)
                nmax = ch;
        }
        c.nmax = nmax;
    }
    c.d = buf;
    c.n = n;
    c.out = PyList_New(0);
    if (!c.out || scan_letters(&c) < 0 || scan_emails(&c) < 0 || scan_digits(&c) < 0 || scan_ipv4(&c) < 0) {
        Py_CLEAR(result);
        goto out;
    }
    if (c.nf == 0)
        goto out;
    /* merge overlapping findings into one of the more specific kind */
    qsort(c.f, c.nf, sizeof(Fnd), cmp_fnd);
    Py_ssize_t nm = 1;
    for (Py_ssize_t i = 1; i < c.nf; i++) {
        Fnd *last = &c.f[nm - 1], *f = &c.f[i];
        if (f->start < last->end) {
            if (priority[f->kind] < priority[last->kind])
                last->kind = f->kind;
            if (f->end > last->end)
                last->end = f->end;
        } else {
            c.f[nm++] = *f;
        }
    }
    /* split per text */
    Py_ssize_t seplen = PyUnicode_GET_LENGTH(sep);
    Py_ssize_t ti = 0, off = 0, tlen = PyUnicode_GET_LENGTH(items[0]);
    for (Py_ssize_t i = 0; i < nm; i++) {
        Fnd *f = &c.f[i];
        while (ti + 1 < m && f->start >= off + tlen + seplen) {
            off += tlen + seplen;
            ti++;
            tlen = PyUnicode_GET_LENGTH(items[ti]);
        }
        Py_ssize_t e = f->end - off;
        PyObject *fo = make_finding(f->kind, f->start - off, e < tlen ? e : tlen);
        if (!fo || PyList_Append(PyList_GET_ITEM(result, ti), fo) < 0) {
            Py_XDECREF(fo);
            Py_CLEAR(result);
            goto out;
        }
        Py_DECREF(fo);
    }
out:
    PyMem_Free(buf);
    PyMem_Free(c.f);
    PyMem_Free(c.mpos);
    Py_XDECREF(c.out);
    Py_XDECREF(c.text);
    Py_XDECREF(c.joined);
    Py_DECREF(sep);
    Py_DECREF(seq);
    return result;
}

static PyObject *configure(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"normalize", "iban_lengths", "tlds", "nsn_lengths", "kinds", "priority",
                            "finding", "handlers", "separator", "placeholders", "prose_words", NULL};
    PyObject *normalize, *countries, *tld_list, *nsn, *kinds, *prio, *finding, *handlers, *sep, *phs, *words;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!OO!O!O!O!O!UO!O", names, &PyDict_Type, &normalize, &PyDict_Type, &countries, &tld_list,
                                     &PyDict_Type, &nsn, &PyTuple_Type, &kinds, &PyDict_Type, &prio, &PyType_Type,
                                     &finding, &PyTuple_Type, &handlers, &sep, &PyDict_Type, &phs, &words))
        return NULL;
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (owner && owner != interp) {
        PyErr_SetString(PyExc_ImportError, "_pii_fast is in use by another interpreter (it keeps process-wide "
                                           "tables); use the Python engine in this one");
        return NULL;
    }
    /* until everything below is checked and set, find_many() refuses to run on half-filled tables */
    configured = 0;
    if (!PyType_IsSubtype((PyTypeObject *)finding, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "finding must be a tuple type");
        return NULL;
    }
    if (PyTuple_GET_SIZE(kinds) != N_KINDS || PyTuple_GET_SIZE(handlers) != 4) {
        PyErr_SetString(PyExc_ValueError, "unexpected number of kinds or handlers");
        return NULL;
    }
    for (int i = 0; i < N_KINDS; i++) {
        PyObject *k = PyTuple_GET_ITEM(kinds, i);
        Py_ssize_t len;
        const char *name = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &len) : NULL;
        if (!name) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "kinds must be str, not %s", Py_TYPE(k)->tp_name);
            return NULL;
        }
        if (len < 1 || len >= (Py_ssize_t)sizeof(kind_upper[0]) || !PyUnicode_IS_ASCII(k)) {
            PyErr_SetString(PyExc_ValueError, "a kind is a short ASCII name");
            return NULL;
        }
    }
    if (!PyUnicode_IS_ASCII(sep) || PyUnicode_GET_LENGTH(sep) == 0) {
        PyErr_SetString(PyExc_ValueError, "the separator is a non-empty ASCII str");
        return NULL;
    }
    memset(norm_table, 0, sizeof(norm_table));
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(normalize, &pos, &key, &value)) {
        long code = PyLong_AsLong(key);
        if (code == -1 && PyErr_Occurred())
            return NULL;
        if (!PyUnicode_Check(value) || PyUnicode_GET_LENGTH(value) != 1 || PyUnicode_READ_CHAR(value, 0) >= 0x80 ||
            code < 0x80 || code >= 0x10000) {
            PyErr_SetString(PyExc_ValueError, "normalize maps a BMP character to one ASCII character");
            return NULL;
        }
        norm_table[code] = (Py_UCS1)PyUnicode_READ_CHAR(value, 0);
    }
    memset(iban_cc, 0, sizeof(iban_cc));
    PyObject *it = PyObject_GetIter(countries);
    if (!it)
        return NULL;
    while ((key = PyIter_Next(it))) {
        const char *s = PyUnicode_AsUTF8(key);
        PyObject *len = s ? PyObject_GetItem(countries, key) : NULL;
        long l = len ? PyLong_AsLong(len) : -1;
        Py_XDECREF(len);
        if (!s || strlen(s) != 2 || !ISUP((unsigned char)s[0]) || !ISUP((unsigned char)s[1]) || l < 5 || l > 34) {
            Py_DECREF(key);
            Py_DECREF(it);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "an IBAN country is two capital letters with a length");
            return NULL;
        }
        iban_cc[s[0] - 'A'][s[1] - 'A'] = (unsigned char)l;
        Py_DECREF(key);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    PyObject *tl = PySequence_Fast(tld_list, "tlds must be a sequence");
    if (!tl)
        return NULL;
    n_tlds = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(tl); i++) {
        const char *s = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(tl, i));
        if (!s || n_tlds >= MAX_TLDS || strlen(s) >= sizeof(tlds[0]) || !*s) {
            Py_DECREF(tl);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "too many or too long top-level domains");
            return NULL;
        }
        for (size_t k = 0; k <= strlen(s); k++)
            tlds[n_tlds][k] = (char)LOWER((unsigned char)s[k]);
        tld_len[n_tlds] = (int)strlen(s);
        n_tlds++;
    }
    Py_DECREF(tl);
    n_nsn = 0;
    pos = 0;
    while (PyDict_Next(nsn, &pos, &key, &value)) {
        const char *s = PyUnicode_AsUTF8(key);
        int lo, hi;
        if (!s || strlen(s) < 1 || strlen(s) > 3 || n_nsn >= MAX_NSN || !PyArg_ParseTuple(value, "ii", &lo, &hi)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "bad national number lengths");
            return NULL;
        }
        memcpy(nsn_key[n_nsn], s, strlen(s));
        nsn_keylen[n_nsn] = (int)strlen(s);
        nsn_lo[n_nsn] = lo;
        nsn_hi[n_nsn] = hi;
        n_nsn++;
    }
    for (int i = 0; i < N_KINDS; i++) {
        PyObject *k = PyTuple_GET_ITEM(kinds, i);
        PyObject *p = PyDict_GetItemWithError(prio, k);
        if (!p) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a kind has no priority");
            return NULL;
        }
        if (!PyLong_Check(p)) {
            PyErr_Format(PyExc_TypeError, "a priority must be int, not %s", Py_TYPE(p)->tp_name);
            return NULL;
        }
        int overflow;
        long pv = PyLong_AsLongAndOverflow(p, &overflow);
        if (pv == -1 && PyErr_Occurred())
            return NULL;
        if (overflow || pv < INT_MIN || pv > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "a priority is out of range");
            return NULL;
        }
        priority[i] = (int)pv;
        PyObject *ph = PyDict_GetItemWithError(phs, k);
        if (!ph || !PyUnicode_Check(ph)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a kind has no placeholder");
            return NULL;
        }
        Py_INCREF(ph);
        Py_XSETREF(placeholders[i], ph);
        Py_INCREF(k);
        Py_XSETREF(kind_names[i], k);
        Py_ssize_t len;
        const char *name = PyUnicode_AsUTF8AndSize(k, &len); /* checked above: ASCII, short */
        for (Py_ssize_t j = 0; j < len; j++)
            kind_upper[i][j] = (char)(ISLO((unsigned char)name[j]) ? name[j] - 32 : name[j]);
        kind_len[i] = (int)len;
    }
    Py_INCREF(finding);
    Py_XSETREF(finding_type, (PyTypeObject *)finding);
    PyObject **hs[4] = {&h_letters, &h_emails, &h_digits, &h_ipv4};
    for (int i = 0; i < 4; i++) {
        PyObject *h = PyTuple_GET_ITEM(handlers, i);
        Py_INCREF(h);
        Py_XSETREF(*hs[i], h);
    }
    Py_INCREF(sep);
    Py_XSETREF(separator, sep);
    PyObject *wl = PySequence_Fast(words, "prose_words must be a collection of str");
    if (!wl)
        return NULL;
    n_prose = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(wl); i++) {
        const char *w = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(wl, i));
        if (!w || n_prose >= MAX_PROSE || strlen(w) >= sizeof(prose[0])) {
            Py_DECREF(wl);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "too many or too long prose words");
            return NULL;
        }
        strcpy(prose[n_prose], w);
        prose_len[n_prose] = (int)strlen(w);
        n_prose++;
    }
    Py_DECREF(wl);
    owner = interp;
    configured = 1;
    Py_RETURN_NONE;
}

/* pii._apply over a batch: each text with its findings replaced by placeholders (the same object
 * when nothing was found), and with `with_counts` a (text, {kind: count}) pair per text. */
static PyObject *apply_many(PyObject *self, PyObject *args)
{
    PyObject *texts, *findings;
    int with_counts;
    if (!PyArg_ParseTuple(args, "OOp", &texts, &findings, &with_counts))
        return NULL;
    if (!configured || PyInterpreterState_Get() != owner) {
        PyErr_SetString(PyExc_RuntimeError, "_pii_fast is not configured in this interpreter");
        return NULL;
    }
    PyObject *ts = PySequence_Fast(texts, "expected a sequence of str");
    if (!ts)
        return NULL;
    PyObject *fs = PySequence_Fast(findings, "expected a sequence of lists");
    if (!fs) {
        Py_DECREF(ts);
        return NULL;
    }
    Py_ssize_t m = PySequence_Fast_GET_SIZE(ts);
    PyObject *result = NULL, *empty = NULL;
    if (PySequence_Fast_GET_SIZE(fs) != m) {
        PyErr_SetString(PyExc_ValueError, "texts and findings differ in length");
        goto out;
    }
    empty = PyUnicode_New(0, 0);
    result = empty ? PyList_New(m) : NULL;
    if (!result)
        goto out;
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *text = PySequence_Fast_GET_ITEM(ts, i), *fl = PySequence_Fast_GET_ITEM(fs, i);
        PyObject *red = NULL, *counts = NULL, *item;
        if (!PyUnicode_Check(text) || !PyList_Check(fl)) {
            PyErr_SetString(PyExc_TypeError, "expected str texts and lists of findings");
            goto fail;
        }
        Py_ssize_t k = PyList_GET_SIZE(fl);
        if (with_counts && !(counts = PyDict_New()))
            goto fail;
        if (k == 0) {
            Py_INCREF(text);
            red = text;
        } else {
            PyObject *parts = PyList_New(0);
            if (!parts)
                goto fail;
            Py_ssize_t pos = 0;
            for (Py_ssize_t j = 0; j < k; j++) {
                PyObject *f = PyList_GET_ITEM(fl, j);
                if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 3) {
                    PyErr_SetString(PyExc_TypeError, "a finding is a (kind, start, end) tuple");
                    Py_DECREF(parts);
                    goto fail;
                }
                PyObject *kind = PyTuple_GET_ITEM(f, 0);
                Py_ssize_t s0 = PyLong_AsSsize_t(PyTuple_GET_ITEM(f, 1)), e0 = -1;
                if (!(s0 == -1 && PyErr_Occurred()))
                    e0 = PyLong_AsSsize_t(PyTuple_GET_ITEM(f, 2));
                if ((s0 == -1 || e0 == -1) && PyErr_Occurred()) {
                    Py_DECREF(parts);
                    goto fail;
                }
                if (s0 < 0 || s0 > e0 || e0 > PyUnicode_GET_LENGTH(text)) {
                    PyErr_SetString(PyExc_ValueError, "a finding is not inside its text (0 <= start <= end <= len)");
                    Py_DECREF(parts);
                    goto fail;
                }
                int kk = kind_index(kind);
                PyObject *piece = kk >= 0 ? PyUnicode_Substring(text, pos, s0 > pos ? s0 : pos) : NULL;
                if (kk < 0 && !PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "unknown kind");
                if (!piece || PyList_Append(parts, piece) < 0 || PyList_Append(parts, placeholders[kk]) < 0) {
                    Py_XDECREF(piece);
                    Py_DECREF(parts);
                    goto fail;
                }
                Py_DECREF(piece);
                if (counts) {
                    PyObject *old = PyDict_GetItemWithError(counts, kind);
                    if (!old && PyErr_Occurred()) {
                        Py_DECREF(parts);
                        goto fail;
                    }
                    long v = old ? PyLong_AsLong(old) + 1 : 1;
                    PyObject *nv = PyLong_FromLong(v);
                    if (!nv || PyDict_SetItem(counts, kind, nv) < 0) {
                        Py_XDECREF(nv);
                        Py_DECREF(parts);
                        goto fail;
                    }
                    Py_DECREF(nv);
                }
                pos = e0;
            }
            PyObject *tail = PyUnicode_Substring(text, pos, PyUnicode_GET_LENGTH(text));
            if (!tail || PyList_Append(parts, tail) < 0) {
                Py_XDECREF(tail);
                Py_DECREF(parts);
                goto fail;
            }
            Py_DECREF(tail);
            red = PyUnicode_Join(empty, parts);
            Py_DECREF(parts);
            if (!red)
                goto fail;
        }
        if (with_counts) {
            item = PyTuple_Pack(2, red, counts);
            Py_DECREF(red);
            Py_DECREF(counts);
            if (!item)
                goto fail_nocleanup;
        } else {
            item = red;
        }
        PyList_SET_ITEM(result, i, item);
        continue;
    fail:
        Py_XDECREF(red);
        Py_XDECREF(counts);
    fail_nocleanup:
        Py_CLEAR(result);
        goto out;
    }
out:
    Py_XDECREF(empty);
    Py_DECREF(ts);
    Py_DECREF(fs);
    return result;
}

static PyMethodDef methods[] = {
    {"apply_many", apply_many, METH_VARARGS,
     "apply_many(texts, findings, with_counts) -> redacted texts (with counts), as pii._apply."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Set the tables and the Python handlers, from pii.py (once, at import)."},
    {"find_many", find_many, METH_O, "find_many(texts) -> list of lists of Finding, as pii.find_pii_many."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pii_fast", "Compiled engine of the PII detector.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__pii_fast(void)
{
    init_starts();
    return PyModule_Create(&module);
}
