/* One copy of pyalloc in a shared object, as an extension module carries it
 * (linked with -Wl,--exclude-libs,ALL: nothing of it is visible outside).
 * tests/c_api.rs builds it once and copies it under several names; copies.c
 * loads them all into one process. */
#include "harness.h"

void *copy_malloc(size_t size) { return pyalloc_malloc(size); }
void *copy_realloc(void *block, size_t size) { return pyalloc_realloc(block, size); }
void copy_free(void *block) { pyalloc_free(block); }
int copy_is_pymem(const void *block) { return pyalloc_is_pymem(block); }
size_t copy_collect(void) { return pyalloc_collect(); }
pyalloc_stats copy_stats(void) { return stats_now(); }
uint64_t copy_parallel(size_t threads, size_t ops) { return pyalloc_demo_parallel(threads, ops); }
