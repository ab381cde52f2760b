/* pyalloc reads two fields of PyThreadState itself, without a call: the
 * `interp` pointer (3.11-3.15) and, on 3.11, `thread_id`; and on 3.11-3.15
 * (GIL builds) the main GIL's `locked` word (see src/cpython/main_gil.rs;
 * 3.13-3.15 find it through `_PyRuntime.debug_offsets`, whose layout differs
 * in each of them). Their
 * places must be this interpreter's own: the GIL's comes from its internal
 * headers, hence Py_BUILD_CORE. */
#define Py_BUILD_CORE 1
#include "harness.h"

#include <stddef.h>

#if READS_MAIN_GIL
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#if PY_VERSION_HEX < 0x030C0000
#define MAIN_GIL_LOCKED (&_PyRuntime.ceval.gil.locked)
#else
#define MAIN_GIL_LOCKED (&PyInterpreterState_Main()->_gil.locked)
#endif
#endif

static void offsets_match_the_header(void) {
    size_t interp = 0, thread_id = 0;
    pyalloc_testing_layout(&interp, &thread_id);
#if PY_VERSION_HEX < 0x03100000
    CHECK(interp == offsetof(PyThreadState, interp));
#else
    CHECK(interp == 0); /* read through PyThreadState_GetInterpreter */
#endif
#if PY_VERSION_HEX < 0x030C0000
    CHECK(thread_id == offsetof(PyThreadState, thread_id));
#else
    CHECK(thread_id == 0); /* not read from 3.12 on */
#endif
    printf("  interp at %zu, thread_id at %zu\n", interp, thread_id);
}

/* pyalloc confirms where the main GIL's `locked` word is the first time a
 * thread attached to the main interpreter allocates, and from then on
 * answers "not attached" from it while the GIL is free. */
static void main_gil_word_is_the_headers(void) {
    pyalloc_free(pyalloc_malloc(8)); /* an allocation under the GIL confirms it */
    const int *locked = main_gil_word(NULL);
#if READS_MAIN_GIL
    CHECK(locked != NULL && (const void *)locked == (const void *)MAIN_GIL_LOCKED);
#else
    CHECK(locked == NULL);
#endif
    printf("  main GIL's locked word %s\n", locked != NULL ? "confirmed" : "not read");
}

/* The quick answer is the right one on both sides of the GIL, is the one
 * that answers while the GIL is free, and survives a new interpreter. */
static void quick_answer_on_both_sides(void) {
    uint64_t before = 0, after = 0;
    void *held = pyalloc_malloc(8);
    CHECK(held != NULL && pyalloc_is_pymem(held));
    main_gil_word(&before);
    PyThreadState *saved = PyEval_SaveThread();
    void *released = pyalloc_malloc(8);
    CHECK(released != NULL && !pyalloc_is_pymem(released));
    pyalloc_free(released);
    PyEval_RestoreThread(saved);
    main_gil_word(&after);
    CHECK(after - before == (READS_MAIN_GIL ? 1 : 0));
    pyalloc_free(held);
}

static void quick_answer_after_reinitialising(void) {
    const int *locked = main_gil_word(NULL);
    CHECK(Py_FinalizeEx() == 0);
    Py_InitializeEx(0);
    CHECK(main_gil_word(NULL) == locked); /* the same static word */
    quick_answer_on_both_sides();
}

/* The same answer from the fields as from CPython's own functions. */
static void fields_read_what_cpython_reports(void) {
    PyThreadState *tstate = PyThreadState_Get();
    CHECK(PyThreadState_GetInterpreter(tstate) == PyInterpreterState_Main());
    void *block = pyalloc_malloc(24);
    CHECK(block != NULL && pyalloc_is_pymem(block)); /* read as attached to the main interpreter */
    pyalloc_free(block);
}

int main(void) {
    Py_InitializeEx(0);
    RUN(offsets_match_the_header);
    RUN(fields_read_what_cpython_reports);
    RUN(main_gil_word_is_the_headers);
    RUN(quick_answer_on_both_sides);
    RUN(quick_answer_after_reinitialising);
    finish_interpreter();
    return 0;
}
