/* The shipped character-level models (models/, written by models/train.py): their weights, their
 * vocabulary, the held-out text, and the input of the attention model's first layer computed here
 * for any length, so that trained attention is analyzed on real text without Python. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"

const float *xp_tensor(attn_params *p, const char *name, int64_t *count)
{
    attn_tensor_info info;
    if (attn_params_find(p, name, &info) != ATTN_OK)
        xp_die("the model has no tensor '%s'", name);
    if (count)
        *count = info.count;
    /* attn_params_get copies; the demo keeps one copy per tensor it reads, freed with the model */
    float *copy = xp_alloc((size_t)info.count * sizeof *copy);
    xp_check(attn_params_get(p, name, copy, info.count), name);
    return copy;
}

void xp_copy_params(attn_params *to, attn_params *from, const char *from_prefix, const char *const *names)
{
    for (int64_t i = 0; names ? names[i] != NULL : i < attn_params_count(to); i++) {
        attn_tensor_info info;
        if (names)
            xp_check(attn_params_find(to, names[i], &info), names[i]);
        else
            xp_check(attn_params_info(to, i, &info), "attn_params_info");
        char name[512];
        snprintf(name, sizeof name, "%s%s", from_prefix, info.name);
        int64_t count;
        const float *data = xp_tensor(from, name, &count);
        if (count != info.count)
            xp_die("tensor '%s' has %lld values, '%s' expects %lld", name, (long long)count, info.name,
                   (long long)info.count);
        xp_check(attn_params_set(to, info.name, data, count), name);
        free((void *)data);
    }
}

/* Decodes UTF-8 text into code points; returns how many. */
static int64_t decode_utf8(const unsigned char *s, int64_t n, uint32_t *out)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; k++) {
        const unsigned c = s[i];
        const int len = c < 0x80 ? 1 : c >> 5 == 6 ? 2 : c >> 4 == 14 ? 3 : c >> 3 == 30 ? 4 : 0;
        if (!len || i + len > n)
            xp_die("models/heldout.txt is not valid UTF-8 (byte %lld)", (long long)i);
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (int j = 1; j < len; j++)
            cp = cp << 6 | (s[i + j] & 0x3Fu);
        out[k] = cp;
        i += len;
    }
    return k;
}

static char *read_file(const char *path, int64_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        xp_die("cannot open %s (the shipped models: see --models)", path);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xp_alloc((size_t)n + 1);
    if (n < 0 || fread(buf, 1, (size_t)n, f) != (size_t)n)
        xp_die("cannot read %s", path);
    fclose(f);
    *len = n;
    return buf;
}

/* The character ids of the held-out text in the model's vocabulary. */
static int64_t *text_ids(const xp_text_model *m, int64_t *n)
{
    uint32_t *cps = xp_alloc((size_t)(m->text_len + 1) * sizeof *cps);
    *n = decode_utf8((const unsigned char *)m->text, m->text_len, cps);
    int64_t *ids = xp_alloc((size_t)(*n + 1) * sizeof *ids);
    for (int64_t i = 0; i < *n; i++) {
        ids[i] = -1;
        for (int64_t v = 0; v < m->vocab && ids[i] < 0; v++)
            if ((uint32_t)m->codepoints[v] == cps[i])
                ids[i] = v;
        if (ids[i] < 0)
            xp_die("models/heldout.txt: character U+%04X is not in the model's vocabulary", (unsigned)cps[i]);
    }
    free(cps);
    return ids;
}

void xp_text_model_load(const xp_config *cfg, xp_text_model *m)
{
    memset(m, 0, sizeof *m);
    char path[4096];
    snprintf(path, sizeof path, "%s/char_attention.safetensors", cfg->models_dir);
    xp_check(attn_params_open(&m->weights, path, NULL), "loading the trained attention model");
    attn_tensor_info info;
    xp_check(attn_params_find(m->weights, "embed.weight", &info), path);
    const int64_t embed_rows = info.shape[0];
    m->embed_dim = info.shape[1];
    for (char name[64];; m->layers++) {
        snprintf(name, sizeof name, "layers.%lld.attn.in_proj_weight", (long long)m->layers);
        if (attn_params_find(m->weights, name, &info) != ATTN_OK)
            break;
    }
    m->heads = XP_TRAINED_HEADS;
    m->context = XP_TRAINED_CONTEXT;
    m->causal = XP_TRAINED_CAUSAL;
    if (m->layers < 1 || m->embed_dim % m->heads)
        xp_die("%s is not the model this demo was built for", path);
    const float *vocab = xp_tensor(m->weights, "vocab", &m->vocab);
    /* embed.weight: a row per character, and one more for the MASK token of the training objective */
    if (m->vocab > (int64_t)(sizeof m->codepoints / sizeof *m->codepoints) ||
        (embed_rows != m->vocab && embed_rows != m->vocab + 1))
        xp_die("%s: vocab has %lld entries, embed.weight %lld rows", path, (long long)m->vocab, (long long)embed_rows);
    memcpy(m->codepoints, vocab, (size_t)m->vocab * sizeof *vocab);
    free((void *)vocab);
    snprintf(path, sizeof path, "%s/heldout.txt", cfg->models_dir);
    m->text = read_file(path, &m->text_len);
    int64_t n;
    free(text_ids(m, &n)); /* every character must map */
    m->text_len = n;
}

void xp_text_model_free(xp_text_model *m)
{
    attn_params_close(m->weights);
    free(m->text);
    memset(m, 0, sizeof *m);
}

int64_t *xp_text_ids(const xp_text_model *m, int64_t *n) { return text_ids(m, n); }

void xp_layer0_input(const xp_text_model *m, int64_t n, float *x)
{
    const int64_t e = m->embed_dim;
    int64_t chars;
    int64_t *ids = text_ids(m, &chars);
    if (n > chars)
        xp_die("the held-out text has %lld characters, %lld asked", (long long)chars, (long long)n);
    const float *embed = xp_tensor(m->weights, "embed.weight", NULL);
    const float *gain = xp_tensor(m->weights, "layers.0.norm1.weight", NULL);
    const float *bias = xp_tensor(m->weights, "layers.0.norm1.bias", NULL);
    for (int64_t i = 0; i < n; i++) {
        float *row = x + i * e;
        /* models/train.py's positions: pe[i, 2k] = sin(a), pe[i, 2k+1] = cos(a), a = i / 10000^(2k/E),
         * in double, rounded once to float */
        for (int64_t k = 0; k < e / 2; k++) {
            const double a = (double)i / pow(10000.0, (double)(2 * k) / (double)e);
            row[2 * k] = embed[ids[i] * e + 2 * k] + (float)sin(a);
            row[2 * k + 1] = embed[ids[i] * e + 2 * k + 1] + (float)cos(a);
        }
        /* nn.LayerNorm (eps 1e-5) */
        double mean = 0.0, var = 0.0;
        for (int64_t j = 0; j < e; j++)
            mean += row[j];
        mean /= (double)e;
        for (int64_t j = 0; j < e; j++)
            var += (row[j] - mean) * (row[j] - mean);
        const double inv = 1.0 / sqrt(var / (double)e + 1e-5);
        for (int64_t j = 0; j < e; j++)
            row[j] = (float)((row[j] - mean) * inv) * gain[j] + bias[j];
    }
    free(ids);
    free((void *)embed), free((void *)gain), free((void *)bias);
}
