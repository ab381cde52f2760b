/* Allocation at thread exit, after the thread-locals of pyalloc, of Rust and
 * of mimalloc are gone: a pthread key made after all of them has its
 * destructor run last, and it allocates, grows and frees blocks of every
 * size class (its spare slot gone, pyalloc must go straight to mimalloc,
 * whose thread heap starts anew). */
#include "harness.h"

#include <stdatomic.h>

enum { THREADS = 4 };

static pthread_key_t late_key;
static atomic_int destructors_done;

static void late_destructor(void *value) {
    (void)value;
    for (size_t size = 1; size <= (1u << 20); size *= 3) {
        uint8_t *block = pyalloc_malloc(size);
        CHECK(block != NULL && !pyalloc_is_pymem(block));
        fill_pattern(block, size, 3);
        block = pyalloc_realloc(block, size * 2);
        CHECK(block != NULL && has_pattern(block, size, 3));
        pyalloc_free(block);
        uint8_t *zeroed = pyalloc_calloc(size, 1);
        CHECK(zeroed != NULL && zeroed[size - 1] == 0);
        pyalloc_free(zeroed);
    }
    atomic_fetch_add(&destructors_done, 1);
}

static void *worker(void *unused) {
    (void)unused;
    /* Everything thread-local comes to life first: mimalloc's heap, Rust's
     * thread-locals and pyalloc's spare (a freed 64 KiB block). */
    for (size_t size = 16; size <= (64u << 10); size *= 4) {
        pyalloc_free(pyalloc_malloc(size));
    }
    CHECK(pyalloc_demo_parallel(2, 20) != 0);
    CHECK(pthread_setspecific(late_key, (void *)1) == 0);
    return NULL;
}

static void allocation_in_late_thread_exit_destructors(void) {
    CHECK(pthread_key_create(&late_key, late_destructor) == 0);
    pyalloc_stats before = stats_now();
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_create(&threads[i], NULL, worker, NULL) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
    CHECK(atomic_load(&destructors_done) == THREADS);
    pyalloc_stats after = stats_now();
    CHECK(after.private_allocs - before.private_allocs == after.private_frees - before.private_frees);
}

int main(void) {
    /* No interpreter: every block is private. */
    RUN(allocation_in_late_thread_exit_destructors);
    return 0;
}
