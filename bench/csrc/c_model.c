/*
 * c_model.c: the smallest exact design, in C (issue 17). The benchmark's
 * case 1 runs it as the contender `c-model`: the floor for any sound
 * allocator that asks CPython, through its public API, whether the caller
 * may use PyMem, and reads none of CPython's internals.
 *
 * Two families, as in pyalloc:
 * - pymem: the caller is attached to the main interpreter (holds its GIL):
 *   PyMem_Malloc / PyMem_Free, headerless, as C's own PyMem blocks are.
 * - private: every other caller: malloc / free.
 *
 * Each allocation asks CPython once whether the caller is attached to the
 * main interpreter (`attached_to_main`). A free first learns the block's
 * family; a pymem block's free asks the same question once (a private
 * block's free needs no answer: free() is callable anywhere).
 *
 * Telling the families apart at free time. A 16-byte header on every block
 * would be the simplest exact scheme, but it moves every PyMem request into
 * another pymalloc size class, and at 512 B out of pymalloc (528 B goes to
 * malloc), so the model would no longer price a bare PyMem pair. So the
 * pymem family stays headerless and only private blocks carry a mark, the
 * scheme pyalloc uses (pyalloc's crate docs: Guarantees, a pointer's family): a private block
 * is handed out at an address that is 16 mod 32, with the malloc block's
 * address in the word 16 bytes before it and `secret ^ address` in the word
 * 8 bytes before it. A pointer is private exactly when it is 16 mod 32 and
 * that word matches. The secret comes from the kernel's per-process random
 * bytes (AT_RANDOM), mixed with a key of the model's own, so it differs
 * from pyalloc's. A PyMem block is taken for a private one only if the 8
 * bytes before it happen to hold `secret ^ address` (2^-64 for data not
 * chosen by someone who knows the secret). The mark is cleared before a
 * private block is freed.
 *
 * A pymem block freed by a caller that is not attached cannot be given to
 * PyMem_Free there: it is pushed on a lock-free stack (linked through the
 * block's first word; every pymem block has room for one) and freed by the
 * next attached call. Limit: the model does not tag those blocks with the
 * interpreter lifetime they were queued in (pyalloc does), so it
 * must not be used across Py_FinalizeEx and a new Py_Initialize. It is a
 * measurement reference, exported to the bench only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#if PY_VERSION_HEX < 0x030B0000
#error "the C model supports CPython 3.11 and newer"
#endif
#ifdef Py_GIL_DISABLED
#error "the C model is for GIL builds: a free-threaded build has no main GIL"
#endif

/* ---- Is the caller attached to the main interpreter? ---- */

/* The main interpreter. From 3.11 it is a static inside _PyRuntime, so its
 * address never changes: cached once known (NULL before Py_Initialize). */
static _Atomic(PyInterpreterState *) main_interp;

static inline PyInterpreterState *main_interpreter(void) {
    PyInterpreterState *main = atomic_load_explicit(&main_interp, memory_order_relaxed);
    if (main == NULL) {
        main = PyInterpreterState_Main();
        atomic_store_explicit(&main_interp, main, memory_order_relaxed);
    }
    return main;
}

#if PY_VERSION_HEX >= 0x030C0000

/* 3.12+: the attached thread state is a thread-local of libpython, NULL on
 * a thread that holds no GIL. */
static inline int attached_to_main(void) {
#if PY_VERSION_HEX >= 0x030D0000
    PyThreadState *state = PyThreadState_GetUnchecked();
#else
    PyThreadState *state = _PyThreadState_UncheckedGet();
#endif
    return state != NULL && PyThreadState_GetInterpreter(state) == main_interpreter();
}

#else

/* 3.11: _PyThreadState_UncheckedGet() is the GIL holder of the whole
 * process, not the caller's state: pyalloc's check
 * (src/cpython/attached_3_11.rs), the same decisions in the same order.
 * The holder is accepted when it is a main-interpreter state that the
 * caller made (thread_id is pthread_self()) and either it is the caller's
 * GILState slot, or the slot is another interpreter's state (a second state
 * of the caller's own for the main interpreter). The holder may be another
 * thread's, released and deleted meanwhile: its fields are read volatile,
 * and nothing is concluded unless it is still the holder afterwards. */
static inline int attached_to_main(void) {
    PyThreadState *holder = _PyThreadState_UncheckedGet();
    if (holder == NULL) {
        return 0;
    }
    PyThreadState *slot = PyGILState_GetThisThreadState();
    PyInterpreterState *main = main_interpreter();
    if (holder != slot) {
        if (slot == NULL || ((volatile PyThreadState *)slot)->interp == main) {
            return 0;
        }
    }
    PyInterpreterState *interp = ((volatile PyThreadState *)holder)->interp;
    unsigned long creator = ((volatile PyThreadState *)holder)->thread_id;
    return interp == main && creator == (unsigned long)pthread_self()
        && _PyThreadState_UncheckedGet() == holder;
}

#endif

/* ---- Private blocks: malloc, marked ---- */

static uint64_t secret;

/* SplitMix64's finaliser: spreads the kernel's random bytes and the key. */
static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

__attribute__((constructor)) static void init_secret(void) {
    uint64_t random[2] = {0, 0};
    const void *bytes = (const void *)getauxval(AT_RANDOM);
    if (bytes != NULL) {
        memcpy(random, bytes, sizeof random);
    }
    /* The model's own key (ASCII "c-model!"), so that its secret is not
     * pyalloc's. */
    secret = mix(random[0] ^ 0x632d6d6f64656c21ULL) ^ mix(random[1]);
}

static inline int is_private(void *block) {
    uintptr_t address = (uintptr_t)block;
    if ((address & 31) != 16) {
        return 0;
    }
    /* The word before the block: a 16-mod-32 address is never the first
     * byte of a page, so the word lies on the block's own (mapped) page,
     * whichever allocator made the block. Volatile: it may lie outside the
     * block the pointer names, and no optimiser may reason about it. */
    return ((volatile const uint64_t *)block)[-1] == (secret ^ address);
}

static void *private_malloc(size_t size) {
    /* Room for a 16-mod-32 start at least 16 bytes in from an 8-aligned
     * malloc block: round_up(base, 32) + 16 is base + 16 to base + 47. */
    if (size > SIZE_MAX - 48) {
        return NULL;
    }
    char *base = malloc(size + 48);
    if (base == NULL) {
        return NULL;
    }
    uintptr_t address = (((uintptr_t)base + 31) & ~(uintptr_t)31) + 16;
    uint64_t *words = (uint64_t *)address;
    words[-2] = (uint64_t)(uintptr_t)base;
    words[-1] = secret ^ address;
    return (void *)address;
}

static void private_free(void *block) {
    uint64_t *words = block;
    void *base = (void *)(uintptr_t)words[-2];
    /* Cleared, so that the freed memory holds no mark for a later block. */
    ((volatile uint64_t *)words)[-1] = 0;
    free(base);
}

/* ---- pymem blocks freed where PyMem may not be called ---- */

static _Atomic(void *) deferred;

static void defer(void *block) {
    void *head = atomic_load_explicit(&deferred, memory_order_relaxed);
    do {
        memcpy(block, &head, sizeof head);
    } while (!atomic_compare_exchange_weak_explicit(
        &deferred, &head, block, memory_order_release, memory_order_relaxed));
}

/* The caller is attached to the main interpreter. */
static inline void drain(void) {
    if (atomic_load_explicit(&deferred, memory_order_relaxed) == NULL) {
        return;
    }
    void *block = atomic_exchange_explicit(&deferred, NULL, memory_order_acquire);
    while (block != NULL) {
        void *next;
        memcpy(&next, block, sizeof next);
        PyMem_Free(block);
        block = next;
    }
}

/* ---- The model's two calls ---- */

void *pyalloc_bench_c_model_malloc(size_t size) {
    if (attached_to_main()) {
        drain();
        /* At least a word: `defer` links through the block's first word. */
        return PyMem_Malloc(size < sizeof(void *) ? sizeof(void *) : size);
    }
    return private_malloc(size);
}

void pyalloc_bench_c_model_free(void *block) {
    if (block == NULL) {
        return;
    }
    if (is_private(block)) {
        private_free(block);
    } else if (attached_to_main()) {
        drain();
        PyMem_Free(block);
    } else {
        defer(block);
    }
}

/* For the bench's check of the model (contenders.rs): whether `block` is
 * marked private. */
int pyalloc_bench_c_model_is_private(void *block) {
    return is_private(block);
}
