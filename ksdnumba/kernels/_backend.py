"""Which backend runs the pair sums: ``"cpu"``, ``"cuda"``, or ``"auto"`` to choose.

The CUDA kernels (:mod:`ksdnumba.kernels._cuda`) are imported here, lazily, and
only when a call resolves to the CUDA backend; ``import ksdnumba`` never touches
CUDA, and ``"auto"`` asks numba whether it can use a GPU only for problems large
enough to go there.
"""

from .._validation import check_option

BACKENDS = ("auto", "cpu", "cuda")

# "auto" sends a problem to the GPU from this many pairs (n^2 for the Stein
# sums, n m for MMD) on: below it, the copies to and from the device and the
# launches cost more than the two-core CPU kernels take (~1e5 pairs per ms).
AUTO_CUDA_MIN_PAIRS = 2048**2
# The shared memory the CUDA kernels give a tile of partners (a block may have 48
# KiB of static shared memory); kept here so that "auto" knows it without
# importing numba.cuda.
CUDA_TILE_BYTES = 32 * 1024
# ... and only up to this dimension: a partner of the Stein or SVGD sums is 2 d
# float64 numbers in that shared memory (2048 for 32 KiB).
AUTO_CUDA_MAX_D = CUDA_TILE_BYTES // (2 * 8)

_status = []  # the cached answer of _cuda_status


def _cuda_status():
    """``(usable, why_not)``: can numba compile kernels for a GPU here and run them?

    Never in numba's CUDA simulator. Otherwise it takes a GPU with its driver
    (``numba.cuda.is_available()``) and libNVVM, the CUDA compiler library, which
    numba-cuda finds in a CUDA toolkit on the machine or in the wheels that the
    ``cuda12`` and ``cuda13`` extras install. Asked once per process.
    """
    if not _status:
        _status.append(_probe_cuda())
    return _status[0]


def _probe_cuda():
    from numba import config

    if config.ENABLE_CUDASIM:
        return False, "numba's CUDA simulator is on"
    try:
        from numba import cuda

        if not cuda.is_available():
            return False, "numba.cuda.is_available() is False"
        from numba.cuda.cudadrv import nvvm

        if not nvvm.is_available():
            return False, "numba finds no libNVVM, the CUDA compiler library"
    except Exception as err:  # no numba.cuda, a broken driver or toolkit: no GPU
        return False, f"numba.cuda failed: {err}"
    return True, None


def _cuda_available():
    """True when numba can compile for and run on a GPU (never in the simulator)."""
    return _cuda_status()[0]


def _simulating():
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def resolve_backend(backend, n_pairs=None, d=None):
    """Check ``backend`` and decide where a problem with ``n_pairs`` pairs runs.

    Returns ``"cpu"`` or ``"cuda"``. ``"auto"`` picks CUDA when numba can use a
    GPU (:func:`_cuda_status`) and the problem has at least
    :data:`AUTO_CUDA_MIN_PAIRS` pairs (``n_pairs`` None: the CPU) in at most
    :data:`AUTO_CUDA_MAX_D` dimensions ``d``.

    Raises
    ------
    ValueError
        If ``backend`` is not one of :data:`BACKENDS`.
    RuntimeError
        If ``backend="cuda"`` and numba cannot use a GPU here: none, no driver,
        or no libNVVM to compile with (numba's CUDA simulator,
        ``NUMBA_ENABLE_CUDASIM=1``, counts as a GPU).
    """
    backend = check_option(backend, "backend", BACKENDS)
    if backend == "cpu":
        return "cpu"
    if backend == "cuda":
        usable, why_not = _cuda_status()
        if not (_simulating() or usable):
            raise RuntimeError(
                f"backend='cuda' needs an NVIDIA GPU that numba can use, and here it "
                f"cannot ({why_not}). Install numba-cuda with the CUDA toolkit (pip "
                "install 'ksdnumba[cuda13]', or [cuda12] for a driver older than 580) "
                "on a machine with a GPU and its driver, or use backend='cpu' ('auto' "
                "falls back to the CPU by itself)."
            )
        return "cuda"
    if (
        n_pairs is not None
        and n_pairs >= AUTO_CUDA_MIN_PAIRS
        and (d is None or d <= AUTO_CUDA_MAX_D)
        and _cuda_available()
    ):
        return "cuda"
    return "cpu"


def kernels(backend):
    """The kernel module of a resolved backend: same functions, same signatures."""
    if backend == "cuda":
        from . import _cuda

        return _cuda
    from . import _cpu

    return _cpu
