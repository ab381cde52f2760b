/* A copy of pyalloc in a shared library that is unloaded (a ctypes
 * library, a plugin host): a thread uses it under the GIL, so it registers
 * its Py_AtExit hook, then the library is dlclose'd. pyalloc keeps its
 * object loaded once it has registered a callback (RTLD_NODELETE), so
 * Py_FinalizeEx calls a hook that is still mapped. */
#include "harness.h"

#include <dlfcn.h>

static char library_path[4096];
static void *(*copy_malloc)(size_t);
static void (*copy_free)(void *);
static int (*copy_is_pymem)(const void *);
static pyalloc_stats (*copy_stats)(void);

/* Under the GIL (the copy registers its hook), then one of its PyMem
 * blocks released without it: queued until the hook ends the lifetime. */
static void *use_under_the_gil(void *arg) {
    (void)arg;
    PyGILState_STATE gil = PyGILState_Ensure();
    void *block = copy_malloc(100), *queued = copy_malloc(100);
    CHECK(block != NULL && copy_is_pymem(block) && queued != NULL && copy_is_pymem(queued));
    copy_free(block);
    PyGILState_Release(gil);
    copy_free(queued);
    CHECK(copy_stats().deferred_pending == 1);
    return NULL;
}

static void unloaded_copy_survives_finalization(void) {
    const char *dir = getenv("PYALLOC_TEST_PROGRAMS");
    CHECK(dir != NULL);
    snprintf(library_path, sizeof library_path, "%s/libcopy_00.so", dir);
    void *library = dlopen(library_path, RTLD_NOW | RTLD_LOCAL);
    CHECK(library != NULL);
    *(void **)&copy_malloc = dlsym(library, "copy_malloc");
    *(void **)&copy_free = dlsym(library, "copy_free");
    *(void **)&copy_is_pymem = dlsym(library, "copy_is_pymem");
    *(void **)&copy_stats = dlsym(library, "copy_stats");
    CHECK(copy_malloc != NULL && copy_free != NULL && copy_is_pymem != NULL && copy_stats != NULL);
    Py_BEGIN_ALLOW_THREADS
    run_on_plain_thread(use_under_the_gil, NULL);
    Py_END_ALLOW_THREADS
    CHECK(dlclose(library) == 0);
    /* Still mapped: the copy pinned itself when it registered its hook. */
    void *again = dlopen(library_path, RTLD_NOW | RTLD_NOLOAD);
    CHECK(again != NULL);
    CHECK(dlclose(again) == 0);
    CHECK(Py_FinalizeEx() == 0);
    /* The copy's hook ran: the lifetime ended, its queued block left alone. */
    pyalloc_stats after = copy_stats();
    CHECK(after.deferred_pending == 0 && after.deferred_orphaned == 1);
}

/* A module loaded on a thread holding the main GIL (as `import` loads one)
 * starts its copy's interpreter lifetime from its constructor: C's own
 * PyMem block released through it on a plain thread is queued and
 * collected, not left alone as "unstarted". */
static void *release_through_copy(void *block) {
    void (*release)(void *) = copy_free;
    release(block);
    return NULL;
}

static void loading_under_the_gil_starts_the_lifetime(void) {
    const char *dir = getenv("PYALLOC_TEST_PROGRAMS");
    CHECK(dir != NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/libcopy_01.so", dir);
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(library != NULL);
    *(void **)&copy_free = dlsym(library, "copy_free");
    *(void **)&copy_stats = dlsym(library, "copy_stats");
    size_t (*copy_collect)(void);
    *(void **)&copy_collect = dlsym(library, "copy_collect");
    CHECK(copy_free != NULL && copy_stats != NULL && copy_collect != NULL);
    void *block = PyMem_Malloc(64);
    CHECK(block != NULL);
    Py_BEGIN_ALLOW_THREADS
    run_on_plain_thread(release_through_copy, block);
    Py_END_ALLOW_THREADS
    pyalloc_stats stats = copy_stats();
    printf("  after the release: pending %llu, unstarted %llu\n", (unsigned long long)stats.deferred_pending,
           (unsigned long long)stats.deferred_unstarted);
    CHECK(stats.deferred_unstarted == 0 && stats.deferred_pending == 1);
    CHECK(copy_collect() == 1);
}

int main(void) {
    Py_InitializeEx(0);
    printf("python %s\n", Py_GetVersion());
    RUN(loading_under_the_gil_starts_the_lifetime);
    RUN(unloaded_copy_survives_finalization);
    return 0;
}
