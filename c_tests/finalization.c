/* PyMem blocks released on threads without the GIL while the main thread
 * runs Py_FinalizeEx are never freed into the next interpreter (they are
 * orphaned or freed into the finalizing one): on 3.12 the next one would
 * abort, elsewhere its heap would be silently corrupted.
 *
 * A random race, eight threads against 200 init/finalize cycles; and a
 * deterministic one, a releasing thread parked (pyalloc_testing_set_pause)
 * after it read the interpreter lifetime and before it queued its block,
 * while the whole of Py_FinalizeEx runs. */
#include "harness.h"

#include <semaphore.h>
#include <stdatomic.h>

enum { THREADS = 8, BLOCKS = 40 };

struct releaser {
    pthread_t thread;
    uint8_t *blocks[BLOCKS];
};

static atomic_int go;

static void *release_all(void *arg) {
    struct releaser *me = arg;
    while (!atomic_load(&go)) {
    }
    for (int i = 0; i < BLOCKS; i++) {
        pyalloc_free(me->blocks[i]);
    }
    return NULL;
}

static int cycles(void) {
    const char *text = getenv("PYALLOC_TEST_CYCLES");
    return text != NULL ? atoi(text) : 200;
}

/* Every release of the previous cycle was queued and then freed by a drain
 * inside its own lifetime, or orphaned (a release that queued its block
 * after the lifetime ended is orphaned by the first drain of the next):
 * none is pending any more, and none was freed into this interpreter. */
static void check_previous_cycle(pyalloc_stats before) {
    pyalloc_stats now = stats_now();
    CHECK(now.deferred_freed + now.deferred_orphaned - before.deferred_freed - before.deferred_orphaned ==
          THREADS * BLOCKS);
    CHECK(now.deferred_pending == 0);
}

static void releases_racing_finalization(void) {
    static struct releaser releasers[THREADS];
    pyalloc_stats before = {0};
    for (int cycle = 0; cycle <= cycles(); cycle++) {
        Py_InitializeEx(0);
        /* Nothing from the previous lifetime is freed into this one. */
        CHECK(pyalloc_collect() == 0);
        if (cycle > 0) {
            check_previous_cycle(before);
        }
        if (cycle == cycles()) {
            break;
        }
        before = stats_now();
        for (int t = 0; t < THREADS; t++) {
            for (int i = 0; i < BLOCKS; i++) {
                /* Both node kinds: blocks that hold their own queue node,
                 * and blocks too small for one. */
                size_t size = i % 3 == 0 ? 8 : 16 + (size_t)(i * 37 % 700);
                releasers[t].blocks[i] = pyalloc_malloc(size);
                CHECK(releasers[t].blocks[i] != NULL && pyalloc_is_pymem(releasers[t].blocks[i]));
            }
        }
        atomic_store(&go, 0);
        for (int t = 0; t < THREADS; t++) {
            CHECK(pthread_create(&releasers[t].thread, NULL, release_all, &releasers[t]) == 0);
        }
        atomic_store(&go, 1);
        CHECK(Py_FinalizeEx() == 0);
        for (int t = 0; t < THREADS; t++) {
            CHECK(pthread_join(releasers[t].thread, NULL) == 0);
        }
    }
    printf("  %d cycles, %d releases, %llu orphaned\n", cycles(), cycles() * THREADS * BLOCKS,
           (unsigned long long)stats_now().deferred_orphaned);
}

/* ---- the deterministic variant ---------------------------------------- */

static sem_t parked, resume;
static _Thread_local int park_me;

static void park(void) {
    if (park_me) {
        park_me = 0;
        CHECK(sem_post(&parked) == 0);
        CHECK(sem_wait(&resume) == 0);
    }
}

static void *release_parked(void *block) {
    park_me = 1;
    pyalloc_free(block);
    return NULL;
}

static void release_parked_across_finalization(void) {
    CHECK(sem_init(&parked, 0, 0) == 0 && sem_init(&resume, 0, 0) == 0);
    pyalloc_testing_set_pause(park);
    uint8_t *block = pyalloc_malloc(200);
    CHECK(block != NULL && pyalloc_is_pymem(block));
    pthread_t releaser;
    CHECK(pthread_create(&releaser, NULL, release_parked, block) == 0);
    CHECK(sem_wait(&parked) == 0);

    /* It read this lifetime and has not queued the block yet. */
    CHECK(Py_FinalizeEx() == 0);
    pyalloc_stats finalized = stats_now();
    CHECK(sem_post(&resume) == 0);
    CHECK(pthread_join(releaser, NULL) == 0);
    pyalloc_testing_set_pause(NULL);
    /* Queued now, with the lifetime that has ended. */
    CHECK(stats_now().deferred_pending == 1);

    Py_InitializeEx(0);
    CHECK(pyalloc_collect() == 0);
    pyalloc_stats after = stats_now();
    CHECK(after.deferred_pending == 0);
    CHECK(after.deferred_orphaned == finalized.deferred_orphaned + 1);
    CHECK(after.pymem_frees == finalized.pymem_frees);
}

int main(void) {
    Py_InitializeEx(0);
    RUN(release_parked_across_finalization);
    CHECK(Py_FinalizeEx() == 0);
    RUN(releases_racing_finalization);
    CHECK(Py_FinalizeEx() == 0);
    return 0;
}
