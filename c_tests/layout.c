/* pyalloc reads two fields of PyThreadState itself, without a call: the
 * `interp` pointer (3.11-3.13) and, on 3.11, `thread_id` (see
 * src/cpython/). Their offsets must be this interpreter's own. */
#include "harness.h"

#include <stddef.h>

static void offsets_match_the_header(void) {
    size_t interp = 0, thread_id = 0;
    pyalloc_testing_layout(&interp, &thread_id);
#if PY_VERSION_HEX < 0x030E0000
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
    finish_interpreter();
    return 0;
}
