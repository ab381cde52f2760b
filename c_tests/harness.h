/* A minimal harness for pyalloc's C tests: CHECK stops the program with the
 * failing expression, RUN prints one line per passing case. The Rust runner
 * (tests/c_api.rs) runs each program under several PYTHONMALLOC settings,
 * with a timeout, and fails on a non-zero exit. */
#ifndef PYALLOC_C_TESTS_HARNESS_H
#define PYALLOC_C_TESTS_HARNESS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyalloc.h"

/* Whether pyalloc reads the main GIL's `locked` word on this build
 * (src/cpython/main_gil.rs): 3.11-3.15 GIL builds, 3.11-3.12 on x86-64 only,
 * 3.13-3.15 as release candidates or final releases only (the
 * `_Py_DebugOffsets` layout is frozen from the first candidate on). */
#if PY_VERSION_HEX < 0x03100000 && !defined(Py_GIL_DISABLED) && \
    ((PY_VERSION_HEX < 0x030D0000 && defined(__x86_64__)) || \
     (PY_VERSION_HEX >= 0x030D0000 && (PY_VERSION_HEX & 0xF0) >= 0xC0))
#define READS_MAIN_GIL 1
#else
#define READS_MAIN_GIL 0
#endif

/* The main GIL's word as pyalloc confirmed it (NULL if not), and how many
 * allocations it has answered. */
static inline const int *main_gil_word(uint64_t *answered) {
    const int *locked = NULL;
    uint64_t count = 0;
    pyalloc_testing_main_gil(&locked, &count);
    if (answered != NULL) {
        *answered = count;
    }
    return locked;
}

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            fflush(stderr);                                                      \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

#define RUN(case_fn)                        \
    do {                                    \
        case_fn();                          \
        printf("ok %s\n", #case_fn);        \
        fflush(stdout);                     \
    } while (0)

static inline pyalloc_stats stats_now(void) {
    pyalloc_stats stats;
    memset(&stats, 0, sizeof stats);
    pyalloc_stats_get(&stats);
    return stats;
}

/* Runs fn(arg) on a new thread that has no Python thread state, and waits. */
static inline void run_on_plain_thread(void *(*fn)(void *), void *arg) {
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, fn, arg) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
}

static inline void fill_pattern(uint8_t *bytes, size_t len, uint8_t seed) {
    for (size_t i = 0; i < len; i++) {
        bytes[i] = (uint8_t)(seed + i * 31u);
    }
}

static inline int has_pattern(const uint8_t *bytes, size_t len, uint8_t seed) {
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] != (uint8_t)(seed + i * 31u)) {
            return 0;
        }
    }
    return 1;
}

static inline uint64_t pattern_sum(size_t len, uint8_t seed) {
    uint64_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        sum += (uint8_t)(seed + i * 31u);
    }
    return sum;
}

/* Forks with CPython's fork hooks; the child runs child(arg) and exits 0
 * when it returns true; the parent checks that it did. */
static inline void fork_and_check(int (*child)(void *), void *arg) {
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        _exit(child(arg) ? 0 : 1);
    }
    PyOS_AfterFork_Parent();
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The end of a program's interpreter: nothing left in pyalloc's deferred
 * queue once collected, and a clean Py_FinalizeEx. */
static inline void finish_interpreter(void) {
    pyalloc_collect();
    CHECK(stats_now().deferred_pending == 0);
    CHECK(Py_FinalizeEx() == 0);
}

/* Pre-initializes (honouring PYTHONMALLOC) and puts `hook` in front of the
 * domain's allocator, which is saved in `*wrapped` for the hook to call:
 * PyMem_SetAllocator hooks as profilers install them, before Py_Initialize. */
static inline void wrap_allocator_before_initialize(PyMemAllocatorDomain domain, PyMemAllocatorEx *wrapped,
                                                    PyMemAllocatorEx hook) {
    PyPreConfig preconfig;
    PyPreConfig_InitPythonConfig(&preconfig);
    PyStatus status = Py_PreInitialize(&preconfig);
    CHECK(!PyStatus_Exception(status));
    PyMem_GetAllocator(domain, wrapped);
    PyMem_SetAllocator(domain, &hook);
}

/* A hook's calloc through its own malloc (which checks its header's
 * overflow): the product checked, then the block zero-filled. */
static inline void *calloc_through(void *(*malloc_fn)(void *, size_t), void *ctx, size_t nelem, size_t elsize) {
    if (elsize != 0 && nelem > SIZE_MAX / elsize) {
        return NULL;
    }
    void *block = malloc_fn(ctx, nelem * elsize);
    if (block != NULL) {
        memset(block, 0, nelem * elsize);
    }
    return block;
}

/* Runs Python source in __main__, failing the test on an exception. */
static inline void run_python(const char *source) {
    CHECK(PyRun_SimpleString(source) == 0);
}

#endif
