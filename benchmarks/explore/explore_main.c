/*
 * attn-explore: libattn's demo. It answers the library's question in numbers: how far do Linformer
 * and Nystrom decouple attention's cost from N, and at what error against the best possible
 * (Eckart-Young) at the same rank; is trained attention low rank; and what do low-rank, Kronecker
 * and memory recurrences cost and keep at equal state size. Run `attn-explore --help`.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include "explore.h"

#ifndef XP_MODELS_DIRS
#define XP_MODELS_DIRS "models"
#endif

static const char usage[] =
    "usage: attn-explore [OPTION]...\n"
    "libattn's demo: three parts, each printed as tables (all parts by default):\n"
    "  1  attention at growing N: time, FLOPs and workspace of FULL, LINFORMER and NYSTROM, and the\n"
    "     relative Frobenius error of each one's attention matrix against FULL's, next to the\n"
    "     Eckart-Young optimum at the same rank, on the shipped trained model and on random weights\n"
    "  2  the spectrum of the trained model's attention matrices per layer and head (rank_90, rank_99,\n"
    "     stable and effective rank, the normalized cumulative singular values), against random weights\n"
    "  3  recurrent capacity at equal state size: DENSE, LOW_RANK, KRONECKER and the memory network\n"
    "     (parameters, FLOPs and time per step, rank of the recurrent matrix), and the trained LSTM with\n"
    "     its W_hh truncated to rank r: the held-out loss it keeps\n"
    "\n"
    "options:\n"
    "  --parts LIST       which parts to run, e.g. 1,3 (default 1,2,3)\n"
    "  --sizes LIST       part 1: sequence lengths N (default 256,512,1024,2048,4096,8192; at most the\n"
    "                     16384 characters of the shipped held-out text)\n"
    "  --linformer LIST   part 1: Linformer's k (default 64,128,256)\n"
    "  --nystrom LIST     part 1: Nystrom's landmarks m (default 32,64,128)\n"
    "  --error-max N      part 1: the largest N whose attention matrices are compared with FULL's\n"
    "                     (default 4096: the h N x N matrices of every kind; 8192 adds about a minute)\n"
    "  --svd-max N        part 1: the largest N whose attention matrices get an SVD for the optimum\n"
    "                     (default 1024; an N x N SVD grows as N^3: 2048 takes seconds, 8192 minutes)\n"
    "  --ranks LIST       part 3: ranks r (default 8,16,32,64,128)\n"
    "  --hidden H         part 3: state size H of the random recurrences, even (default 256, the trained\n"
    "                     LSTM's)\n"
    "  --chars N          part 3: held-out characters the trained LSTM's loss is taken over, > 256\n"
    "                     (default all)\n"
    "  --runs N           timed runs per figure, the median is shown (default 3)\n"
    "  --seed S           random weights and inputs (default 1)\n"
    "  --threads N        OpenBLAS threads (default: as OpenBLAS is configured)\n"
    "  --models DIR       the shipped models (default: found next to the build or the installation)\n"
    "  --weights FILE     analyze your own trained model instead (safetensors, PyTorch state_dict names):\n"
    "    --family F       mha (nn.MultiheadAttention), lstm, gru, rnn_tanh or rnn_relu (nn.LSTM, ...)\n"
    "    --prefix P       the module's name prefix in the file, e.g. 'encoder.attn.' (default none)\n"
    "    --heads H        mha: its number of heads (default 1)\n"
    "                     mha runs parts 1 and 2 on random inputs; an RNN gets the spectrum of every\n"
    "                     layer's recurrent matrix and the optimum error at each --ranks r\n"
    "  --csv DIR          also write every table as DIR/<table>.csv (DIR is created); with gnuplot\n"
    "                     installed (Debian: gnuplot-nox), PNG plots of them too\n"
    "  --no-plots         no PNG plots\n"
    "  --quick            a tiny configuration (seconds; for tests)\n"
    "  --quiet            no progress line on stderr (there is none when stderr is not a terminal)\n"
    "  --help, -h         this text\n";

static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static void parse_list(const char *opt, const char *s, int64_t max, xp_list *out)
{
    char buf[512];
    if (strlen(s) >= sizeof buf)
        xp_die("%s: the list is too long", opt);
    strcpy(buf, s);
    out->n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (out->n == XP_MAX_LIST)
            xp_die("%s: at most %d values", opt, XP_MAX_LIST);
        if (!parse_int(tok, 1, max, &out->v[out->n]))
            xp_die("%s: '%s' is not an integer in 1..%lld", opt, tok, (long long)max);
        out->n++;
    }
    if (!out->n)
        xp_die("%s: an empty list", opt);
}

static xp_list list_of(int n, const int64_t *v)
{
    xp_list l = {.n = n};
    memcpy(l.v, v, (size_t)n * sizeof *v);
    return l;
}

/* The shipped models: --models, else the first of XP_MODELS_DIRS (the source tree's models/ for a
 * build, the installed data directory) that holds them. */
static const char *find_models(void)
{
    static char dir[PATH_MAX];
    const char *list = XP_MODELS_DIRS;
    while (*list) {
        const size_t len = strcspn(list, ":");
        snprintf(dir, sizeof dir, "%.*s", (int)len, list);
        char probe[PATH_MAX + 64];
        snprintf(probe, sizeof probe, "%s/char_attention.safetensors", dir);
        if (!access(probe, R_OK))
            return dir;
        list += len + (list[len] == ':');
    }
    xp_die("the shipped models were not found in %s; give --models DIR", XP_MODELS_DIRS);
}

static void parse_args(int argc, char **argv, xp_config *cfg)
{
    static const int64_t sizes[] = {256, 512, 1024, 2048, 4096, 8192}, lin[] = {64, 128, 256}, nys[] = {32, 64, 128},
                         ranks[] = {8, 16, 32, 64, 128};
    *cfg = (xp_config){.attention = true, .spectrum = true, .recurrent = true, .sizes = list_of(6, sizes),
                       .linformer_k = list_of(3, lin), .nystrom_m = list_of(3, nys), .svd_max = 1024, .error_max = 4096,
                       .ranks = list_of(5, ranks), .hidden = 256, .runs = 3, .seed = 1, .plots = true,
                       .progress = isatty(2), .prefix = "", .heads = 1};
    /* --quick sets the defaults the other options then change, wherever it stands */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--quick")) {
            static const int64_t qs[] = {64, 128}, ql[] = {16, 32}, qn[] = {8, 16}, qr[] = {4, 16};
            cfg->sizes = list_of(2, qs), cfg->linformer_k = list_of(2, ql), cfg->nystrom_m = list_of(2, qn);
            cfg->ranks = list_of(2, qr), cfg->svd_max = 128, cfg->error_max = 128, cfg->hidden = 16, cfg->runs = 1;
            cfg->text_chars = 2 * XP_TRAINED_CONTEXT + 1;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has_value = i + 1 < argc;
        const char *v = has_value ? argv[i + 1] : NULL;
        int64_t n;
#define VALUE()                                                                                                        \
    do {                                                                                                               \
        if (!has_value)                                                                                                \
            xp_die("%s needs a value (see --help)", a);                                                               \
        i++;                                                                                                           \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(a, "--quick")) {
            /* applied above */
        } else if (!strcmp(a, "--quiet")) {
            cfg->progress = false;
        } else if (!strcmp(a, "--no-plots")) {
            cfg->plots = false;
        } else if (!strcmp(a, "--parts")) {
            VALUE();
            xp_list p;
            parse_list(a, v, 3, &p);
            cfg->attention = cfg->spectrum = cfg->recurrent = false;
            for (int k = 0; k < p.n; k++)
                *(p.v[k] == 1 ? &cfg->attention : p.v[k] == 2 ? &cfg->spectrum : &cfg->recurrent) = true;
        } else if (!strcmp(a, "--sizes")) {
            VALUE();
            parse_list(a, v, 1 << 20, &cfg->sizes);
        } else if (!strcmp(a, "--linformer")) {
            VALUE();
            parse_list(a, v, 1 << 20, &cfg->linformer_k);
        } else if (!strcmp(a, "--nystrom")) {
            VALUE();
            parse_list(a, v, 1 << 20, &cfg->nystrom_m);
        } else if (!strcmp(a, "--ranks")) {
            VALUE();
            parse_list(a, v, 1 << 20, &cfg->ranks);
        } else if (!strcmp(a, "--svd-max") || !strcmp(a, "--error-max") || !strcmp(a, "--hidden") || !strcmp(a, "--chars") ||
                   !strcmp(a, "--runs") || !strcmp(a, "--seed") || !strcmp(a, "--threads") ||
                   !strcmp(a, "--heads")) {
            VALUE();
            const int64_t max = !strcmp(a, "--runs") ? 64 : !strcmp(a, "--threads") ? 1024 : INT64_MAX / 2;
            if (!parse_int(v, !strcmp(a, "--seed") ? 0 : 1, max, &n))
                xp_die("%s: '%s' is not an integer in %d..%lld", a, v, !strcmp(a, "--seed") ? 0 : 1, (long long)max);
            if (!strcmp(a, "--svd-max"))
                cfg->svd_max = n;
            else if (!strcmp(a, "--error-max"))
                cfg->error_max = n;
            else if (!strcmp(a, "--hidden") && (n < 4 || n % 2))
                xp_die("--hidden: %lld is not an even number >= 4 (the memory network gets half of it)", (long long)n);
            else if (!strcmp(a, "--hidden"))
                cfg->hidden = n;
            else if (!strcmp(a, "--chars") && n <= XP_TRAINED_CONTEXT)
                xp_die("--chars: %lld is less than one window of %d characters and the one after it", (long long)n,
                       XP_TRAINED_CONTEXT);
            else if (!strcmp(a, "--chars"))
                cfg->text_chars = n;
            else if (!strcmp(a, "--runs"))
                cfg->runs = (int)n;
            else if (!strcmp(a, "--seed"))
                cfg->seed = (uint64_t)n;
            else if (!strcmp(a, "--threads"))
                cfg->threads = (int)n;
            else
                cfg->heads = n;
        } else if (!strcmp(a, "--models") || !strcmp(a, "--weights") || !strcmp(a, "--family") ||
                   !strcmp(a, "--prefix") || !strcmp(a, "--csv")) {
            VALUE();
            *(!strcmp(a, "--models")    ? &cfg->models_dir
              : !strcmp(a, "--weights") ? &cfg->weights
              : !strcmp(a, "--family")  ? &cfg->family
              : !strcmp(a, "--prefix")  ? &cfg->prefix
                                        : &cfg->csv_dir) = v;
        } else {
            xp_die("unknown option '%s' (see --help)", a);
        }
#undef VALUE
    }
    if (cfg->family && !cfg->weights)
        xp_die("--family is for --weights FILE");
    if (cfg->weights && !cfg->family)
        xp_die("--weights needs --family (mha, lstm, gru, rnn_tanh or rnn_relu)");
    if (!cfg->models_dir && !cfg->weights)
        cfg->models_dir = find_models();
    if (cfg->csv_dir && mkdir(cfg->csv_dir, 0777) && errno != EEXIST)
        xp_die("--csv: cannot create %s: %s", cfg->csv_dir, strerror(errno));
}

int main(int argc, char **argv)
{
    xp_config cfg;
    parse_args(argc, argv, &cfg);
    if (cfg.threads)
        openblas_set_num_threads(cfg.threads);
    const double t0 = xp_now();
    printf("attn-explore, libattn %s (%s), OpenBLAS %d threads\n\n", attn_version_string(), attn_build_info(),
           openblas_get_num_threads());
    if (cfg.weights) {
        xp_user_weights(&cfg);
    } else {
        if (cfg.attention)
            xp_part_attention(&cfg);
        if (cfg.spectrum)
            xp_part_spectrum(&cfg);
        if (cfg.recurrent)
            xp_part_recurrent(&cfg);
    }
    xp_plots(&cfg);
    printf("(%.1f s)\n", xp_now() - t0);
    return 0;
}
