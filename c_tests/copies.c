/* Several copies of pyalloc in one process, as when several extension
 * modules each link their own: every copy has its own private heap, and
 * all of them agree on which blocks are private (the cookie comes from the
 * process's AT_RANDOM bytes), so a block made by one copy and released or
 * resized by another goes back to the copy that made it. mimalloc's
 * thread-locals in every copy use local-dynamic TLS: many copies fit. */
#include "harness.h"

#include <dlfcn.h>

enum { COPIES = 12 };

struct copy {
    void *(*malloc)(size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    int (*is_pymem)(const void *);
    size_t (*collect)(void);
    pyalloc_stats (*stats)(void);
    uint64_t (*parallel)(size_t, size_t);
};

static struct copy copies[COPIES];

static void *symbol(void *library, const char *name) {
    void *found = dlsym(library, name);
    CHECK(found != NULL);
    return found;
}

static void load_copies(void) {
    const char *dir = getenv("PYALLOC_TEST_PROGRAMS");
    CHECK(dir != NULL);
    for (int i = 0; i < COPIES; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/libcopy_%02d.so", dir, i);
        void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (library == NULL) {
            fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        }
        CHECK(library != NULL);
        copies[i] = (struct copy){
            symbol(library, "copy_malloc"), symbol(library, "copy_realloc"), symbol(library, "copy_free"),
            symbol(library, "copy_is_pymem"), symbol(library, "copy_collect"), symbol(library, "copy_stats"),
            symbol(library, "copy_parallel"),
        };
    }
}

struct cross_job {
    int from, to;
};

/* On a thread without the GIL: private blocks of copy `from`, classified,
 * resized and released by copy `to`; the maker counts the frees. */
static void *cross_private(void *arg) {
    struct cross_job *job = arg;
    struct copy *from = &copies[job->from], *to = &copies[job->to];
    pyalloc_stats maker_before = from->stats(), other_before = to->stats();
    for (size_t size = 0; size < 5000; size += 97) {
        uint8_t *block = from->malloc(size);
        CHECK(block != NULL && (uintptr_t)block % 16 == 0);
        CHECK(!to->is_pymem(block));
        fill_pattern(block, size, (uint8_t)size);
        block = to->realloc(block, size + 3000);
        CHECK(block != NULL && !from->is_pymem(block) && has_pattern(block, size, (uint8_t)size));
        to->free(block);
    }
    pyalloc_stats maker_after = from->stats(), other_after = to->stats();
    CHECK(maker_after.private_frees - maker_before.private_frees ==
          maker_after.private_allocs - maker_before.private_allocs);
    CHECK(other_after.private_allocs == other_before.private_allocs);
    CHECK(other_after.private_frees == other_before.private_frees);
    return NULL;
}

static void private_blocks_cross_copies(void) {
    for (int i = 0; i < COPIES; i++) {
        struct cross_job job = {i, (i + 5) % COPIES};
        run_on_plain_thread(cross_private, &job);
    }
}

static void pymem_blocks_cross_copies(void) {
    for (int i = 0; i < COPIES; i++) {
        struct copy *from = &copies[i], *to = &copies[(i + 1) % COPIES];
        uint8_t *block = from->malloc(300);
        CHECK(block != NULL && to->is_pymem(block));
        fill_pattern(block, 300, 9);
        block = to->realloc(block, 900);
        CHECK(block != NULL && from->is_pymem(block) && has_pattern(block, 300, 9));
        to->free(block);
    }
}

static void every_copy_runs_threads(void) {
    uint64_t expected = copies[0].parallel(3, 60);
    CHECK(expected != 0);
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < COPIES; i++) {
        CHECK(copies[i].parallel(3, 60) == expected);
    }
    Py_END_ALLOW_THREADS
}

static void *keep_one(void *out) {
    *(void **)out = copies[3].malloc(777);
    return NULL;
}

static int child_frees_the_parents_block(void *block) {
    int ok = has_pattern(block, 777, 4) && !copies[0].is_pymem(block);
    copies[9].free(block);
    void *fresh = copies[2].malloc(50);
    ok = ok && fresh != NULL;
    copies[11].free(fresh);
    return ok;
}

/* A forked child keeps its parent's private blocks and its cookie. */
static void fork_keeps_private_blocks(void) {
    void *block = NULL;
    run_on_plain_thread(keep_one, &block);
    CHECK(block != NULL && !copies[7].is_pymem(block));
    fill_pattern(block, 777, 4);
    fork_and_check(child_frees_the_parents_block, block);
    copies[5].free(block);
}

int main(void) {
    Py_InitializeEx(0);
    load_copies();
    RUN(private_blocks_cross_copies);
    RUN(pymem_blocks_cross_copies);
    RUN(every_copy_runs_threads);
    RUN(fork_keeps_private_blocks);
    for (int i = 0; i < COPIES; i++) {
        copies[i].collect();
        CHECK(copies[i].stats().deferred_pending == 0);
    }
    CHECK(Py_FinalizeEx() == 0);
    return 0;
}
