/* C's own PyMem blocks, of every small size, through every entry point, and
 * pyalloc's own small blocks, whatever allocator serves PyMem. The runner
 * (tests/c_api.rs) repeats it with jemalloc, tcmalloc and mimalloc
 * preloaded (they return 8-aligned blocks of 8 bytes or less), with and
 * without PYTHONMALLOC=malloc, and with PYALLOC_TEST_HOOK=<n>: a
 * PyMem_SetAllocator hook installed before initialization that puts an
 * n-byte header before every block, as profilers do. No block may be taken
 * for a private one, or the reverse. */
#include "harness.h"

/* ---- a header-adding PyMem hook ------------------------------------------ */

static PyMemAllocatorEx wrapped;
static size_t header_size;

static void *hook_malloc(void *ctx, size_t size) {
    (void)ctx;
    if (size > SIZE_MAX - header_size) {
        return NULL;
    }
    uint8_t *block = wrapped.malloc(wrapped.ctx, size + header_size);
    if (block == NULL) {
        return NULL;
    }
    /* What a profiler keeps there: the size and a mark. */
    memset(block, 0xA5, header_size);
    memcpy(block, &size, sizeof size);
    return block + header_size;
}

static void *hook_calloc(void *ctx, size_t nelem, size_t elsize) {
    return calloc_through(hook_malloc, ctx, nelem, elsize);
}

static void *hook_realloc(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    if (ptr == NULL) {
        return hook_malloc(ctx, size);
    }
    if (size > SIZE_MAX - header_size) {
        return NULL;
    }
    uint8_t *block = wrapped.realloc(wrapped.ctx, (uint8_t *)ptr - header_size, size + header_size);
    if (block == NULL) {
        return NULL;
    }
    memcpy(block, &size, sizeof size);
    return block + header_size;
}

static void hook_free(void *ctx, void *ptr) {
    (void)ctx;
    if (ptr != NULL) {
        wrapped.free(wrapped.ctx, (uint8_t *)ptr - header_size);
    }
}

static void install_hook_before_initialize(void) {
    const char *hook = getenv("PYALLOC_TEST_HOOK");
    if (hook == NULL) {
        return;
    }
    header_size = (size_t)atoi(hook);
    CHECK(header_size == 8 || header_size == 16);
    PyMemAllocatorEx hooked = {NULL, hook_malloc, hook_calloc, hook_realloc, hook_free};
    wrap_allocator_before_initialize(PYMEM_DOMAIN_MEM, &wrapped, hooked);
    printf("  PyMem hook with a %zu-byte header\n", header_size);
}

/* ---- cases ------------------------------------------------------------- */

static const size_t SIZES[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 48, 64, 100, 512, 513, 4096};
enum { COUNT = sizeof SIZES / sizeof SIZES[0] };

static uint8_t *c_block(size_t size, uint8_t seed) {
    uint8_t *block = PyMem_Malloc(size);
    CHECK(block != NULL);
    CHECK(pyalloc_is_pymem(block));
    fill_pattern(block, size, seed);
    return block;
}

static void c_blocks_through_every_entry_point(void) {
    pyalloc_stats before = stats_now();
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < COUNT; i++) {
            size_t size = SIZES[i];
            /* pyalloc_free */
            pyalloc_free(c_block(size, 1));
            /* pyalloc_realloc, growing and shrinking, then PyMem_Free */
            uint8_t *block = c_block(size, 2);
            block = pyalloc_realloc(block, size + 40);
            CHECK(block != NULL && pyalloc_is_pymem(block) && has_pattern(block, size, 2));
            block = pyalloc_realloc(block, size / 2);
            CHECK(block != NULL && pyalloc_is_pymem(block) && has_pattern(block, size / 2, 2));
            PyMem_Free(block);
            /* pyalloc_into_pymem: already PyMem, the same block */
            block = c_block(size, 3);
            CHECK(pyalloc_into_pymem(block, size) == block);
            PyMem_Free(block);
            /* vec_from_pymem (owned and dropped by Rust) */
            CHECK(pyalloc_demo_consume(c_block(size, 4), size) == pattern_sum(size, 4));
        }
    }
    /* No C block was taken for a private one: every private free is one of
     * pyalloc's own private blocks (it made some on a thread of its own, to
     * learn whether it is the global allocator). */
    pyalloc_stats after = stats_now();
    CHECK(after.private_frees - before.private_frees == after.private_allocs - before.private_allocs);
    CHECK(after.invalid_pointers == before.invalid_pointers);
}

static void *free_c_blocks_on_plain_thread(void *blocks) {
    for (size_t i = 0; i < COUNT; i++) {
        pyalloc_free(((uint8_t **)blocks)[i]);
    }
    return NULL;
}

static void c_blocks_released_without_the_gil(void) {
    pyalloc_collect();
    pyalloc_stats before = stats_now();
    uint8_t *blocks[COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        blocks[i] = c_block(SIZES[i], 5);
    }
    run_on_plain_thread(free_c_blocks_on_plain_thread, blocks);
    CHECK(stats_now().deferred_pending == before.deferred_pending + COUNT);
    CHECK(pyalloc_collect() == COUNT);
    pyalloc_stats after = stats_now();
    CHECK(after.private_frees - before.private_frees == after.private_allocs - before.private_allocs);
}

static void own_blocks_under_the_gil(void) {
    for (size_t i = 0; i < COUNT; i++) {
        size_t size = SIZES[i];
        uint8_t *block = pyalloc_malloc(size);
        CHECK(block != NULL && pyalloc_is_pymem(block));
        fill_pattern(block, size, 6);
        block = pyalloc_realloc(block, size + 100);
        CHECK(block != NULL && pyalloc_is_pymem(block) && has_pattern(block, size, 6));
        PyMem_Free(block);
        block = pyalloc_calloc(size, 3);
        CHECK(block != NULL && pyalloc_is_pymem(block));
        for (size_t j = 0; j < size * 3; j++) {
            CHECK(block[j] == 0);
        }
        pyalloc_free(block);
        /* Rust-built, freed by C */
        size_t len = 0;
        uint8_t *text = pyalloc_demo_hex((const uint8_t *)"0123456789abcdef", size % 17, &len);
        CHECK(text != NULL && len == 2 * (size % 17) && pyalloc_is_pymem(text));
        PyMem_Free(text);
    }
}

static void *own_blocks_without_the_gil(void *unused) {
    (void)unused;
    for (size_t i = 0; i < COUNT; i++) {
        size_t size = SIZES[i];
        uint8_t *block = pyalloc_malloc(size);
        CHECK(block != NULL && !pyalloc_is_pymem(block) && (uintptr_t)block % 16 == 0);
        fill_pattern(block, size, 7);
        uint8_t *zeroed = pyalloc_calloc(0, size);
        CHECK(zeroed != NULL && !pyalloc_is_pymem(zeroed) && (uintptr_t)zeroed % 16 == 0);
        pyalloc_free(zeroed);
        block = pyalloc_realloc(block, 0);
        CHECK(block != NULL && !pyalloc_is_pymem(block) && (uintptr_t)block % 16 == 0);
        block = pyalloc_realloc(block, size + 3000);
        CHECK(block != NULL && !pyalloc_is_pymem(block) && (uintptr_t)block % 16 == 0);
        pyalloc_free(block);
    }
    return NULL;
}

static void private_blocks_of_every_small_size(void) {
    pyalloc_stats before = stats_now();
    run_on_plain_thread(own_blocks_without_the_gil, NULL);
    pyalloc_stats after = stats_now();
    CHECK(after.pymem_allocs == before.pymem_allocs);
    CHECK(after.private_allocs - before.private_allocs == after.private_frees - before.private_frees);
}

int main(void) {
    install_hook_before_initialize();
    Py_InitializeEx(0);
    printf("python %s, PYTHONMALLOC=%s, LD_PRELOAD=%s\n", Py_GetVersion(),
           getenv("PYTHONMALLOC") ? getenv("PYTHONMALLOC") : "", getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
    RUN(c_blocks_through_every_entry_point);
    RUN(c_blocks_released_without_the_gil);
    RUN(own_blocks_under_the_gil);
    RUN(private_blocks_of_every_small_size);
    finish_interpreter();
    return 0;
}
