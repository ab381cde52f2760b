/* Out of memory in both families: a PyMem allocator that fails on demand
 * (wrapping whatever PYTHONMALLOC installed, debug hooks included) for the
 * pymem family, and an address-space limit (RLIMIT_AS) for the private one.
 * Every entry point answers NULL and leaves existing blocks intact. */
#include "harness.h"

#include <sys/resource.h>

static PyMemAllocatorEx real_allocator;
static int failing;

static void *maybe_malloc(void *ctx, size_t size) {
    (void)ctx;
    return failing ? NULL : real_allocator.malloc(real_allocator.ctx, size);
}

static void *maybe_calloc(void *ctx, size_t nelem, size_t elsize) {
    (void)ctx;
    return failing ? NULL : real_allocator.calloc(real_allocator.ctx, nelem, elsize);
}

static void *maybe_realloc(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    return failing ? NULL : real_allocator.realloc(real_allocator.ctx, ptr, size);
}

static void real_free(void *ctx, void *ptr) {
    (void)ctx;
    real_allocator.free(real_allocator.ctx, ptr);
}

static void pymem_family_out_of_memory(void) {
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &real_allocator);
    PyMemAllocatorEx failing_allocator = {NULL, maybe_malloc, maybe_calloc, maybe_realloc, real_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &failing_allocator);

    uint8_t *kept = pyalloc_malloc(64);
    CHECK(kept != NULL && pyalloc_is_pymem(kept));
    fill_pattern(kept, 64, 1);

    failing = 1;
    CHECK(pyalloc_malloc(100) == NULL);
    CHECK(pyalloc_malloc(0) == NULL);
    CHECK(pyalloc_calloc(10, 10) == NULL);
    CHECK(pyalloc_realloc(kept, 100000) == NULL); /* the block stays valid */
    CHECK(has_pattern(kept, 64, 1));
    size_t len = 99;
    CHECK(pyalloc_demo_hex((const uint8_t *)"abc", 3, &len) == NULL);
    CHECK(len == 99);
    failing = 0;

    /* A private block cannot be re-homed without PyMem: NULL, block intact. */
    uint8_t *private_block = NULL;
    Py_BEGIN_ALLOW_THREADS
    private_block = pyalloc_malloc(32);
    Py_END_ALLOW_THREADS
    CHECK(private_block != NULL && !pyalloc_is_pymem(private_block));
    fill_pattern(private_block, 32, 2);
    failing = 1;
    CHECK(pyalloc_into_pymem(private_block, 32) == NULL);
    failing = 0;
    CHECK(has_pattern(private_block, 32, 2));
    uint8_t *rehomed = pyalloc_into_pymem(private_block, 32);
    CHECK(rehomed != NULL && pyalloc_is_pymem(rehomed) && has_pattern(rehomed, 32, 2));
    PyMem_Free(rehomed);

    /* Everything works again once memory is back. */
    kept = pyalloc_realloc(kept, 100000);
    CHECK(kept != NULL && has_pattern(kept, 64, 1));
    PyMem_Free(kept);
    uint8_t *text = pyalloc_demo_hex((const uint8_t *)"abc", 3, &len);
    CHECK(text != NULL && len == 6);
    PyMem_Free(text);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &real_allocator);
}

struct limit_job {
    int malloc_failed, calloc_failed, realloc_failed, kept_intact, after_ok;
};

static void *private_allocations_at_the_limit(void *arg) {
    struct limit_job *job = arg;
    const size_t huge = (size_t)8 << 30; /* 8 GiB: beyond the limit below */
    uint8_t *kept = pyalloc_malloc(128);
    CHECK(kept != NULL && !pyalloc_is_pymem(kept));
    fill_pattern(kept, 128, 3);
    job->malloc_failed = pyalloc_malloc(huge) == NULL;
    job->calloc_failed = pyalloc_calloc(huge / 8, 8) == NULL;
    job->realloc_failed = pyalloc_realloc(kept, huge) == NULL;
    job->kept_intact = has_pattern(kept, 128, 3);
    uint8_t *grown = pyalloc_realloc(kept, 4096);
    job->after_ok = grown != NULL && has_pattern(grown, 128, 3);
    pyalloc_free(grown);
    return NULL;
}

static void private_family_out_of_memory(void) {
    struct rlimit old_limit;
    CHECK(getrlimit(RLIMIT_AS, &old_limit) == 0);
    struct rlimit limit = old_limit;
    limit.rlim_cur = (rlim_t)4 << 30; /* 4 GiB of address space */
    CHECK(setrlimit(RLIMIT_AS, &limit) == 0);
    struct limit_job job = {0, 0, 0, 0, 0};
    run_on_plain_thread(private_allocations_at_the_limit, &job);
    CHECK(setrlimit(RLIMIT_AS, &old_limit) == 0);
    CHECK(job.malloc_failed);
    CHECK(job.calloc_failed);
    CHECK(job.realloc_failed);
    CHECK(job.kept_intact);
    CHECK(job.after_ok);
}

int main(void) {
    Py_InitializeEx(0);
    RUN(pymem_family_out_of_memory);
    RUN(private_family_out_of_memory);
    finish_interpreter();
    return 0;
}
