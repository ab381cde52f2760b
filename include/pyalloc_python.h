/* pyalloc_python.h: one copy of pyalloc's counters as a Python dict, for a
 * C extension that links pyalloc (written by hand; pyalloc.h is cbindgen's).
 *
 * Each extension module that links pyalloc has its own copy of it, with its
 * own counters: pyalloc.stats() shows only pyalloc's own extension. One line
 * in a module's method table gives it a `pyalloc_stats()` function that
 * returns its copy's counters:
 *
 *     #include "pyalloc_python.h"
 *     static PyMethodDef methods[] = {
 *         PYALLOC_STATS_METHODDEF,
 *         ...
 *     };
 */
#ifndef PYALLOC_PYTHON_H
#define PYALLOC_PYTHON_H

#include <Python.h>

#include "pyalloc.h"

/* The counters of the pyalloc linked into this module, as a dict. */
static inline PyObject *pyalloc_stats_dict(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    pyalloc_stats stats;
    pyalloc_stats_get(&stats);
    const struct {
        const char *name;
        uint64_t value;
    } fields[] = {
        {"pymem_allocs", stats.pymem_allocs},           {"pymem_frees", stats.pymem_frees},
        {"private_allocs", stats.private_allocs},       {"private_frees", stats.private_frees},
        {"deferred_pending", stats.deferred_pending},   {"deferred_freed", stats.deferred_freed},
        {"deferred_orphaned", stats.deferred_orphaned}, {"rehomed", stats.rehomed},
        {"invalid_pointers", stats.invalid_pointers},   {"deferred_unstarted", stats.deferred_unstarted},
    };
    PyObject *dict = PyDict_New();
    for (size_t i = 0; dict != NULL && i < sizeof fields / sizeof fields[0]; i++) {
        PyObject *value = PyLong_FromUnsignedLongLong(fields[i].value);
        if (value == NULL || PyDict_SetItemString(dict, fields[i].name, value) < 0) {
            Py_XDECREF(value);
            Py_CLEAR(dict);
            break;
        }
        Py_DECREF(value);
    }
    return dict;
}

#define PYALLOC_STATS_METHODDEF                                                                   \
    {                                                                                             \
        "pyalloc_stats", pyalloc_stats_dict, METH_NOARGS,                                         \
            "pyalloc_stats() -> dict\n\nThe counters of the copy of pyalloc linked into this module." \
    }

#endif /* PYALLOC_PYTHON_H */
