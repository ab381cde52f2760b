/* pyalloc.demo: the exchange between Rust and C, shown from Python. Patterns
 * worth copying into your own extension:
 *  - RustBuffer owns a block that Rust built (pyalloc_demo_hex), exposes it
 *    through the buffer protocol without a copy, and releases it with
 *    PyMem_Free in its deallocator;
 *  - consume() copies into a PyMem_Malloc block and hands ownership to Rust;
 *  - parallel() releases the GIL around Rust code that starts its own
 *    threads. */
#include "_pyalloc_module.h"

#include <structmember.h>

#include <stdint.h>

#include "pyalloc.h"

/* The most rounds parallel() accepts per thread: large enough for any test,
 * small enough that a typo cannot hang the interpreter for hours. */
#define PARALLEL_MAX_OPS 10000000

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
    return PyUnicode_FromFormat("<pyalloc.demo.RustBuffer of %zd bytes at %p>", self->len, (void *)self->data);
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

static PyType_Slot RustBuffer_slots[] = {
    {Py_tp_doc, "Bytes built by Rust on the PyMem heap, owned by Python, released with PyMem_Free."},
    {Py_tp_dealloc, RustBuffer_dealloc},
    {Py_tp_repr, RustBuffer_repr},
    {Py_tp_getset, RustBuffer_getset},
    {Py_tp_members, RustBuffer_members},
    {Py_sq_length, RustBuffer_length},
    {Py_bf_getbuffer, RustBuffer_getbuffer},
    {0, NULL},
};

PyType_Spec pyalloc_rust_buffer_spec = {
    .name = "pyalloc.demo.RustBuffer",
    .basicsize = sizeof(RustBuffer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
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

/* hex() hands C a block of the main interpreter's PyMem heap: elsewhere
 * there is none to give, which is not an out-of-memory condition. */
static int in_main_interpreter(const char *function) {
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_Format(PyExc_RuntimeError, "%s() needs the main interpreter: its result is a block of its PyMem heap",
                     function);
        return 0;
    }
    return 1;
}

/* ---- functions ----------------------------------------------------------- */

PyObject *pyalloc_demo_hex_py(PyObject *module, PyObject *data) {
    if (!in_main_interpreter("hex")) {
        return NULL;
    }
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
    RustBuffer *buffer = PyObject_New(RustBuffer, pyalloc_module_state(module)->rust_buffer_type);
    if (buffer == NULL) {
        PyMem_Free(text);
        return NULL;
    }
    buffer->data = text;
    buffer->len = (Py_ssize_t)text_len;
    buffer->weakrefs = NULL;
    return (PyObject *)buffer;
}

PyObject *pyalloc_demo_consume_py(PyObject *module, PyObject *data) {
    (void)module;
    if (!in_main_interpreter("consume")) {
        return NULL;
    }
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

PyObject *pyalloc_demo_parallel_py(PyObject *module, PyObject *args, PyObject *kwargs) {
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
