/* The parts of pyalloc._pyalloc, compiled into one module:
 *  - _pyalloc.c: the module, and pyalloc's own counters and queue;
 *  - _demo.c:    the demonstration functions behind pyalloc.demo;
 *  - _timing.c:  the timing helper of `python -m pyalloc`. */
#ifndef PYALLOC_MODULE_H
#define PYALLOC_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Shared between the parts, not exported from the module. */
#define PYALLOC_INTERNAL __attribute__((visibility("hidden")))

typedef struct {
    PyTypeObject *rust_buffer_type;
} module_state;

PYALLOC_INTERNAL module_state *pyalloc_module_state(PyObject *module);

/* _demo.c */
PYALLOC_INTERNAL extern PyType_Spec pyalloc_rust_buffer_spec;
PYALLOC_INTERNAL PyObject *pyalloc_demo_hex_py(PyObject *module, PyObject *data);
PYALLOC_INTERNAL PyObject *pyalloc_demo_consume_py(PyObject *module, PyObject *data);
PYALLOC_INTERNAL PyObject *pyalloc_demo_parallel_py(PyObject *module, PyObject *args, PyObject *kwargs);

/* _timing.c */
PYALLOC_INTERNAL PyObject *pyalloc_time_pairs_py(PyObject *module, PyObject *args);

#endif
