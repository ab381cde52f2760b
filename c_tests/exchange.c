/* Buffers crossing between C and Rust in an embedded interpreter: Rust-built
 * memory released by C with PyMem_Free, C's PyMem_Malloc memory owned and
 * dropped by Rust, blocks dropped on threads without the GIL, the parallel
 * demo with and without the GIL and under tracemalloc. Under
 * PYTHONMALLOC=debug every PyMem_Free below verifies that the block came from
 * PyMem_Malloc (API 'm'), has intact guard bytes, and that the GIL is held. */
#include "harness.h"

static void rust_hex_freed_by_c(void) {
    const uint8_t data[] = {0x00, 0x1f, 0xab, 0xff, 0x10};
    size_t len = 0;
    uint8_t *text = pyalloc_demo_hex(data, sizeof data, &len);
    CHECK(text != NULL);
    CHECK(len == 10);
    CHECK(memcmp(text, "001fabff10", 10) == 0);
    CHECK(pyalloc_is_pymem(text));
    PyMem_Free(text);

    text = pyalloc_demo_hex(NULL, 0, &len);
    CHECK(text != NULL);
    CHECK(len == 0);
    PyMem_Free(text);

    /* Bad input: NULL, and *out_len is left alone. */
    len = 77;
    CHECK(pyalloc_demo_hex(NULL, 3, &len) == NULL);
    CHECK(len == 77);
    CHECK(pyalloc_demo_hex(data, sizeof data, NULL) == NULL);
}

static void pyalloc_blocks_freed_by_c(void) {
    uint8_t *bytes = pyalloc_malloc(300);
    CHECK(bytes != NULL);
    CHECK(pyalloc_is_pymem(bytes));
    CHECK((uintptr_t)bytes % 16 == 0);
    fill_pattern(bytes, 300, 1);
    bytes = pyalloc_realloc(bytes, 5000);
    CHECK(bytes != NULL && pyalloc_is_pymem(bytes));
    CHECK(has_pattern(bytes, 300, 1));
    PyMem_Free(bytes);

    uint8_t *zeroed = pyalloc_calloc(1000, 3);
    CHECK(zeroed != NULL && pyalloc_is_pymem(zeroed));
    for (size_t i = 0; i < 3000; i++) {
        CHECK(zeroed[i] == 0);
    }
    PyMem_Free(zeroed);

    void *empty = pyalloc_malloc(0);
    CHECK(empty != NULL);
    void *other = pyalloc_malloc(0);
    CHECK(other != NULL && other != empty);
    PyMem_Free(empty);
    pyalloc_free(other);

    CHECK(pyalloc_calloc(SIZE_MAX / 2, 3) == NULL); /* nmemb * size overflows */
    CHECK(pyalloc_malloc(SIZE_MAX) == NULL);
    pyalloc_free(NULL);
    CHECK(!pyalloc_is_pymem(NULL));
}

static void c_pymem_owned_by_rust(void) {
    uint8_t *buf = PyMem_Malloc(1000);
    CHECK(buf != NULL);
    fill_pattern(buf, 1000, 7);
    CHECK(pyalloc_demo_consume(buf, 1000) == pattern_sum(1000, 7));

    /* Smaller than a pointer: Rust's drop must still free it correctly. */
    buf = PyMem_Malloc(3);
    CHECK(buf != NULL);
    fill_pattern(buf, 3, 9);
    CHECK(pyalloc_demo_consume(buf, 3) == pattern_sum(3, 9));

    buf = PyMem_Malloc(16);
    CHECK(buf != NULL);
    CHECK(pyalloc_demo_consume(buf, 0) == 0); /* released, nothing summed */
    CHECK(pyalloc_demo_consume(NULL, 5) == 0);

    /* pyalloc_realloc and pyalloc_free take C's PyMem_Malloc blocks too. */
    buf = PyMem_Malloc(50);
    CHECK(buf != NULL);
    fill_pattern(buf, 50, 3);
    buf = pyalloc_realloc(buf, 70000);
    CHECK(buf != NULL && has_pattern(buf, 50, 3));
    pyalloc_free(buf);
}

struct consume_job {
    uint8_t *buf;
    size_t len;
    uint64_t sum;
};

static void *consume_on_plain_thread(void *arg) {
    struct consume_job *job = arg;
    job->sum = pyalloc_demo_consume(job->buf, job->len);
    return NULL;
}

/* C's PyMem_Malloc block of `len` bytes, handed to Rust on a thread without
 * the GIL: Rust drops it there, so it must be queued, not freed. The caller
 * holds the GIL throughout, so nobody drains the queue meanwhile. */
static void queue_pymem_block_from_plain_thread(size_t len, uint8_t seed) {
    struct consume_job job = {PyMem_Malloc(len), len, 0};
    CHECK(job.buf != NULL);
    fill_pattern(job.buf, len, seed);
    run_on_plain_thread(consume_on_plain_thread, &job);
    CHECK(job.sum == pattern_sum(len, seed));
}

struct free_job {
    void *block;
    void *realloc_result;
    int collected_without_gil;
};

static void *realloc_then_free_on_plain_thread(void *arg) {
    struct free_job *job = arg;
    /* A pymem block of unknown size cannot move without the GIL. */
    job->realloc_result = pyalloc_realloc(job->block, 100000);
    job->collected_without_gil = (int)pyalloc_collect();
    pyalloc_free(job->block);
    return NULL;
}

static void pymem_dropped_without_gil_is_deferred(void) {
    pyalloc_collect();
    pyalloc_stats before = stats_now();

    queue_pymem_block_from_plain_thread(4096, 5);

    pyalloc_stats queued = stats_now();
    CHECK(queued.deferred_pending == before.deferred_pending + 1);
    CHECK(queued.pymem_frees == before.pymem_frees);

    CHECK(pyalloc_collect() == 1);
    pyalloc_stats collected = stats_now();
    CHECK(collected.deferred_pending == before.deferred_pending);
    CHECK(collected.deferred_freed == before.deferred_freed + 1);
    CHECK(collected.pymem_frees == before.pymem_frees + 1);
    CHECK(pyalloc_collect() == 0); /* exactly once */
    CHECK(stats_now().deferred_freed == collected.deferred_freed);

    /* pyalloc_free of a pymem block on a plain thread: queued, and the next
     * allocation by a GIL holder frees it without being asked. */
    struct free_job freed = {PyMem_Malloc(10), (void *)1, -1};
    CHECK(freed.block != NULL);
    run_on_plain_thread(realloc_then_free_on_plain_thread, &freed);
    CHECK(freed.realloc_result == NULL);
    CHECK(freed.collected_without_gil == 0);
    CHECK(stats_now().deferred_pending == before.deferred_pending + 1);
    void *next = pyalloc_malloc(8);
    CHECK(next != NULL);
    CHECK(stats_now().deferred_pending == before.deferred_pending);
    CHECK(stats_now().deferred_freed == collected.deferred_freed + 1);
    pyalloc_free(next);
}

struct private_job {
    uint8_t *block;
    void *into_pymem_without_gil;
};

static void *allocate_on_plain_thread(void *arg) {
    struct private_job *job = arg;
    job->block = pyalloc_malloc(64);
    CHECK(job->block != NULL);
    CHECK(!pyalloc_is_pymem(job->block));
    CHECK((uintptr_t)job->block % 16 == 0);
    fill_pattern(job->block, 64, 11);
    /* Without the GIL there is no PyMem to copy into: NULL, block untouched. */
    job->into_pymem_without_gil = pyalloc_into_pymem(job->block, 64);
    return NULL;
}

static void private_block_rehomed_for_c(void) {
    pyalloc_stats before = stats_now();
    struct private_job job = {NULL, (void *)1};
    run_on_plain_thread(allocate_on_plain_thread, &job);
    CHECK(job.into_pymem_without_gil == NULL);
    CHECK(has_pattern(job.block, 64, 11));

    uint8_t *pymem = pyalloc_into_pymem(job.block, 64);
    CHECK(pymem != NULL && pymem != job.block);
    CHECK(pyalloc_is_pymem(pymem));
    CHECK(has_pattern(pymem, 64, 11));
    CHECK(stats_now().rehomed == before.rehomed + 1);
    CHECK(pyalloc_into_pymem(pymem, 64) == pymem); /* already pymem: same block */
    PyMem_Free(pymem);

    CHECK(pyalloc_into_pymem(NULL, 10) == NULL);
}

/* Bad input to each entry point gets the documented answer: NULL, 0 or
 * nothing, never a crash, and the blocks involved stay valid. */
static void bad_input_gets_documented_answers(void) {
    /* realloc(NULL, n) allocates; realloc(p, 0) keeps a valid, unique block. */
    uint8_t *block = pyalloc_realloc(NULL, 40);
    CHECK(block != NULL && pyalloc_is_pymem(block));
    fill_pattern(block, 40, 13);
    uint8_t *empty = pyalloc_realloc(block, 0);
    CHECK(empty != NULL);
    block = pyalloc_realloc(empty, 40);
    CHECK(block != NULL);
    fill_pattern(block, 40, 13);
    /* Impossible sizes: NULL, and the block is untouched. */
    CHECK(pyalloc_realloc(block, SIZE_MAX) == NULL);
    CHECK(pyalloc_realloc(block, SIZE_MAX - 4) == NULL);
    CHECK(has_pattern(block, 40, 13));

    /* A pointer no allocator returns (not 8-aligned): refused and counted. */
    pyalloc_stats before = stats_now();
    void *misaligned = block + 3;
    pyalloc_free(misaligned);
    CHECK(pyalloc_realloc(misaligned, 10) == NULL);
    CHECK(pyalloc_into_pymem(misaligned, 10) == NULL);
    CHECK(!pyalloc_is_pymem(misaligned));
    CHECK(stats_now().invalid_pointers == before.invalid_pointers + 3);
    CHECK(has_pattern(block, 40, 13));
    pyalloc_free(block);

    pyalloc_stats_get(NULL); /* ignored */
    void *nothing = pyalloc_calloc(0, 0);
    void *zero = pyalloc_calloc(0, 16);
    CHECK(nothing != NULL && zero != NULL && nothing != zero); /* unique, like PyMem_Calloc */
    pyalloc_free(nothing);
    pyalloc_free(zero);
    CHECK(pyalloc_calloc(SIZE_MAX, SIZE_MAX) == NULL);
    CHECK(pyalloc_demo_parallel(SIZE_MAX, 1) == 0);
}

static uint64_t parallel_with_gil_released(size_t threads, size_t ops) {
    uint64_t checksum;
    Py_BEGIN_ALLOW_THREADS
    checksum = pyalloc_demo_parallel(threads, ops);
    Py_END_ALLOW_THREADS
    return checksum;
}

/* Rounds per demo worker; the valgrind run asks for fewer. */
static size_t demo_ops(void) {
    const char *ops = getenv("PYALLOC_TEST_OPS");
    return ops != NULL ? (size_t)strtoul(ops, NULL, 10) : 400;
}

static void parallel_demo_with_and_without_gil(void) {
    const size_t ops = demo_ops();
    uint64_t held = pyalloc_demo_parallel(4, ops);
    CHECK(held != 0);
    CHECK(parallel_with_gil_released(4, ops) == held);
    CHECK(pyalloc_demo_parallel(1, 50) != 0);
    CHECK(pyalloc_demo_parallel(0, 10) == 0);
    CHECK(pyalloc_demo_parallel(PYALLOC_DEMO_MAX_THREADS + 1, 10) == 0);

    /* With tracemalloc on, PyMem_RawMalloc would take the GIL on the workers
     * while this thread holds it and waits for them: a deadlock. pyalloc's
     * workers never call into Python, so this returns (the runner's timeout
     * turns a hang into a failure). */
    run_python("import tracemalloc; tracemalloc.start()");
    CHECK(pyalloc_demo_parallel(4, ops) == held);
    CHECK(parallel_with_gil_released(4, ops) == held);
    run_python("tracemalloc.stop()");
    pyalloc_collect();
}

static int child_frees_its_copy_of_the_queue(void *arg) {
    const pyalloc_stats *before = arg;
    int ok = pyalloc_collect() == 1 && stats_now().deferred_pending == before->deferred_pending;
    void *block = pyalloc_malloc(64);
    ok = ok && block != NULL && pyalloc_is_pymem(block);
    pyalloc_free(block);
    return ok && pyalloc_demo_parallel(2, 50) != 0;
}

/* fork() with a block in the deferred queue: parent and child each hold a
 * copy of the heap and of the queue, and each frees its own copy once. */
static void fork_with_a_queued_block(void) {
    pyalloc_collect();
    pyalloc_stats before = stats_now();
    queue_pymem_block_from_plain_thread(512, 21);
    CHECK(stats_now().deferred_pending == before.deferred_pending + 1);

    fork_and_check(child_frees_its_copy_of_the_queue, &before);
    CHECK(pyalloc_collect() == 1);
    CHECK(stats_now().deferred_pending == before.deferred_pending);
}

static size_t traced_bytes(void) {
    PyObject *tracemalloc = PyImport_ImportModule("tracemalloc");
    CHECK(tracemalloc != NULL);
    PyObject *pair = PyObject_CallMethod(tracemalloc, "get_traced_memory", NULL);
    CHECK(pair != NULL && PyTuple_Check(pair));
    size_t current = PyLong_AsSize_t(PyTuple_GetItem(pair, 0));
    Py_DECREF(pair);
    Py_DECREF(tracemalloc);
    return current;
}

static void tracemalloc_sees_pymem_blocks(void) {
    const size_t size = 16u << 20;
    run_python("import tracemalloc; tracemalloc.start()");
    size_t before = traced_bytes();
    void *big = pyalloc_malloc(size);
    CHECK(big != NULL && pyalloc_is_pymem(big));
    size_t during = traced_bytes();
    CHECK(during >= before + size);
    pyalloc_free(big);
    CHECK(traced_bytes() < during - size / 2);
    run_python("tracemalloc.stop()");
}

int main(void) {
    Py_InitializeEx(0);
    printf("python %s, pyalloc %s\n", Py_GetVersion(), pyalloc_version());
    CHECK(strcmp(pyalloc_version(), PYALLOC_VERSION) == 0);
    RUN(rust_hex_freed_by_c);
    RUN(pyalloc_blocks_freed_by_c);
    RUN(c_pymem_owned_by_rust);
    RUN(pymem_dropped_without_gil_is_deferred);
    RUN(private_block_rehomed_for_c);
    RUN(bad_input_gets_documented_answers);
    RUN(parallel_demo_with_and_without_gil);
    RUN(tracemalloc_sees_pymem_blocks);
    RUN(fork_with_a_queued_block);
    finish_interpreter();
    return 0;
}
