/* Subinterpreters. Once one has existed, PyGILState_Check() answers 1 on
 * every thread on 3.11, GIL or not; pyalloc must not be fooled. From 3.12,
 * an interpreter with its own GIL has its own obmalloc. pyalloc's own
 * blocks made inside any subinterpreter are private; the C API takes a
 * PyMem block released there to be that interpreter's (as PyMem_Free
 * would) and frees it there, so the main interpreter's PyMem blocks are
 * released through the C API on threads attached to no interpreter (queued
 * for the main one), never in an own-GIL subinterpreter; Rust's blocks are
 * the main interpreter's, and Rust dropping one there queues it for the
 * main interpreter. */
#include "harness.h"

static PyThreadState *main_tstate;

struct worker_job {
    int gilstate_check;
    int block_was_pymem;
    uint64_t parallel;
    uint8_t *consume;
    uint64_t consumed;
};

static void *worker_after_subinterpreter(void *arg) {
    struct worker_job *job = arg;
    job->gilstate_check = PyGILState_Check();
    void *block = pyalloc_malloc(64);
    CHECK(block != NULL);
    job->block_was_pymem = pyalloc_is_pymem(block);
    pyalloc_free(block);
    job->consumed = pyalloc_demo_consume(job->consume, 256);
    job->parallel = pyalloc_demo_parallel(3, 100);
    return NULL;
}

static void shared_gil_subinterpreter(void) {
    PyThreadState *sub = Py_NewInterpreter();
    CHECK(sub != NULL);
    /* Inside it: not the main interpreter, so private, and no PyMem block. */
    uint8_t *inside = pyalloc_malloc(128);
    CHECK(inside != NULL && !pyalloc_is_pymem(inside));
    fill_pattern(inside, 128, 6);
    size_t len = 0;
    CHECK(pyalloc_demo_hex((const uint8_t *)"x", 1, &len) == NULL);
    CHECK(pyalloc_demo_parallel(2, 50) != 0);
    /* C's PyMem block, released through the C API: this heap is the main
     * one's (a legacy subinterpreter shares it). */
    pyalloc_stats before = stats_now();
    uint8_t *own = PyMem_Malloc(40);
    CHECK(own != NULL && pyalloc_is_pymem(own));
    fill_pattern(own, 40, 3);
#if PY_VERSION_HEX >= 0x030C0000
    /* Seen as attached to this subinterpreter: freed here and now. */
    own = pyalloc_realloc(own, 4000);
    CHECK(own != NULL && has_pattern(own, 40, 3));
    pyalloc_free(own);
    CHECK(stats_now().pymem_frees == before.pymem_frees + 1);
    CHECK(stats_now().deferred_pending == before.deferred_pending);
#else
    /* 3.11 counts a thread holding a subinterpreter's GIL as attached to
     * none (src/cpython/attached_3_11.rs: CPython attaches a subinterpreter's
     * states from any thread, and 3.11 has one obmalloc): the block cannot
     * be resized, and its release is queued for the main interpreter, whose
     * heap it is. */
    CHECK(pyalloc_realloc(own, 4000) == NULL);
    CHECK(has_pattern(own, 40, 3));
    pyalloc_free(own);
    CHECK(stats_now().deferred_pending == before.deferred_pending + 1);
#endif
    Py_EndInterpreter(sub);
    PyThreadState_Swap(main_tstate);

    CHECK(has_pattern(inside, 128, 6));
    pyalloc_free(inside);
}

static void workers_after_a_subinterpreter(void) {
    pyalloc_collect();
    pyalloc_stats before = stats_now();
    struct worker_job job = {0, -1, 0, PyMem_Malloc(256), 0};
    CHECK(job.consume != NULL);
    fill_pattern(job.consume, 256, 8);
    run_on_plain_thread(worker_after_subinterpreter, &job);
    printf("  PyGILState_Check() on a thread without the GIL: %d\n", job.gilstate_check);
    CHECK(job.block_was_pymem == 0);
    CHECK(job.parallel != 0);
    CHECK(job.consumed == pattern_sum(256, 8));
    CHECK(stats_now().deferred_pending == before.deferred_pending + 1);
    CHECK(pyalloc_collect() == 1);

    uint64_t released;
    Py_BEGIN_ALLOW_THREADS
    released = pyalloc_demo_parallel(4, 200);
    Py_END_ALLOW_THREADS
    CHECK(released == pyalloc_demo_parallel(4, 200));
}

#if PY_VERSION_HEX >= 0x030C0000
static void *private_block_of(void *size) {
    return pyalloc_malloc((size_t)(uintptr_t)size);
}

static void *release_both(void *blocks) {
    pyalloc_free(((void **)blocks)[0]);
    pyalloc_free(((void **)blocks)[1]);
    return NULL;
}

static void own_gil_subinterpreter(void) {
    PyInterpreterConfig config = {
        .use_main_obmalloc = 0,
        .allow_fork = 0,
        .allow_exec = 0,
        .allow_threads = 1,
        .allow_daemon_threads = 0,
        .check_multi_interp_extensions = 1,
        .gil = PyInterpreterConfig_OWN_GIL,
    };
    uint8_t *from_main = pyalloc_malloc(512);
    CHECK(from_main != NULL && pyalloc_is_pymem(from_main));
    fill_pattern(from_main, 512, 5);
    /* Main-interpreter PyMem blocks for the C API (pyalloc's, and a private
     * block re-homed by pyalloc_into_pymem), released below on a thread
     * attached to no interpreter while the subinterpreter runs. */
    void *handed[2] = {pyalloc_malloc(48), NULL};
    pthread_t maker;
    void *private_block = NULL;
    Py_BEGIN_ALLOW_THREADS
    CHECK(pthread_create(&maker, NULL, private_block_of, (void *)(uintptr_t)64) == 0);
    CHECK(pthread_join(maker, &private_block) == 0);
    Py_END_ALLOW_THREADS
    CHECK(private_block != NULL && !pyalloc_is_pymem(private_block));
    handed[1] = pyalloc_into_pymem(private_block, 64);
    CHECK(pyalloc_is_pymem(handed[0]) && pyalloc_is_pymem(handed[1]));
    pyalloc_collect();
    pyalloc_stats before = stats_now();

    PyThreadState *sub = NULL;
    PyStatus status = Py_NewInterpreterFromConfig(&sub, &config);
    CHECK(!PyStatus_Exception(status) && sub != NULL);
    /* Its own GIL and obmalloc: pyalloc's own blocks are private here. */
    uint8_t *inside = pyalloc_malloc(4096);
    CHECK(inside != NULL && !pyalloc_is_pymem(inside));
    fill_pattern(inside, 4096, 12);
    uint8_t *zeroed = pyalloc_calloc(10, 10);
    CHECK(zeroed != NULL && !pyalloc_is_pymem(zeroed));
    pyalloc_free(zeroed);
    CHECK(pyalloc_demo_parallel(2, 80) != 0);
    run_python("x = [bytes(100) for _ in range(1000)]");

    /* C's own PyMem blocks of this interpreter's heap, through the C API:
     * resized and freed in this heap, never queued for the main one. */
    for (size_t size = 0; size < 600; size += 25) {
        uint8_t *own = PyMem_Malloc(size);
        CHECK(own != NULL && pyalloc_is_pymem(own));
        fill_pattern(own, size, 8);
        own = pyalloc_realloc(own, size * 3 + 1);
        CHECK(own != NULL && pyalloc_is_pymem(own) && has_pattern(own, size, 8));
        pyalloc_free(own);
    }
    CHECK(stats_now().deferred_pending == before.deferred_pending);

    /* The main interpreter's block, owned and dropped by Rust here: queued
     * for the main interpreter, not freed into this one. */
    CHECK(pyalloc_demo_consume(from_main, 512) == pattern_sum(512, 5));
    CHECK(stats_now().deferred_pending == before.deferred_pending + 1);
    CHECK(pyalloc_collect() == 0); /* not the main GIL */

    /* The C API's main-interpreter blocks, released on a thread attached to
     * no interpreter (never on this one, attached to the subinterpreter):
     * queued for the main interpreter. */
    Py_BEGIN_ALLOW_THREADS
    run_on_plain_thread(release_both, handed);
    Py_END_ALLOW_THREADS
    CHECK(stats_now().deferred_pending == before.deferred_pending + 3);
    Py_EndInterpreter(sub);
    PyThreadState_Swap(main_tstate);

    /* Back in the main interpreter: its private block frees from here. */
    CHECK(has_pattern(inside, 4096, 12));
    pyalloc_free(inside);
    CHECK(pyalloc_collect() == 3);
    CHECK(stats_now().pymem_allocs == before.pymem_allocs);
}
#endif

int main(void) {
    Py_InitializeEx(0);
    main_tstate = PyThreadState_Get();
    /* pyalloc tracks an interpreter lifetime from the first call a thread
     * holding its GIL makes; releases without the GIL before that are
     * orphaned (see pyalloc.h). */
    CHECK(pyalloc_collect() == 0);
    printf("python %s\n", Py_GetVersion());
    RUN(shared_gil_subinterpreter);
    RUN(workers_after_a_subinterpreter);
#if PY_VERSION_HEX >= 0x030C0000
    RUN(own_gil_subinterpreter);
#else
    printf("skip own_gil_subinterpreter: needs CPython 3.12+\n");
#endif
    finish_interpreter();
    return 0;
}
