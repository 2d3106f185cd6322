/*
 * replay_main.c: runs a fuzz target's LLVMFuzzerTestOneInput once over every file of the given
 * directories (or files), so that the seed corpus and the saved crashers run in the ordinary test
 * suite, built by any compiler and under any sanitizer, without libFuzzer.
 *
 *   fuzz_replay_<target> DIR_OR_FILE...
 *
 * Files run in name order (readdir's order differs between file systems); names starting with '.'
 * are skipped (.gitkeep keeps an empty regressions directory in git). A broken invariant aborts
 * inside the target; a missing path or an unreadable file is exit status 2; no input at all is 1,
 * so that a wrong path in the test's registration shows.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 2;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger)
                free(buf);
            buf = bigger;
        }
    }
    int err = ferror(f) || !buf;
    fclose(f);
    if (err) {
        free(buf);
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 2;
    }
    /* A copy of exactly n bytes, as libFuzzer passes it, so that ASan sees reads past the end. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return 2;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    long inputs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s does not exist\n", argv[i]);
            return 2;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]))
                return 2;
            inputs++;
            continue;
        }
        DIR *dir = opendir(argv[i]);
        if (!dir) {
            fprintf(stderr, "replay: cannot open directory %s\n", argv[i]);
            return 2;
        }
        char **names = NULL;
        size_t count = 0, cap = 0;
        for (struct dirent *e; (e = readdir(dir));) {
            if (e->d_name[0] == '.')
                continue;
            if (count == cap) {
                char **more = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
                if (!more)
                    return 2;
                names = more;
            }
            if (!(names[count++] = strdup(e->d_name)))
                return 2;
        }
        closedir(dir);
        if (count)
            qsort(names, count, sizeof *names, by_name);
        for (size_t k = 0; k < count; k++) {
            size_t len = strlen(argv[i]) + strlen(names[k]) + 2;
            char *path = malloc(len);
            if (!path)
                return 2;
            snprintf(path, len, "%s/%s", argv[i], names[k]);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(path))
                    return 2;
                inputs++;
            }
            free(path);
            free(names[k]);
        }
        free(names);
    }
    printf("replay: %ld inputs ran without a finding\n", inputs);
    return inputs > 0 ? 0 : 1;
}
