/* Memory read bandwidth, the resource token generation is bound by.
 *
 * Each thread sums its share of a buffer much larger than the caches with 64-bit loads
 * (the compiler vectorises the loop); the best of several passes is reported in bytes/s.
 * Usage: membw MIB THREADS PASSES  -> prints one number, bytes per second.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const uint64_t *data; size_t n; uint64_t sum; } job_t;

static void *sum_slice(void *arg) {
    job_t *job = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= job->n; i += 4) {
        a += job->data[i]; b += job->data[i + 1]; c += job->data[i + 2]; d += job->data[i + 3];
    }
    for (; i < job->n; i++) a += job->data[i];
    job->sum = a + b + c + d;
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    int passes = argc > 3 ? atoi(argv[3]) : 5;
    if (threads < 1 || threads > 256 || mib < 1) return 2;
    size_t bytes = mib << 20, n = bytes / sizeof(uint64_t);
    uint64_t *buf = aligned_alloc(4096, bytes);
    if (!buf) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t i = 0; i < n; i++) buf[i] = i;
    pthread_t tid[256];
    job_t jobs[256];
    double best = 0;
    uint64_t check = 0;
    for (int p = 0; p < passes; p++) {
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            jobs[t].data = buf + n / threads * t;
            jobs[t].n = t == threads - 1 ? n - n / threads * t : n / threads;
            pthread_create(&tid[t], NULL, sum_slice, &jobs[t]);
        }
        for (int t = 0; t < threads; t++) { pthread_join(tid[t], NULL); check += jobs[t].sum; }
        double rate = bytes / (now() - t0);
        if (rate > best) best = rate;
    }
    printf("%.0f\n", best);
    fprintf(stderr, "checksum %llu\n", (unsigned long long)check);
    free(buf);
    return 0;
}
