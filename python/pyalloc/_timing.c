/* The timing helper of `python -m pyalloc`: alloc+free pairs through
 * pyalloc's C API against the system allocator, in the extension itself
 * (where Rust's thread-locals cost what they cost in a shared object). */
#include "_pyalloc_module.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "pyalloc.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* _time_pairs(allocator, size, batches) -> ns per allocation+free pair, with
 * 64 blocks live per batch; allocator is "pyalloc" or "system". The caller
 * decides whether the GIL is held (pyalloc's PyMem path) or not (pass
 * release_gil=True to measure the private heap). */
PyObject *pyalloc_time_pairs_py(PyObject *module, PyObject *args) {
    (void)module;
    const char *allocator;
    Py_ssize_t size;
    Py_ssize_t batches;
    int release_gil = 0;
    if (!PyArg_ParseTuple(args, "snn|p:_time_pairs", &allocator, &size, &batches, &release_gil)) {
        return NULL;
    }
    int use_pyalloc = strcmp(allocator, "pyalloc") == 0;
    if (!use_pyalloc && strcmp(allocator, "system") != 0) {
        PyErr_Format(PyExc_ValueError, "allocator must be 'pyalloc' or 'system', not %R", PyTuple_GET_ITEM(args, 0));
        return NULL;
    }
    if (size < 1 || batches < 1) {
        PyErr_SetString(PyExc_ValueError, "size and batches must be positive");
        return NULL;
    }
    enum { LIVE = 64 };
    void *blocks[LIVE];
    int failed = 0;
    double elapsed = 0;
    PyThreadState *saved = release_gil ? PyEval_SaveThread() : NULL;
    double start = now_ns();
    for (Py_ssize_t batch = 0; batch < batches && !failed; batch++) {
        int made = 0;
        for (; made < LIVE; made++) {
            blocks[made] = use_pyalloc ? pyalloc_malloc((size_t)size) : malloc((size_t)size);
            if (blocks[made] == NULL) {
                failed = 1;
                break;
            }
            ((volatile uint8_t *)blocks[made])[0] = (uint8_t)made;
        }
        for (int i = 0; i < made; i++) {
            use_pyalloc ? pyalloc_free(blocks[i]) : free(blocks[i]);
        }
    }
    elapsed = now_ns() - start;
    if (saved != NULL) {
        PyEval_RestoreThread(saved);
    }
    if (failed) {
        return PyErr_NoMemory();
    }
    return PyFloat_FromDouble(elapsed / ((double)batches * LIVE));
}
