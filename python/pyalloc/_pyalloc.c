/* pyalloc._pyalloc: the reference consumer of include/pyalloc.h.
 *
 * Patterns worth copying into your own extension:
 *  - RustBuffer owns a block that Rust built (pyalloc_demo_hex), exposes it
 *    through the buffer protocol without a copy, and releases it with
 *    PyMem_Free in its deallocator;
 *  - consume() copies into a PyMem_Malloc block and hands ownership to Rust;
 *  - parallel() releases the GIL around Rust code that starts its own threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "pyalloc.h"

/* The most rounds parallel() accepts per thread: large enough for any test,
 * small enough that a typo cannot hang the interpreter for hours. */
#define PARALLEL_MAX_OPS 10000000

typedef struct {
    PyTypeObject *rust_buffer_type;
} module_state;

static module_state *get_state(PyObject *module) {
    return (module_state *)PyModule_GetState(module);
}

/* ---- RustBuffer ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    uint8_t *data;       /* a pymem block from Rust: released with PyMem_Free */
    Py_ssize_t len;
    PyObject *weakrefs;
} RustBuffer;

static int RustBuffer_getbuffer(PyObject *op, Py_buffer *view, int flags) {
    RustBuffer *self = (RustBuffer *)op;
    /* Writable, so that tools like ctypes can see the address (zero copy). */
    return PyBuffer_FillInfo(view, op, self->data, self->len, 0, flags);
}

static void RustBuffer_dealloc(PyObject *op) {
    RustBuffer *self = (RustBuffer *)op;
    PyTypeObject *type = Py_TYPE(op);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    /* A memoryview keeps its exporter alive, so no view outlives this. */
    PyMem_Free(self->data);
    type->tp_free(op);
    Py_DECREF(type);
}

static Py_ssize_t RustBuffer_length(PyObject *op) {
    return ((RustBuffer *)op)->len;
}

static PyObject *RustBuffer_repr(PyObject *op) {
    RustBuffer *self = (RustBuffer *)op;
    return PyUnicode_FromFormat("<pyalloc.RustBuffer of %zd bytes at %p>", self->len, (void *)self->data);
}

static PyObject *RustBuffer_get_address(PyObject *op, void *closure) {
    (void)closure;
    return PyLong_FromVoidPtr(((RustBuffer *)op)->data);
}

static PyObject *RustBuffer_get_is_pymem(PyObject *op, void *closure) {
    (void)closure;
    return PyBool_FromLong(pyalloc_is_pymem(((RustBuffer *)op)->data));
}

static PyGetSetDef RustBuffer_getset[] = {
    {"address", RustBuffer_get_address, NULL, "Address of the Rust-built bytes (for zero-copy checks).", NULL},
    {"is_pymem", RustBuffer_get_is_pymem, NULL, "True: the block is on the PyMem heap.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef RustBuffer_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(RustBuffer, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

#ifndef Py_TPFLAGS_DISALLOW_INSTANTIATION
/* Before 3.10 the flag does not exist: refuse construction by hand. */
static PyObject *RustBuffer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)args;
    (void)kwargs;
    PyErr_Format(PyExc_TypeError, "cannot create '%.100s' instances", type->tp_name);
    return NULL;
}
#endif

static PyType_Slot RustBuffer_slots[] = {
#ifndef Py_TPFLAGS_DISALLOW_INSTANTIATION
    {Py_tp_new, RustBuffer_new},
#endif
    {Py_tp_doc, "Bytes built by Rust on the PyMem heap, owned by Python, released with PyMem_Free."},
    {Py_tp_dealloc, RustBuffer_dealloc},
    {Py_tp_repr, RustBuffer_repr},
    {Py_tp_getset, RustBuffer_getset},
    {Py_tp_members, RustBuffer_members},
    {Py_sq_length, RustBuffer_length},
    {Py_bf_getbuffer, RustBuffer_getbuffer},
    {0, NULL},
};

static PyType_Spec RustBuffer_spec = {
    .name = "pyalloc.RustBuffer",
    .basicsize = sizeof(RustBuffer),
    .flags = Py_TPFLAGS_DEFAULT
#ifdef Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_IMMUTABLETYPE
#endif
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
             | Py_TPFLAGS_DISALLOW_INSTANTIATION
#endif
    ,
    .slots = RustBuffer_slots,
};

/* ---- argument helpers ---------------------------------------------------- */

/* Reads an int argument in [min, max]: TypeError for a non-int, ValueError
 * (never OverflowError) when out of range. */
static int parse_count(PyObject *value, const char *name, Py_ssize_t min, Py_ssize_t max, Py_ssize_t *out) {
    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name, Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (number == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow != 0 || number < min || number > max) {
        PyErr_Format(PyExc_ValueError, "%s must be between %zd and %zd, not %R", name, min, max, value);
        return -1;
    }
    *out = (Py_ssize_t)number;
    return 0;
}

/* Gets a contiguous bytes-like argument, with a TypeError that names it. */
static int get_bytes_like(PyObject *value, const char *function, Py_buffer *view) {
    if (!PyObject_CheckBuffer(value)) {
        PyErr_Format(PyExc_TypeError, "%s() argument must be a bytes-like object, not %.100s", function,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    return PyObject_GetBuffer(value, view, PyBUF_SIMPLE);
}

/* ---- module functions ---------------------------------------------------- */

static PyObject *pyalloc_py_hex(PyObject *module, PyObject *data) {
    Py_buffer view;
    if (get_bytes_like(data, "hex", &view) < 0) {
        return NULL;
    }
    size_t text_len = 0;
    uint8_t *text = pyalloc_demo_hex(view.buf, (size_t)view.len, &text_len);
    PyBuffer_Release(&view);
    if (text == NULL) {
        return PyErr_NoMemory();
    }
    PyTypeObject *type = get_state(module)->rust_buffer_type;
    RustBuffer *buffer = PyObject_New(RustBuffer, type);
    if (buffer == NULL) {
        PyMem_Free(text);
        return NULL;
    }
    buffer->data = text;
    buffer->len = (Py_ssize_t)text_len;
    buffer->weakrefs = NULL;
    return (PyObject *)buffer;
}

static PyObject *pyalloc_py_consume(PyObject *module, PyObject *data) {
    (void)module;
    Py_buffer view;
    if (get_bytes_like(data, "consume", &view) < 0) {
        return NULL;
    }
    uint8_t *block = PyMem_Malloc((size_t)view.len);
    if (block == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    if (view.len > 0) {
        memcpy(block, view.buf, (size_t)view.len);
    }
    size_t len = (size_t)view.len;
    PyBuffer_Release(&view);
    /* Rust owns the block from here and drops it. */
    uint64_t sum = pyalloc_demo_consume(block, len);
    return PyLong_FromUnsignedLongLong(sum);
}

static PyObject *pyalloc_py_parallel(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *keywords[] = {"threads", "ops", "release_gil", NULL};
    PyObject *threads_arg;
    PyObject *ops_arg;
    int release_gil = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|p:parallel", keywords, &threads_arg, &ops_arg,
                                     &release_gil)) {
        return NULL;
    }
    Py_ssize_t threads;
    Py_ssize_t ops;
    if (parse_count(threads_arg, "threads", 1, PYALLOC_DEMO_MAX_THREADS, &threads) < 0 ||
        parse_count(ops_arg, "ops", 0, PARALLEL_MAX_OPS, &ops) < 0) {
        return NULL;
    }
    uint64_t checksum;
    if (release_gil) {
        Py_BEGIN_ALLOW_THREADS
        checksum = pyalloc_demo_parallel((size_t)threads, (size_t)ops);
        Py_END_ALLOW_THREADS
    } else {
        checksum = pyalloc_demo_parallel((size_t)threads, (size_t)ops);
    }
    if (checksum == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "pyalloc_demo_parallel failed: a thread could not start or found a corrupted buffer");
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(checksum);
}

static PyObject *pyalloc_py_stats(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    pyalloc_stats stats;
    pyalloc_stats_get(&stats);
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsK}", "pymem_allocs", (unsigned long long)stats.pymem_allocs,
                         "pymem_frees", (unsigned long long)stats.pymem_frees, "private_allocs",
                         (unsigned long long)stats.private_allocs, "private_frees",
                         (unsigned long long)stats.private_frees, "deferred_pending",
                         (unsigned long long)stats.deferred_pending, "deferred_freed",
                         (unsigned long long)stats.deferred_freed, "deferred_orphaned",
                         (unsigned long long)stats.deferred_orphaned, "rehomed",
                         (unsigned long long)stats.rehomed, "pending_calls",
                         (unsigned long long)stats.pending_calls, "invalid_pointers",
                         (unsigned long long)stats.invalid_pointers);
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

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* _time_pairs(allocator, size, batches) -> ns per allocation+free pair, with
 * 64 blocks live per batch; allocator is "pyalloc" or "system". The GIL stays
 * held, so pyalloc takes its PyMem path. */
static PyObject *pyalloc_py_time_pairs(PyObject *module, PyObject *args) {
    (void)module;
    const char *allocator;
    Py_ssize_t size;
    Py_ssize_t batches;
    if (!PyArg_ParseTuple(args, "snn:_time_pairs", &allocator, &size, &batches)) {
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
    double start = now_ns();
    for (Py_ssize_t batch = 0; batch < batches; batch++) {
        for (int i = 0; i < LIVE; i++) {
            blocks[i] = use_pyalloc ? pyalloc_malloc((size_t)size) : malloc((size_t)size);
            if (blocks[i] == NULL) {
                for (int j = 0; j < i; j++) {
                    use_pyalloc ? pyalloc_free(blocks[j]) : free(blocks[j]);
                }
                return PyErr_NoMemory();
            }
            ((volatile uint8_t *)blocks[i])[0] = (uint8_t)i;
        }
        for (int i = 0; i < LIVE; i++) {
            use_pyalloc ? pyalloc_free(blocks[i]) : free(blocks[i]);
        }
    }
    double elapsed = now_ns() - start;
    return PyFloat_FromDouble(elapsed / ((double)batches * LIVE));
}

static PyMethodDef pyalloc_methods[] = {
    {"hex", pyalloc_py_hex, METH_O,
     "hex(data) -> RustBuffer\n\nLowercase hex text of a bytes-like object, built by Rust, owned by Python."},
    {"consume", pyalloc_py_consume, METH_O,
     "consume(data) -> int\n\nCopies data into a PyMem_Malloc block, hands it to Rust, returns the sum of its bytes."},
    {"parallel", (PyCFunction)(void (*)(void))pyalloc_py_parallel, METH_VARARGS | METH_KEYWORDS,
     "parallel(threads, ops, release_gil=True) -> int\n\nRuns Rust threads that allocate and free; returns a "
     "checksum that depends only on threads and ops."},
    {"stats", pyalloc_py_stats, METH_NOARGS, "stats() -> dict\n\npyalloc's counters."},
    {"collect", pyalloc_py_collect, METH_NOARGS,
     "collect() -> int\n\nFrees the PyMem blocks released on threads without the GIL; returns how many."},
    {"version", pyalloc_py_version, METH_NOARGS, "version() -> str\n\nThe linked pyalloc library's version."},
    {"_time_pairs", pyalloc_py_time_pairs, METH_VARARGS,
     "_time_pairs(allocator, size, batches) -> float\n\nns per malloc+free pair ('pyalloc' or 'system')."},
    {NULL, NULL, 0, NULL},
};

/* ---- module -------------------------------------------------------------- */

static int pyalloc_exec(PyObject *module) {
    module_state *state = get_state(module);
    state->rust_buffer_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &RustBuffer_spec, NULL);
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
    Py_VISIT(get_state(module)->rust_buffer_type);
    return 0;
}

static int pyalloc_clear(PyObject *module) {
    Py_CLEAR(get_state(module)->rust_buffer_type);
    return 0;
}

static void pyalloc_free_module(void *module) {
    pyalloc_clear((PyObject *)module);
}

static PyModuleDef_Slot pyalloc_slots[] = {
    {Py_mod_exec, pyalloc_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* hex() needs the main interpreter's PyMem heap (pyalloc_demo_hex returns
     * NULL elsewhere), so importing into a subinterpreter is refused. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* Not tested on a free-threaded build (none can be installed here). */
    {Py_mod_gil, Py_MOD_GIL_USED},
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
