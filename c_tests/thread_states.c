/* Which thread holds the GIL, where CPython 3.11 records it inexactly
 * (src/cpython/attached_3_11.rs: the holder's creating thread decides).
 * From 3.12 the attached thread state is a thread-local and every case
 * must come out exact.
 *
 * Stale slot (3.11): a worker's own thread state, deleted by the main
 * thread, stays in the worker's GILState slot; a new state at the same
 * address, made and attached by a third thread, must not make the worker
 * look like the GIL holder. (From 3.12 deleting a thread's bound state from
 * another thread is asserted against in CPython's debug build.)
 *
 * Several interpreters on one thread (every version): a worker whose first
 * state is a subinterpreter's, so that the GILState API binds that one to
 * it, makes a main-interpreter state on itself and attaches it: it holds
 * the main GIL, its blocks are PyMem blocks that C may PyMem_Free.
 *
 * The rule (3.11 only, stated in the crate docs' Limits and in pyalloc.h):
 * a main-interpreter state made for another thread comes only from a thread
 * with a live main-interpreter state of its own. When another maker makes
 * one and another thread attaches it, the maker is taken for the holder and
 * the attacher is not: the cases show exactly that, with the attaching
 * thread parked so that the misattributed allocation races nothing, from a
 * maker with no state of its own (the new one is bound to it), from one
 * whose own state was deleted by the main thread (its slot stale, the new
 * state at the same address), and from one whose own state is a
 * subinterpreter's; a maker with a live main-interpreter state is not.
 * The same holds for the two other patterns the rule forbids: the main
 * thread, whose own state another thread attaches, is taken for the holder;
 * and so is a new thread whose pthread_self() is an exited maker's (glibc
 * reuses a joined thread's descriptor) once its own slot is a
 * subinterpreter's state (with an empty slot it is not).
 *
 * Family follows the GIL (every version): threads that take and release
 * the GIL in a loop get a PyMem block exactly while they hold it, whoever
 * else holds it in between, with the quick "not attached" read of the
 * main GIL's `locked` word in use where pyalloc reads it
 * (src/cpython/main_gil.rs).
 *
 * Every case runs on CPython's debug builds too, whose _PyThreadState_Swap
 * refuses a thread attaching a second state of an interpreter it already
 * has one for. */
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

/* A state for the main interpreter, made on the calling thread. */
static PyThreadState *new_main_state(void) {
    PyThreadState *made = PyThreadState_New(PyInterpreterState_Main());
    CHECK(made != NULL);
    return made;
}

/* Allocates on the calling thread: whether the block is a PyMem block. */
static int allocates_pymem(size_t size) {
    void *block = pyalloc_malloc(size);
    CHECK(block != NULL);
    int pymem = pyalloc_is_pymem(block);
    pyalloc_free(block);
    return pymem;
}

/* Ends the calling thread's attached state. */
static void delete_current(void) {
    PyThreadState_Clear(PyThreadState_Get());
    PyThreadState_DeleteCurrent();
}

/* ---- stale slot (3.11) ---------------------------------------------------- */

struct stale_job {
    sem_t ask, asked;
    PyThreadState *own;   /* the worker's own state, deleted by main */
    PyThreadState *fresh; /* the third thread's state, at the same address */
    int pymem_while_attached;
    int pymem_while_stale;
};

static void *stale_worker(void *arg) {
    struct stale_job *job = arg;
    job->own = new_main_state(); /* bound to this thread, which had none */
    PyEval_RestoreThread(job->own);
    job->pymem_while_attached = allocates_pymem(64);
    PyEval_SaveThread();
    CHECK(sem_post(&job->asked) == 0);
    CHECK(sem_wait(&job->ask) == 0);
    /* Our state is deleted, our slot still names its address, where the
     * third thread now holds the GIL with a state of its own: we hold
     * nothing. */
    job->pymem_while_stale = allocates_pymem(64);
    CHECK(pyalloc_collect() == 0);
    CHECK(sem_post(&job->asked) == 0);
    return NULL;
}

static void *reusing_thread(void *arg) {
    struct stale_job *job = arg;
    /* The raw allocator hands the freed address to the next state. */
    job->fresh = new_main_state();
    PyEval_RestoreThread(job->fresh);
    if (job->fresh == job->own) {
        CHECK(sem_post(&job->ask) == 0);
        CHECK(sem_wait(&job->asked) == 0);
    }
    delete_current();
    return NULL;
}

static void stale_gilstate_slot_is_not_the_gil(void) {
    struct stale_job job = {.own = NULL, .fresh = NULL, .pymem_while_attached = -1, .pymem_while_stale = -1};
    CHECK(sem_init(&job.ask, 0, 0) == 0 && sem_init(&job.asked, 0, 0) == 0);
    pthread_t worker, reuser;
    Py_BEGIN_ALLOW_THREADS
    CHECK(pthread_create(&worker, NULL, stale_worker, &job) == 0);
    CHECK(sem_wait(&job.asked) == 0);
    Py_END_ALLOW_THREADS
    CHECK(job.pymem_while_attached == 1);
    PyThreadState_Clear(job.own);
    PyThreadState_Delete(job.own);
    Py_BEGIN_ALLOW_THREADS
    CHECK(pthread_create(&reuser, NULL, reusing_thread, &job) == 0);
    CHECK(pthread_join(reuser, NULL) == 0);
    if (job.fresh != job.own) { /* the worker is still waiting */
        CHECK(sem_post(&job.ask) == 0);
        CHECK(sem_wait(&job.asked) == 0);
    }
    CHECK(pthread_join(worker, NULL) == 0);
    Py_END_ALLOW_THREADS
    CHECK(job.fresh == job.own); /* otherwise this run proved nothing */
    CHECK(job.pymem_while_stale == 0);
}

/* ---- several interpreters on one thread ----------------------------------- */

static void *two_interpreters_worker(void *arg) {
    PyInterpreterState *sub = arg;
    PyThreadState *in_sub = PyThreadState_New(sub); /* the first: bound to us */
    CHECK(in_sub != NULL);
    PyThreadState *in_main = new_main_state(); /* a second, on ourselves */
    PyEval_RestoreThread(in_main);
    for (size_t size = 1; size <= 4096; size *= 4) {
        uint8_t *block = pyalloc_malloc(size);
        CHECK(block != NULL && pyalloc_is_pymem(block));
        CHECK(pyalloc_into_pymem(block, size) == block);
        fill_pattern(block, size, 7);
        PyMem_Free(block); /* what pyalloc.h allows for a block made here */
    }
    delete_current();
    PyEval_RestoreThread(in_sub);
    CHECK(!allocates_pymem(64)); /* a subinterpreter's: private */
    delete_current();
    return NULL;
}

/* Makes a subinterpreter, runs `body` with it while the calling thread stays
 * attached to the main interpreter, and ends it. */
static void with_subinterpreter(void (*body)(PyInterpreterState *sub)) {
    PyThreadState *main_state = PyThreadState_Get();
    PyThreadState *sub_state = Py_NewInterpreter();
    CHECK(sub_state != NULL);
    PyInterpreterState *sub = PyThreadState_GetInterpreter(sub_state);
    PyThreadState_Swap(main_state);
    body(sub);
    PyThreadState_Swap(sub_state);
    Py_EndInterpreter(sub_state);
    PyThreadState_Swap(main_state);
}

static void run_two_interpreters_worker(PyInterpreterState *sub) {
    Py_BEGIN_ALLOW_THREADS
    run_on_plain_thread(two_interpreters_worker, sub);
    Py_END_ALLOW_THREADS
}

static void states_in_two_interpreters_on_one_thread(void) {
    with_subinterpreter(run_two_interpreters_worker);
}

/* ---- the 3.11 rule: the maker of an attached state is taken for its holder - */

enum maker_kind {
    MAKER_WITHOUT_STATE, /* its slot is empty: the state it makes is bound to it */
    MAKER_WITH_STALE_SLOT, /* its own state was deleted by main first */
    MAKER_WITH_OWN_STATE, /* its own state is alive (bound to it) */
    MAKER_IN_A_SUBINTERPRETER, /* its own state, bound to it, is a subinterpreter's */
};

struct made_elsewhere {
    sem_t maker_step, attacher_step, done;
    enum maker_kind kind;
    PyInterpreterState *sub; /* MAKER_IN_A_SUBINTERPRETER's */
    PyThreadState *own, *made;
    int maker_pymem, maker_gilstate_check, attacher_pymem;
};

static void *maker_thread(void *arg) {
    struct made_elsewhere *job = arg;
    if (job->kind == MAKER_WITH_STALE_SLOT) {
        job->own = new_main_state(); /* bound to us; main deletes it */
        CHECK(sem_post(&job->done) == 0);
        CHECK(sem_wait(&job->maker_step) == 0);
    } else if (job->kind == MAKER_WITH_OWN_STATE) {
        job->own = new_main_state(); /* bound to us, alive throughout */
    } else if (job->kind == MAKER_IN_A_SUBINTERPRETER) {
        job->own = PyThreadState_New(job->sub); /* bound to us, alive throughout */
        CHECK(job->own != NULL);
    }
    job->made = new_main_state(); /* for the attaching thread */
    CHECK(sem_post(&job->done) == 0);
    CHECK(sem_wait(&job->maker_step) == 0); /* the attacher holds the GIL with it */
    job->maker_gilstate_check = PyGILState_Check();
    job->maker_pymem = allocates_pymem(40); /* PyMem_Free on 3.11, racing nobody: the holder is parked */
    CHECK(sem_post(&job->done) == 0);
    if (job->own != NULL && job->kind != MAKER_WITH_STALE_SLOT) {
        CHECK(sem_wait(&job->maker_step) == 0); /* the attacher is done */
        PyEval_RestoreThread(job->own);
        delete_current();
    }
    return NULL;
}

/* Whether a thread that attached a state another thread made gets a PyMem
 * block: on 3.11 it asks; 3.12+'s debug hooks refuse PyMem there
 * (PyGILState_Check() compares with the maker's binding), so it answers -1
 * without asking. family_follows_the_gil covers 3.12+. */
static int attacher_pymem(void) {
#if PY_VERSION_HEX < 0x030C0000
    return allocates_pymem(40);
#else
    return -1;
#endif
}

static void *attaching_thread(void *arg) {
    struct made_elsewhere *job = arg;
    PyEval_RestoreThread(job->made);
    job->attacher_pymem = attacher_pymem();
    CHECK(sem_post(&job->done) == 0);
    CHECK(sem_wait(&job->attacher_step) == 0);
    delete_current();
    return NULL;
}

static void made_by_one_thread_attached_by_another(enum maker_kind kind, PyInterpreterState *sub) {
    struct made_elsewhere job = {.kind = kind, .sub = sub};
    CHECK(sem_init(&job.maker_step, 0, 0) == 0 && sem_init(&job.attacher_step, 0, 0) == 0);
    CHECK(sem_init(&job.done, 0, 0) == 0);
    pthread_t maker, attacher;
    Py_BEGIN_ALLOW_THREADS
    CHECK(pthread_create(&maker, NULL, maker_thread, &job) == 0);
    CHECK(sem_wait(&job.done) == 0);
    Py_END_ALLOW_THREADS
    if (kind == MAKER_WITH_STALE_SLOT) {
        PyThreadState_Clear(job.own);
        PyThreadState_Delete(job.own);
        Py_BEGIN_ALLOW_THREADS
        CHECK(sem_post(&job.maker_step) == 0);
        CHECK(sem_wait(&job.done) == 0);
        Py_END_ALLOW_THREADS
    }
    Py_BEGIN_ALLOW_THREADS
    CHECK(pthread_create(&attacher, NULL, attaching_thread, &job) == 0);
    CHECK(sem_wait(&job.done) == 0); /* attached, parked */
    CHECK(sem_post(&job.maker_step) == 0); /* the maker asks */
    CHECK(sem_wait(&job.done) == 0);
    CHECK(sem_post(&job.attacher_step) == 0); /* the attacher ends its state */
    CHECK(pthread_join(attacher, NULL) == 0);
    if (kind == MAKER_WITH_OWN_STATE || kind == MAKER_IN_A_SUBINTERPRETER) {
        CHECK(sem_post(&job.maker_step) == 0);
    }
    CHECK(pthread_join(maker, NULL) == 0);
    Py_END_ALLOW_THREADS
    static const char *const kinds[] = {"maker with no state", "maker's own state deleted", "maker with its own state",
                                        "maker whose own state is a subinterpreter's"};
    printf("  %s: maker pymem %d (PyGILState_Check %d), attacher pymem %d%s\n", kinds[kind], job.maker_pymem,
           job.maker_gilstate_check, job.attacher_pymem,
           kind == MAKER_WITH_STALE_SLOT ? (job.made == job.own ? ", same address" : ", new address") : "");
#if PY_VERSION_HEX < 0x030C0000
    /* The rule's documented consequence for a maker without a live
     * main-interpreter state of its own (its slot empty, stale or a
     * subinterpreter's); a maker with one is never taken. */
    CHECK(job.maker_pymem == (kind != MAKER_WITH_OWN_STATE));
    CHECK(job.attacher_pymem == 0); /* sound: a private block */
#else
    CHECK(job.maker_pymem == 0);
#endif
}

static void maker_with_no_state_is_taken_for_the_holder(void) {
    made_by_one_thread_attached_by_another(MAKER_WITHOUT_STATE, NULL);
}

static void maker_with_a_stale_slot_is_taken_for_the_holder(void) {
    made_by_one_thread_attached_by_another(MAKER_WITH_STALE_SLOT, NULL);
}

static void maker_with_its_own_state_is_not_the_holder(void) {
    made_by_one_thread_attached_by_another(MAKER_WITH_OWN_STATE, NULL);
}

/* A thread bound to a subinterpreter that makes a main-interpreter state for
 * another thread: on 3.11 it holds the main GIL exactly as a thread that made
 * that state on itself would (states_in_two_interpreters_on_one_thread), so
 * the rule covers it too. */
static void made_by_a_maker_in(PyInterpreterState *sub) {
    made_by_one_thread_attached_by_another(MAKER_IN_A_SUBINTERPRETER, sub);
}

static void maker_in_a_subinterpreter_is_taken_for_the_holder(void) {
    with_subinterpreter(made_by_a_maker_in);
}

/* The main thread's own state, handed on: the main thread releases the GIL
 * keeping its state, bound to it since Py_Initialize, and a plain thread
 * attaches that state. On 3.11 the holder is then the main thread's slot
 * and holds the main thread's id, so the main thread, holding nothing, is
 * taken for the holder (and its PyGILState_Check agrees, which is why the
 * debug hooks let its PyMem calls through); the thread that holds the GIL
 * is not. */

struct lent_state {
    sem_t attached, give_back;
    PyThreadState *main_state;
    int attacher_pymem;
};

static void *borrowing_thread(void *arg) {
    struct lent_state *job = arg;
    PyEval_RestoreThread(job->main_state);
    job->attacher_pymem = attacher_pymem();
    CHECK(sem_post(&job->attached) == 0);
    CHECK(sem_wait(&job->give_back) == 0);
    CHECK(PyEval_SaveThread() == job->main_state);
    return NULL;
}

static void main_thread_lending_its_state_is_taken_for_the_holder(void) {
    struct lent_state job = {.attacher_pymem = -1};
    CHECK(sem_init(&job.attached, 0, 0) == 0 && sem_init(&job.give_back, 0, 0) == 0);
    job.main_state = PyEval_SaveThread();
    CHECK(job.main_state == PyGILState_GetThisThreadState());
    pthread_t borrower;
    CHECK(pthread_create(&borrower, NULL, borrowing_thread, &job) == 0);
    CHECK(sem_wait(&job.attached) == 0); /* it holds the GIL with our state, parked */
    int gilstate_check = PyGILState_Check();
    int pymem = allocates_pymem(40); /* PyMem_Free on 3.11, racing nobody: the holder is parked */
    CHECK(sem_post(&job.give_back) == 0);
    CHECK(pthread_join(borrower, NULL) == 0);
    PyEval_RestoreThread(job.main_state);
    printf("  main thread's state attached by another: main pymem %d (PyGILState_Check %d), attacher pymem %d\n",
           pymem, gilstate_check, job.attacher_pymem);
#if PY_VERSION_HEX < 0x030C0000
    CHECK(pymem == 1); /* the rule's documented consequence */
    CHECK(gilstate_check == 1);
    CHECK(job.attacher_pymem == 0); /* sound: a private block */
#else
    CHECK(pymem == 0);
    CHECK(gilstate_check == 0);
#endif
}

/* A reused thread id: a maker with no state makes a main-interpreter state
 * (bound to it, holding its id) and exits; another thread attaches that
 * state. A new thread that glibc gives the maker's descriptor has the
 * maker's pthread_self(): with an empty slot 3.11 answers it right, but once
 * its slot is a subinterpreter's state it looks, on 3.11, exactly like a
 * thread holding the main GIL with a second state it made on itself
 * (states_in_two_interpreters_on_one_thread), and is taken for the holder.
 * Every thread of the case but the new ones is made before the maker ends,
 * so that none of them takes its descriptor; a new thread without the
 * maker's id stays unjoined until the end, so that the next one cannot get
 * the same descriptor again. */

enum { REUSE_TRIES = 16 };

struct reused_id {
    sem_t attacher_step, reuser_step, done;
    PyInterpreterState *sub;
    PyThreadState *made; /* by the maker, which then exits */
    pthread_t maker;     /* its pthread_self(): made's thread_id on 3.11 */
    int reused;          /* whether a new thread got the maker's id */
    int attacher_pymem, empty_slot_pymem, sub_slot_pymem;
};

static void *exiting_maker(void *arg) {
    struct reused_id *job = arg;
    job->maker = pthread_self();
    job->made = new_main_state(); /* bound to us, which had none */
    return NULL;
}

static void *attacher_of_the_exited_makers_state(void *arg) {
    struct reused_id *job = arg;
    CHECK(sem_wait(&job->attacher_step) == 0); /* the maker has exited */
    PyEval_RestoreThread(job->made);
    job->attacher_pymem = attacher_pymem();
    CHECK(sem_post(&job->done) == 0);
    CHECK(sem_wait(&job->attacher_step) == 0);
    delete_current();
    return NULL;
}

static void *thread_with_the_makers_id(void *arg) {
    struct reused_id *job = arg;
    if (!pthread_equal(pthread_self(), job->maker)) {
        CHECK(sem_post(&job->done) == 0);
        return NULL;
    }
    job->reused = 1;
    job->empty_slot_pymem = allocates_pymem(40);
    PyThreadState *own = PyThreadState_New(job->sub); /* bound to us */
    CHECK(own != NULL);
    job->sub_slot_pymem = allocates_pymem(40); /* PyMem_Free on 3.11, racing nobody: the holder is parked */
    CHECK(sem_post(&job->done) == 0);
    CHECK(sem_wait(&job->reuser_step) == 0); /* the attacher has ended made */
    PyEval_RestoreThread(own);
    delete_current();
    return NULL;
}

static void made_by_a_maker_whose_id_is_reused(PyInterpreterState *sub) {
    struct reused_id job = {.sub = sub, .attacher_pymem = -1, .empty_slot_pymem = -1, .sub_slot_pymem = -1};
    CHECK(sem_init(&job.attacher_step, 0, 0) == 0 && sem_init(&job.reuser_step, 0, 0) == 0);
    CHECK(sem_init(&job.done, 0, 0) == 0);
    pthread_t attacher, maker, tries[REUSE_TRIES];
    int tried = 0;
    Py_BEGIN_ALLOW_THREADS
    CHECK(pthread_create(&attacher, NULL, attacher_of_the_exited_makers_state, &job) == 0);
    CHECK(pthread_create(&maker, NULL, exiting_maker, &job) == 0);
    CHECK(pthread_join(maker, NULL) == 0); /* its descriptor is free for the next thread */
    CHECK(sem_post(&job.attacher_step) == 0);
    CHECK(sem_wait(&job.done) == 0); /* attached, parked */
    while (!job.reused && tried < REUSE_TRIES) {
        CHECK(pthread_create(&tries[tried++], NULL, thread_with_the_makers_id, &job) == 0);
        CHECK(sem_wait(&job.done) == 0);
    }
    CHECK(sem_post(&job.attacher_step) == 0); /* the attacher ends made */
    CHECK(pthread_join(attacher, NULL) == 0);
    if (job.reused) {
        CHECK(sem_post(&job.reuser_step) == 0);
    }
    for (int i = 0; i < tried; i++) {
        CHECK(pthread_join(tries[i], NULL) == 0);
    }
    Py_END_ALLOW_THREADS
    if (!job.reused) {
        printf("  reused thread id: no new thread got the maker's id in %d tries; the case could not be made\n",
               tried);
        return;
    }
    printf("  reused thread id (try %d): new thread pymem %d with an empty slot, %d with a subinterpreter's; "
           "attacher pymem %d\n",
           tried, job.empty_slot_pymem, job.sub_slot_pymem, job.attacher_pymem);
    CHECK(job.empty_slot_pymem == 0); /* every version */
#if PY_VERSION_HEX < 0x030C0000
    CHECK(job.sub_slot_pymem == 1); /* the rule's documented consequence */
    CHECK(job.attacher_pymem == 0); /* sound: a private block */
#else
    CHECK(job.sub_slot_pymem == 0);
#endif
}

static void thread_reusing_a_makers_id_is_taken_for_the_holder(void) {
    with_subinterpreter(made_by_a_maker_whose_id_is_reused);
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
    Py_InitializeEx(0);
    printf("python %s\n", Py_GetVersion());
#if PY_VERSION_HEX < 0x030C0000
    RUN(stale_gilstate_slot_is_not_the_gil);
#else
    (void)stale_gilstate_slot_is_not_the_gil;
    printf("  the stale-slot case exists on 3.11 only\n");
#endif
    RUN(maker_with_no_state_is_taken_for_the_holder);
    RUN(maker_with_its_own_state_is_not_the_holder);
#if PY_VERSION_HEX < 0x030C0000
    RUN(maker_with_a_stale_slot_is_taken_for_the_holder); /* 3.12+ debug builds forbid the deletion */
#else
    (void)maker_with_a_stale_slot_is_taken_for_the_holder;
#endif
    RUN(main_thread_lending_its_state_is_taken_for_the_holder);
    RUN(family_follows_the_gil);
    /* Last: on 3.11 a subinterpreter turns off PyGILState_Check, and with it
     * the debug hooks' GIL check, for the rest of the process. */
    RUN(states_in_two_interpreters_on_one_thread);
    RUN(maker_in_a_subinterpreter_is_taken_for_the_holder);
    RUN(thread_reusing_a_makers_id_is_taken_for_the_holder);
    finish_interpreter();
    return 0;
}
