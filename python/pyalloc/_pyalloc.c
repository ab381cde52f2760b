/* pyalloc._pyalloc: the reference consumer of include/pyalloc.h, and the
 * extension behind the `pyalloc` package: this copy of pyalloc's counters
 * and deferred queue (`stats`, `collect`, `version`), pyalloc.demo's
 * functions (_demo.c) and the report's timing helper (_timing.c). */
#include "_pyalloc_module.h"

#include "pyalloc.h"
#include "pyalloc_python.h"

module_state *pyalloc_module_state(PyObject *module) {
    return (module_state *)PyModule_GetState(module);
}

static PyObject *pyalloc_py_collect(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyLong_FromSize_t(pyalloc_collect());
}

static PyObject *pyalloc_py_version(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyUnicode_FromString(pyalloc_version());
}

static PyObject *pyalloc_py_tracemalloc_tracking(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyBool_FromLong(pyalloc_tracemalloc_tracking());
}

static PyMethodDef pyalloc_methods[] = {
    {"stats", pyalloc_stats_dict, METH_NOARGS, "stats() -> dict\n\nThe counters of pyalloc's own copy."},
    {"collect", pyalloc_py_collect, METH_NOARGS,
     "collect() -> int\n\nFrees the PyMem blocks released on threads without the GIL; returns how many."},
    {"version", pyalloc_py_version, METH_NOARGS, "version() -> str\n\nThe linked pyalloc library's version."},
    {"tracemalloc_tracking", pyalloc_py_tracemalloc_tracking, METH_NOARGS,
     "tracemalloc_tracking() -> bool\n\nWhether private blocks (threads without the GIL) are shown to tracemalloc, "
     "in domain TRACEMALLOC_DOMAIN: CPython 3.15+ with PYALLOC_TRACEMALLOC=1."},
    {"hex", pyalloc_demo_hex_py, METH_O,
     "hex(data) -> RustBuffer\n\nLowercase hex text of a bytes-like object, built by Rust, owned by Python."},
    {"consume", pyalloc_demo_consume_py, METH_O,
     "consume(data) -> int\n\nCopies data into a PyMem_Malloc block, hands it to Rust, returns the sum of its bytes."},
    {"parallel", (PyCFunction)(void (*)(void))pyalloc_demo_parallel_py, METH_VARARGS | METH_KEYWORDS,
     "parallel(threads, ops, release_gil=True) -> int\n\nRuns Rust threads that allocate and free; returns a "
     "checksum that depends only on threads and ops."},
    {"_time_pairs", pyalloc_time_pairs_py, METH_VARARGS,
     "_time_pairs(allocator, size, batches, release_gil=False) -> float\n\nns per malloc+free pair ('pyalloc' or "
     "'system')."},
    {NULL, NULL, 0, NULL},
};

static int pyalloc_exec(PyObject *module) {
    /* This interpreter lifetime is pyalloc's from here: releases without the
     * GIL are queued for it rather than orphaned (see pyalloc.h). */
    pyalloc_collect();
    if (PyModule_AddIntConstant(module, "TRACEMALLOC_DOMAIN", PYALLOC_TRACEMALLOC_DOMAIN) < 0) {
        return -1;
    }
    module_state *state = pyalloc_module_state(module);
    state->rust_buffer_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &pyalloc_rust_buffer_spec, NULL);
    if (state->rust_buffer_type == NULL) {
        return -1;
    }
    Py_INCREF(state->rust_buffer_type);
    if (PyModule_AddObject(module, "RustBuffer", (PyObject *)state->rust_buffer_type) < 0) {
        Py_DECREF(state->rust_buffer_type);
        return -1;
    }
    return 0;
}

static int pyalloc_traverse(PyObject *module, visitproc visit, void *arg) {
    Py_VISIT(pyalloc_module_state(module)->rust_buffer_type);
    return 0;
}

static int pyalloc_clear(PyObject *module) {
    Py_CLEAR(pyalloc_module_state(module)->rust_buffer_type);
    return 0;
}

static void pyalloc_free_module(void *module) {
    pyalloc_clear((PyObject *)module);
}

static PyModuleDef_Slot pyalloc_slots[] = {
    {Py_mod_exec, pyalloc_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* hex() and consume() need the main interpreter's PyMem heap, so
     * importing into a subinterpreter with its own GIL is refused. (On 3.11,
     * which has no such declaration, they raise RuntimeError there.) */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_GIL_DISABLED
    /* Free-threaded builds: nothing here relies on the GIL excluding other
     * threads, so the module does not ask for it to be re-enabled.
     *  - PyMem_* is called only by a thread attached to the main interpreter
     *    (src/cpython/attached_3_13.rs reads the attached thread state, a
     *    thread-local); in these builds PyMem is mimalloc, safe for any
     *    number of attached threads at once.
     *  - A PyMem block may be freed by any attached thread (mimalloc frees
     *    across threads); a thread that is not attached queues it.
     *  - The deferred queue is lock-free (CAS push, swap drain), so several
     *    attached threads may drain it at once; the lifetime check is one
     *    atomic load, and registering the exit hook is a CAS.
     *  - This module's own state is the RustBuffer type, set once in exec.
     * Free-threaded support is unproven until it runs on such an
     * interpreter: none can be installed where pyalloc is tested. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef pyalloc_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyalloc._pyalloc",
    .m_doc = "CPython's PyMem heap shared by Rust and C: the reference extension.",
    .m_size = sizeof(module_state),
    .m_methods = pyalloc_methods,
    .m_slots = pyalloc_slots,
    .m_traverse = pyalloc_traverse,
    .m_clear = pyalloc_clear,
    .m_free = pyalloc_free_module,
};

PyMODINIT_FUNC PyInit__pyalloc(void) {
    return PyModuleDef_Init(&pyalloc_module);
}
