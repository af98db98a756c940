"""The three builds of a kernel source.

Every loop kernel is one Python function compiled in up to three ways:

``literal``  ``njit(cache=True)``: serial, exact IEEE arithmetic; the reading form.
``exact``    ``njit(parallel=True, cache=True)``: ``prange`` over output elements,
             every reduction sequential inside one iteration, no fastmath. Results are
             bit-identical to a serial run and independent of the thread count. The
             oracle and the equality tests use this build.
``fast``     ``njit(parallel=True, fastmath=FAST_FLAGS, cache=True)``: the same source,
             allowed to reassociate reductions so they vectorize. The trainer uses it.

Numba's on-disk cache keys an entry by the function's qualified name, bytecode and
signature, but not by its compile flags, so two dispatchers of one function would read
each other's cache entries. :func:`fast` therefore compiles a renamed copy of the
function (``<name>__fast``), which gets its own cache file.
"""
from __future__ import annotations

import types
from typing import Callable

import numba
from numba.core import cgutils
from numba.core import types as _types
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

#: multiply-adds (or elements × :data:`ELEMENT_WORK` for an elementwise pass) at or above which one
#: operation of the fast engine runs its parallel build; below, its serial twin (waking threads
#: costs more than the arithmetic). ``indexnet.train.fastpath`` and the optimisers' fast updates use it.
PARALLEL_OP = 1 << 21
#: multiply-adds of a blocked product that one element of an elementwise pass (σ, σ', H, an
#: update, a transposition) costs in time, for :data:`PARALLEL_OP`: one thread streams about 0.8 ns
#: per float32 element of D2.14 on 800 × 100 and does a blocked multiply-add in about 0.02 ns.
#: Measured with the threads awake, as inside a step: D2.14 on 800 × 100, 66 µs serial and 16 µs
#: on 2 threads; the transposition of 800 × 100, 28 and 16 µs.
ELEMENT_WORK = 32

#: fastmath flags of the fast build. ``reassoc`` lets reductions vectorize, ``contract``
#: allows FMA. ``nnan``/``ninf`` are left out on purpose: they would delete the NaN/Inf
#: checks the trainer relies on to stop a diverging run.
FAST_FLAGS = frozenset({"reassoc", "contract", "arcp", "nsz"})


#: the exact builds' flags, stated rather than left unset: Numba compiles a function that
#: another compiled function calls with the caller's ``fastmath`` and ``error_model`` when
#: the callee leaves them unset, and registers (and caches, under a key without flags) that
#: build as the callee's own. An exact helper (``activations.shifted_exp_sum``) first
#: compiled for a fast form was then the fastmath build for every later exact caller in
#: that process and in every process reading the cache: ``softmax_loops`` lost its
#: bit-equality with ``softmax_literal`` after the fast forms' tests had filled the cache.
EXACT_FLAGS = {"fastmath": False, "error_model": "python"}


def literal(fn: Callable) -> numba.core.registry.CPUDispatcher:
    """Compile the literal (reading) form: serial, exact (:data:`EXACT_FLAGS`), cached."""
    return numba.njit(cache=True, **EXACT_FLAGS)(fn)


def exact(fn: Callable) -> numba.core.registry.CPUDispatcher:
    """Compile the exact parallel build: ``prange`` over outputs, no fastmath (:data:`EXACT_FLAGS`)."""
    return numba.njit(parallel=True, cache=True, **EXACT_FLAGS)(fn)


def serial(fn: Callable) -> numba.core.registry.CPUDispatcher:
    """Compile a small exact helper called by other kernels (no threads; :data:`EXACT_FLAGS`,
    so that a fast form calling it does not turn it into a fastmath build)."""
    return numba.njit(cache=True, **EXACT_FLAGS)(fn)


def renamed(fn: Callable, suffix: str, names: dict | None = None) -> Callable:
    """Return a copy of ``fn`` whose ``__qualname__`` ends in ``suffix``.

    The copy shares code, globals, defaults and closure; only the name differs, so
    numba's cache stores its compiled form in a separate file. With ``names``, its globals
    are a copy of ``fn``'s updated by them (the names its body resolves differently).
    """
    copy = types.FunctionType(
        fn.__code__, {**fn.__globals__, **names} if names else fn.__globals__, fn.__name__ + suffix,
        fn.__defaults__, fn.__closure__
    )
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__doc__ = fn.__doc__
    copy.__module__ = fn.__module__
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


def fast(dispatcher_or_fn) -> numba.core.registry.CPUDispatcher:
    """Compile the fastmath build of an exact kernel (or of a plain function)."""
    fn = getattr(dispatcher_or_fn, "py_func", dispatcher_or_fn)
    return numba.njit(parallel=True, fastmath=set(FAST_FLAGS), cache=True)(
        renamed(fn, "__fast")
    )


def fastform(fn: Callable) -> numba.core.registry.CPUDispatcher:
    """Compile a ``<formula>_fast`` form: parallel, the fast build's fastmath flags, cached,
    and NumPy's error model (a float division by zero gives inf instead of a branch that
    raises, which would keep a loop from vectorizing)."""
    return numba.njit(parallel=True, fastmath=set(FAST_FLAGS), cache=True, error_model="numpy")(fn)


def fastserial(fn: Callable) -> numba.core.registry.CPUDispatcher:
    """Compile a serial helper of the fast forms (same flags, no threads)."""
    return numba.njit(fastmath=set(FAST_FLAGS), cache=True, error_model="numpy")(fn)


def fastinline(fn: Callable) -> numba.core.registry.CPUDispatcher:
    """Compile a scalar helper of the fast forms inlined into its callers at numba IR
    level, so that the loops calling it can vectorize (LLVM does not inline across numba
    functions)."""
    return numba.njit(inline="always", fastmath=set(FAST_FLAGS), cache=True, error_model="numpy")(fn)


def fastrow(fn: Callable) -> numba.core.registry.CPUDispatcher:
    """Compile a row helper of the fast forms (σ or σ'·Δ along one row, a branch per kind of
    activation, each branch a vectorized loop): called, not inlined, from the parallel fast
    forms, and inlined in their serial twins (:func:`serial_twin`).

    Inlined at numba IR level, such a helper brings every kind's loop into each caller, and
    numba types and lowers them again in every parallel form that uses it. Measured with
    the helpers called from the parallel forms (2026-12-03): compiling what the digits
    default needs in one process, 14.8 → 10.2 s; MNIST epoch 0.480 → 0.429 s and the preset
    cnn epoch 1.07 → 0.96 s (one process, interleaved; a call gives the parallel loop a
    smaller body). A call per row costs nothing next to an 800-row operation but about
    7 ns against a 16-row one (the tiny step was 11 % slower with calls everywhere): the
    serial twins, which run the small operations, inline the helper (``inline_twin``)."""
    dispatcher = fastserial(fn)
    dispatcher.inline_twin = fastinline(renamed(fn, "__inline"))
    return dispatcher


def _inline_rows(fn: Callable, done: dict) -> dict:
    """The globals of ``fn`` to replace so that it inlines every row helper it reaches: each
    row helper (:func:`fastrow`) by its inline twin, each inlined helper that reaches one by
    a copy of itself that inlines it (``done``: the helpers looked at so far, mapped to
    their replacement or to themselves)."""
    names = {}
    for name in fn.__code__.co_names:
        value = fn.__globals__.get(name)
        if hasattr(value, "inline_twin"):
            names[name] = value.inline_twin
        elif isinstance(value, numba.core.registry.CPUDispatcher) and value.targetoptions.get("inline") == "always":
            if value not in done:
                done[value] = value  # while it is being looked at (a cycle keeps it as it is)
                inner = _inline_rows(value.py_func, done)
                if inner:
                    done[value] = fastinline(renamed(value.py_func, "__rows_inlined", inner))
            if done[value] is not value:
                names[name] = done[value]
    return names


_TWINS: dict = {}


def serial_twin(dispatcher) -> numba.core.registry.CPUDispatcher:
    """The same source as a fast form compiled without threads (``prange`` runs as
    ``range``), under its own cache name, with the row helpers inlined (:func:`fastrow`):
    for small operations, where waking threads costs more than the arithmetic, and for
    calls from inside another compiled function. One twin per dispatcher and process
    (every caller shares it, so it compiles once)."""
    if dispatcher not in _TWINS:
        fn = dispatcher.py_func
        _TWINS[dispatcher] = fastserial(renamed(fn, "__serial", _inline_rows(fn, {})))
    return _TWINS[dispatcher]


def _borrowed_codegen(context, builder, sig, args):
    """The array ``args[0]`` as ``sig.return_type`` (same data model for every layout) with a
    null meminfo: the same data, shape and strides, no reference-count owner."""
    view = make_array(sig.return_type)(context, builder, value=args[0])
    view.meminfo = context.get_constant_null(_types.MemInfoPointer(_types.voidptr))
    return view._getvalue()


@intrinsic
def borrowed(typingctx, arr):
    """``arr`` without its reference-count owner, for calls from compiled code: the views a
    callee takes of it (rows, blocks) then skip the atomic reference-count updates (about a
    quarter of a tiny network's whole step). Only for an array the caller keeps alive for
    the whole call and that does not escape it (is not kept or returned)."""
    if not isinstance(arr, _types.Array):
        return None
    return arr(arr), _borrowed_codegen


@intrinsic
def address_view(typingctx, address, n, like):
    """The 1-D C array of ``n`` elements at the integer ``address``, of the element type
    ``like`` (a NumPy scalar type, or an array whose dtype is taken), with no reference-count
    owner. For a compiled function entered from Python often, whose long-lived buffers are
    passed as one integer (the address of a table of their addresses) instead of as array
    arguments: each array argument costs a reference-count owner made and released per call.
    The caller keeps the buffers alive and of that size for as long as the address is used."""
    if not (isinstance(address, _types.Integer) and isinstance(n, _types.Integer)):
        return None
    if isinstance(like, _types.Array):
        dtype = like.dtype
    elif isinstance(like, _types.NumberClass):
        dtype = like.instance_type
    else:
        return None
    view = _types.Array(dtype, 1, "C")

    def codegen(context, builder, sig, args):
        out = make_array(view)(context, builder)
        data_t = context.get_value_type(view.dtype).as_pointer()
        data = builder.inttoptr(context.cast(builder, args[0], sig.args[0], _types.intp), data_t)
        itemsize = context.get_constant(_types.intp, context.get_abi_sizeof(context.get_data_type(view.dtype)))
        populate_array(out, data=data, shape=[context.cast(builder, args[1], sig.args[1], _types.intp)],
                       strides=[itemsize], itemsize=itemsize,
                       meminfo=context.get_constant_null(_types.MemInfoPointer(_types.voidptr)), parent=None)
        return out._getvalue()

    return view(address, n, like), codegen


@intrinsic
def any_layout(typingctx, arr):
    """``arr`` typed as an array of any layout (``'A'``) and :func:`borrowed`, for calls from
    compiled code. Numba compiles a function once per argument type, and a C-ordered
    array and a transposed view (``'F'``) are two types: a helper called with both
    compiles twice. Passing ``any_layout(P)`` at every call gives all callers one compile
    (a helper that reads P only as scalars loses nothing by not knowing its layout); the
    same conditions as :func:`borrowed` apply."""
    if not isinstance(arr, _types.Array):
        return None
    return arr.copy(layout="A")(arr), _borrowed_codegen


@intrinsic
def local_row(typingctx, like, nbytes):
    """A 1-D C-ordered array of ``nbytes // like.itemsize`` elements of ``like``'s dtype in the
    calling compiled function's stack frame (allocated once, in its entry block; contents
    undefined; no reference-count owner), ``nbytes`` a compile-time integer. Its length is
    a constant of the compiled code and nothing else can point into it, so a loop over all
    of its elements inside a loop that only reads other arrays keeps the row in vector
    registers for the outer loop's whole length (the register blocks of
    ``dense._support_sum``). Valid until the calling function returns; never return it."""
    if not (isinstance(like, _types.Array) and isinstance(nbytes, _types.IntegerLiteral)):
        return None
    size = max(1, nbytes.literal_value // (like.dtype.bitwidth // 8))
    row = _types.Array(like.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        ll = context.get_data_type(like.dtype)
        data = cgutils.alloca_once(builder, ll, size=size)
        data.align = 64
        itemsize = context.get_abi_sizeof(ll)
        out = make_array(row)(context, builder)
        populate_array(out, data=data, shape=[context.get_constant(_types.intp, size)],
                       strides=[context.get_constant(_types.intp, itemsize)],
                       itemsize=context.get_constant(_types.intp, itemsize), meminfo=None)
        return out._getvalue()

    return row(like, nbytes), codegen
