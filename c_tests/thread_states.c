/* Which thread holds the GIL, where CPython 3.11 records it inexactly
 * (src/cpython/attached_3_11.rs). From 3.12 the attached thread state is a
 * thread-local and neither case can happen: the creator case runs on every
 * version (and must find no holder from 3.12), the stale slot on 3.11.
 *
 * Stale slot (3.11): a worker's own thread state, deleted by the main
 * thread, stays in the worker's GILState slot; a new state at the same
 * address, attached by the main thread, must not make the worker look like
 * the GIL holder. pyalloc checks the holder's creating thread too. (From
 * 3.12, deleting a thread's bound state from another thread clears the
 * deleting thread's own slot instead, which CPython's debug build asserts
 * against: the case does not exist there.)
 *
 * Creator binding (3.11 only, documented in pyalloc.h and the README): a
 * state made with PyThreadState_New on a thread that has none is bound to
 * that thread; when another thread attaches it, the creator looks like the
 * holder. No field of a 3.11 thread state records who attached it, so
 * pyalloc cannot tell; this case shows the limit is still what the
 * documentation says, with the attaching thread parked so that the
 * misattributed allocation races nothing.
 *
 * Family follows the GIL (every version): threads that take and release
 * the GIL in a loop get a PyMem block exactly while they hold it, whoever
 * else holds it in between, with the quick "not attached" read of the
 * main GIL's `locked` word in use where pyalloc reads it
 * (src/cpython/main_gil.rs). */
#include "harness.h"

#include <semaphore.h>

/* ---- a raw allocator that reuses the last freed block, as LIFO caches do -- */

static PyMemAllocatorEx raw;
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *slot; /* the last freed block (its header), or NULL */
enum { HEADER = 16 };

static void *lifo_malloc(void *ctx, size_t size) {
    (void)ctx;
    if (size > SIZE_MAX - HEADER) {
        return NULL;
    }
    pthread_mutex_lock(&slot_lock);
    uint8_t *block = slot;
    if (block != NULL && *(size_t *)block == size) {
        slot = NULL;
    } else {
        block = NULL;
    }
    pthread_mutex_unlock(&slot_lock);
    if (block == NULL) {
        block = raw.malloc(raw.ctx, size + HEADER);
        if (block == NULL) {
            return NULL;
        }
        *(size_t *)block = size;
    }
    return block + HEADER;
}

static void *lifo_calloc(void *ctx, size_t nelem, size_t elsize) {
    return calloc_through(lifo_malloc, ctx, nelem, elsize);
}

static void *lifo_realloc(void *ctx, void *ptr, size_t size) {
    if (ptr == NULL) {
        return lifo_malloc(ctx, size);
    }
    if (size > SIZE_MAX - HEADER) {
        return NULL;
    }
    uint8_t *block = raw.realloc(raw.ctx, (uint8_t *)ptr - HEADER, size + HEADER);
    if (block == NULL) {
        return NULL;
    }
    *(size_t *)block = size;
    return block + HEADER;
}

static void lifo_free(void *ctx, void *ptr) {
    (void)ctx;
    if (ptr == NULL) {
        return;
    }
    pthread_mutex_lock(&slot_lock);
    uint8_t *evicted = slot;
    slot = (uint8_t *)ptr - HEADER;
    pthread_mutex_unlock(&slot_lock);
    if (evicted != NULL) {
        raw.free(raw.ctx, evicted);
    }
}

static void install_lifo_raw_allocator(void) {
    PyMemAllocatorEx lifo = {NULL, lifo_malloc, lifo_calloc, lifo_realloc, lifo_free};
    wrap_allocator_before_initialize(PYMEM_DOMAIN_RAW, &raw, lifo);
}

static sem_t to_worker, to_main;

static void hand_to_worker(void) {
    CHECK(sem_post(&to_worker) == 0);
    Py_BEGIN_ALLOW_THREADS
    CHECK(sem_wait(&to_main) == 0);
    Py_END_ALLOW_THREADS
}

static void wait_for_main(void) {
    CHECK(sem_post(&to_main) == 0);
    CHECK(sem_wait(&to_worker) == 0);
}

struct stale_job {
    PyThreadState *own;
    int pymem_while_attached;
    int pymem_while_stale;
};

static void *stale_worker(void *arg) {
    struct stale_job *job = arg;
    CHECK(sem_wait(&to_worker) == 0);
    /* Its own state, made on this thread (bound to it), attached and detached. */
    job->own = PyThreadState_New(PyInterpreterState_Main());
    CHECK(job->own != NULL);
    PyEval_RestoreThread(job->own);
    void *block = pyalloc_malloc(64);
    job->pymem_while_attached = pyalloc_is_pymem(block);
    pyalloc_free(block);
    PyEval_SaveThread();
    wait_for_main();
    /* The main thread deleted our state and attached a new one at its
     * address: we hold nothing. */
    block = pyalloc_malloc(64);
    CHECK(block != NULL);
    job->pymem_while_stale = pyalloc_is_pymem(block);
    pyalloc_free(block);
    CHECK(pyalloc_collect() == 0);
    CHECK(sem_post(&to_main) == 0);
    return NULL;
}

static void stale_gilstate_slot_is_not_the_gil(void) {
    struct stale_job job = {NULL, -1, -1};
    pthread_t worker;
    CHECK(pthread_create(&worker, NULL, stale_worker, &job) == 0);
    hand_to_worker();
    CHECK(job.pymem_while_attached == 1);

    /* The raw allocator hands the freed address to the next state. */
    PyThreadState_Clear(job.own);
    PyThreadState_Delete(job.own);
    PyThreadState *reused = NULL;
    PyThreadState *others[64];
    int tries = 0;
    for (; tries < 64; tries++) {
        PyThreadState *fresh = PyThreadState_New(PyInterpreterState_Main());
        CHECK(fresh != NULL);
        if (fresh == job.own) {
            reused = fresh;
            break;
        }
        others[tries] = fresh;
    }
    for (int i = 0; i < tries; i++) {
        PyThreadState_Clear(others[i]);
        PyThreadState_Delete(others[i]);
    }
    CHECK(reused != NULL); /* otherwise this run proves nothing */
    PyThreadState *mine = PyThreadState_Swap(reused);

    /* This thread holds the GIL with the reused state while the worker runs. */
    CHECK(sem_post(&to_worker) == 0);
    CHECK(sem_wait(&to_main) == 0);
    CHECK(job.pymem_while_stale == 0);

    PyThreadState_Swap(mine);
    PyThreadState_Clear(reused);
    PyThreadState_Delete(reused);
    CHECK(pthread_join(worker, NULL) == 0);
}

struct binding_job {
    PyThreadState *made;
    int pymem;
    int gilstate_check;
};

static struct binding_job binding;
static sem_t attached, release_attacher;

static void create_the_state(void) {
    binding.made = PyThreadState_New(PyInterpreterState_Main());
    CHECK(binding.made != NULL);
}

static void *attacher(void *arg) {
    (void)arg;
    PyEval_RestoreThread(binding.made);
    CHECK(sem_post(&attached) == 0);
    CHECK(sem_wait(&release_attacher) == 0);
    PyThreadState_Clear(binding.made);
    PyThreadState_DeleteCurrent();
    return NULL;
}

static void ask_as_the_creator(void) {
    binding.gilstate_check = PyGILState_Check();
    void *block = pyalloc_malloc(48);
    CHECK(block != NULL);
    binding.pymem = pyalloc_is_pymem(block);
    pyalloc_free(block); /* PyMem_Free on 3.11, racing nobody: the holder is parked */
}

/* The creating thread must stay alive and ask while another thread holds
 * the GIL with the state it made: one thread makes and later asks. */
struct creator_thread {
    sem_t ask, asked;
};

static void *creator_thread(void *arg) {
    struct creator_thread *me = arg;
    create_the_state();
    CHECK(sem_post(&me->asked) == 0);
    CHECK(sem_wait(&me->ask) == 0);
    ask_as_the_creator();
    CHECK(sem_post(&me->asked) == 0);
    return NULL;
}

static void creator_binding_is_the_documented_limit(void) {
    struct creator_thread me;
    CHECK(sem_init(&me.ask, 0, 0) == 0 && sem_init(&me.asked, 0, 0) == 0);
    CHECK(sem_init(&attached, 0, 0) == 0 && sem_init(&release_attacher, 0, 0) == 0);
    pthread_t creating, attaching;
    Py_BEGIN_ALLOW_THREADS
    CHECK(pthread_create(&creating, NULL, creator_thread, &me) == 0);
    CHECK(sem_wait(&me.asked) == 0);
    CHECK(pthread_create(&attaching, NULL, attacher, NULL) == 0);
    CHECK(sem_wait(&attached) == 0);
    CHECK(sem_post(&me.ask) == 0);
    CHECK(sem_wait(&me.asked) == 0);
    CHECK(sem_post(&release_attacher) == 0);
    CHECK(pthread_join(attaching, NULL) == 0);
    CHECK(pthread_join(creating, NULL) == 0);
    Py_END_ALLOW_THREADS
#if PY_VERSION_HEX < 0x030C0000
    /* The blind spot pyalloc.h documents, shared by PyGILState_Check. */
    CHECK(binding.pymem == 1);
    CHECK(binding.gilstate_check == 1);
#else
    CHECK(binding.pymem == 0);
#endif
    printf("  the creating thread: pymem %d, PyGILState_Check %d\n", binding.pymem, binding.gilstate_check);
}

/* ---- family follows the GIL ---------------------------------------------- */

enum { TOGGLERS = 4, TOGGLES = 2000 };

static void *toggler(void *arg) {
    (void)arg;
    for (int i = 0; i < TOGGLES; i++) {
        PyGILState_STATE gil = PyGILState_Ensure();
        void *held = pyalloc_malloc(24);
        CHECK(held != NULL && pyalloc_is_pymem(held));
        PyGILState_Release(gil);
        void *released = pyalloc_malloc(24);
        CHECK(released != NULL && !pyalloc_is_pymem(released));
        pyalloc_free(released);
        gil = PyGILState_Ensure();
        pyalloc_free(held);
        PyGILState_Release(gil);
    }
    return NULL;
}

static void family_follows_the_gil(void) {
    pyalloc_free(pyalloc_malloc(8)); /* under the GIL: confirms the word */
    CHECK((main_gil_word(NULL) != NULL) == READS_MAIN_GIL);
    pthread_t threads[TOGGLERS];
    PyThreadState *saved = PyEval_SaveThread();
    for (int i = 0; i < TOGGLERS; i++) {
        CHECK(pthread_create(&threads[i], NULL, toggler, NULL) == 0);
    }
    toggler(NULL); /* the main thread toggles too */
    for (int i = 0; i < TOGGLERS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
    PyEval_RestoreThread(saved);
}

int main(void) {
    install_lifo_raw_allocator();
    CHECK(sem_init(&to_worker, 0, 0) == 0 && sem_init(&to_main, 0, 0) == 0);
    Py_InitializeEx(0);
    printf("python %s\n", Py_GetVersion());
#if PY_VERSION_HEX < 0x030C0000
    RUN(stale_gilstate_slot_is_not_the_gil);
#else
    (void)stale_gilstate_slot_is_not_the_gil;
    printf("  the stale-slot case exists on 3.11 only\n");
#endif
    RUN(creator_binding_is_the_documented_limit);
    RUN(family_follows_the_gil);
    finish_interpreter();
    return 0;
}
