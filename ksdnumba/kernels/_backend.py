"""Which backend runs the pair sums: ``"cpu"``, ``"cuda"``, or ``"auto"`` to choose.

The CUDA kernels (:mod:`ksdnumba.kernels._cuda`) are imported here, lazily, and
only when a call resolves to the CUDA backend; ``import ksdnumba`` never touches
CUDA, and ``"auto"`` asks numba whether a GPU is present only for problems large
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

_available = []  # the cached answer of _cuda_available


def _cuda_available():
    """True when numba sees a usable GPU (never for numba's CUDA simulator)."""
    if not _available:
        from numba import config

        if config.ENABLE_CUDASIM:
            _available.append(False)
        else:
            try:
                from numba import cuda

                _available.append(bool(cuda.is_available()))
            except Exception:  # no numba.cuda, no driver, a broken toolkit: no GPU
                _available.append(False)
    return _available[0]


def _simulating():
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def resolve_backend(backend, n_pairs=None, d=None):
    """Check ``backend`` and decide where a problem with ``n_pairs`` pairs runs.

    Returns ``"cpu"`` or ``"cuda"``. ``"auto"`` picks CUDA when numba sees a GPU
    and the problem has at least :data:`AUTO_CUDA_MIN_PAIRS` pairs (``n_pairs``
    None: the CPU) in at most :data:`AUTO_CUDA_MAX_D` dimensions ``d``.

    Raises
    ------
    ValueError
        If ``backend`` is not one of :data:`BACKENDS`.
    RuntimeError
        If ``backend="cuda"`` and numba sees no GPU (numba's CUDA simulator,
        ``NUMBA_ENABLE_CUDASIM=1``, counts as one).
    """
    backend = check_option(backend, "backend", BACKENDS)
    if backend == "cpu":
        return "cpu"
    if backend == "cuda":
        if not (_simulating() or _cuda_available()):
            raise RuntimeError(
                "backend='cuda' needs an NVIDIA GPU that numba can use, and numba "
                "found none (numba.cuda.is_available() is False). Install numba-cuda "
                "(pip install 'ksdnumba[cuda13]', or [cuda12] for a driver older than "
                "580) on a machine with a GPU and its driver, or use backend='cpu' "
                "('auto' falls back to the CPU by itself)."
            )
        return "cuda"
    if (n_pairs is not None and n_pairs >= AUTO_CUDA_MIN_PAIRS
            and (d is None or d <= AUTO_CUDA_MAX_D) and _cuda_available()):
        return "cuda"
    return "cpu"


def kernels(backend):
    """The kernel module of a resolved backend: same functions, same signatures."""
    if backend == "cuda":
        from . import _cuda

        return _cuda
    from . import _cpu

    return _cpu
