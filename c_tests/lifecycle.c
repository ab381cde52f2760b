/* pyalloc before Py_Initialize, across it, and after Py_FinalizeEx: no
 * interpreter means no PyMem call at all (private blocks), and a pymem block
 * released after finalization is never freed into the dead heap. */
#include "harness.h"

static uint8_t *pre_init_block;
static uint8_t *kept_private;
static uint8_t *kept_pymem;

static void before_initialize(void) {
    CHECK(!Py_IsInitialized());
    pyalloc_stats before = stats_now();
    pre_init_block = pyalloc_malloc(100);
    CHECK(pre_init_block != NULL);
    CHECK(!pyalloc_is_pymem(pre_init_block));
    fill_pattern(pre_init_block, 100, 2);
    pre_init_block = pyalloc_realloc(pre_init_block, 10000);
    CHECK(pre_init_block != NULL && has_pattern(pre_init_block, 100, 2));

    uint8_t *zeroed = pyalloc_calloc(64, 64);
    CHECK(zeroed != NULL && !pyalloc_is_pymem(zeroed));
    for (size_t i = 0; i < 64 * 64; i++) {
        CHECK(zeroed[i] == 0);
    }
    pyalloc_free(zeroed);

    kept_private = pyalloc_malloc(32);
    CHECK(kept_private != NULL);
    fill_pattern(kept_private, 32, 4);

    size_t len = 0;
    CHECK(pyalloc_demo_hex((const uint8_t *)"ab", 2, &len) == NULL); /* no PyMem to hand out */
    CHECK(pyalloc_collect() == 0);
    CHECK(pyalloc_demo_parallel(2, 60) != 0);
    pyalloc_stats after = stats_now();
    CHECK(after.pymem_allocs == before.pymem_allocs);
    CHECK(after.private_allocs > before.private_allocs);
}

static void while_initialized(void) {
    CHECK(Py_IsInitialized());
    uint8_t *pymem = pyalloc_malloc(100);
    CHECK(pymem != NULL && pyalloc_is_pymem(pymem));
    PyMem_Free(pymem);

    /* A private block from before init is still private, and still frees. */
    CHECK(!pyalloc_is_pymem(pre_init_block));
    CHECK(has_pattern(pre_init_block, 100, 2));
    pyalloc_free(pre_init_block);

    kept_pymem = pyalloc_malloc(48);
    CHECK(kept_pymem != NULL && pyalloc_is_pymem(kept_pymem));
}

static void after_finalize(void) {
    CHECK(!Py_IsInitialized());
    pyalloc_stats before = stats_now();
    uint8_t *block = pyalloc_malloc(100);
    CHECK(block != NULL && !pyalloc_is_pymem(block));
    block = pyalloc_realloc(block, 3000);
    CHECK(block != NULL);
    pyalloc_free(block);

    CHECK(has_pattern(kept_private, 32, 4));
    pyalloc_free(kept_private);

    /* Its interpreter is gone: left alone, counted, never PyMem_Free'd. */
    pyalloc_free(kept_pymem);
    pyalloc_stats after = stats_now();
    CHECK(after.deferred_orphaned == before.deferred_orphaned + 1);
    CHECK(after.pymem_frees == before.pymem_frees);
    CHECK(after.deferred_pending == 0);
    CHECK(pyalloc_collect() == 0);
    CHECK(pyalloc_demo_parallel(2, 60) != 0);
    CHECK(stats_now().pymem_allocs == before.pymem_allocs);
}

static void *free_on_plain_thread(void *block) {
    pyalloc_free(block);
    return NULL;
}

/* Py_Initialize / Py_FinalizeEx three more times, with a private block alive
 * throughout and, each time, a pymem block queued by a plain thread and never
 * collected: the exit hook must leave it alone (orphaned), not free it into
 * the next interpreter. */
static void repeated_init_and_finalize(void) {
    uint8_t *across = pyalloc_malloc(256);
    CHECK(across != NULL && !pyalloc_is_pymem(across));
    fill_pattern(across, 256, 9);
    for (int cycle = 0; cycle < 3; cycle++) {
        Py_InitializeEx(0);
        pyalloc_stats before = stats_now();
        uint8_t *queued = pyalloc_malloc(100);
        CHECK(queued != NULL && pyalloc_is_pymem(queued));
        run_on_plain_thread(free_on_plain_thread, queued);
        CHECK(stats_now().deferred_pending == before.deferred_pending + 1);
        run_python("import json; json.dumps(list(range(1000)))");
        CHECK(has_pattern(across, 256, 9));
        CHECK(Py_FinalizeEx() == 0);
        pyalloc_stats after = stats_now();
        CHECK(after.deferred_pending == 0);
        CHECK(after.deferred_orphaned == before.deferred_orphaned + 1);
        CHECK(after.pymem_frees == before.pymem_frees);
    }
    CHECK(has_pattern(across, 256, 9));
    pyalloc_free(across);
}

/* A lifetime that no thread holding the GIL has shown to pyalloc yet: C's
 * own PyMem block released through pyalloc on a plain thread is left
 * allocated (pyalloc cannot know which lifetime it belongs to), counted in
 * deferred_unstarted, and said once on stderr; after pyalloc_collect() the
 * next one is queued and freed. */
static void unstarted_lifetime_is_loud(void) {
    Py_InitializeEx(0);
    pyalloc_stats before = stats_now();
    void *first = PyMem_Malloc(64), *second = PyMem_Malloc(64);
    CHECK(first != NULL && second != NULL);
    fflush(stderr);
    int saved_stderr = dup(2);
    FILE *captured = tmpfile();
    CHECK(saved_stderr >= 0 && captured != NULL);
    CHECK(dup2(fileno(captured), 2) == 2);
    Py_BEGIN_ALLOW_THREADS
    run_on_plain_thread(free_on_plain_thread, first);
    run_on_plain_thread(free_on_plain_thread, second);
    Py_END_ALLOW_THREADS
    CHECK(dup2(saved_stderr, 2) == 2);
    close(saved_stderr);
    char said[1024] = {0};
    rewind(captured);
    size_t len = fread(said, 1, sizeof said - 1, captured);
    fclose(captured);
    CHECK(len > 0 && strstr(said, "pyalloc_collect()") != NULL);
    CHECK(strstr(strstr(said, "pyalloc:") + 1, "pyalloc:") == NULL); /* once */
    pyalloc_stats after = stats_now();
    CHECK(after.deferred_unstarted == before.deferred_unstarted + 2);
    CHECK(after.deferred_orphaned == before.deferred_orphaned + 2);

    CHECK(pyalloc_collect() == 0); /* the lifetime starts */
    void *third = PyMem_Malloc(64);
    CHECK(third != NULL);
    Py_BEGIN_ALLOW_THREADS
    run_on_plain_thread(free_on_plain_thread, third);
    Py_END_ALLOW_THREADS
    CHECK(pyalloc_collect() == 1);
    CHECK(stats_now().deferred_unstarted == after.deferred_unstarted);
    CHECK(Py_FinalizeEx() == 0);
}

int main(void) {
    RUN(before_initialize);
    Py_InitializeEx(0);
    RUN(while_initialized);
    CHECK(Py_FinalizeEx() == 0);
    RUN(after_finalize);
    RUN(repeated_init_and_finalize);
    RUN(unstarted_lifetime_is_loud);
    return 0;
}
