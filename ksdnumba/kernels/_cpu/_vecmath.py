"""Vectorisable math for the pair loops: flags, exp, log, wide vectors, ordered sums."""

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_FASTMATH_EXACT = {"contract", "nsz", "arcp"}
# NumPy's error model: a division by zero gives inf, as IEEE says, instead of a
# test and a Python exception, whose branch kept LLVM from vectorising any loop
# with a division (the one-loop IMQ row ran 2.5 times slower under Python's model).
_KERNEL = {"cache": True, "fastmath": _FASTMATH, "error_model": "numpy"}
_KERNEL_EXACT = {"cache": True, "fastmath": _FASTMATH_EXACT, "error_model": "numpy"}

GAUSSIAN = 0
IMQ = 1

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody and Waite) so that
_LN2_LO = 1.90821492927058770002e-10  # nf * _LN2_HI is exact for |nf| < 2**20
_EXP_MIN = -708.0  # exp(-708) ~ 3.3e-308, the smallest normal float64's order
_SQRT2 = 1.4142135623730951
_TWO52_PLUS_BIAS = 4503599627371519.0  # 2**52 + 1023
_ROUND_SHIFT = 6755399441055744.0  # 1.5 * 2**52


@intrinsic
def _bits_as_float64(typingctx, bits):
    """Reinterpret an int64's bits as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())

    return sig, codegen


@intrinsic
def _float64_bits(typingctx, value):
    """Reinterpret a float64's bits as an int64 (no conversion)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))

    return sig, codegen


# On CPUs with AVX-512, LLVM's default tuning vectorises with 256-bit registers
# (wider ones lowered the clock of early AVX-512 chips); the pair loops gain from
# the full width (see the module's docstring). numba sets the CPU's features for
# a whole process (NUMBA_CPU_FEATURES); this function attribute widens only the
# functions that ask for it. CPUs without AVX-512 ignore it.
_PREFER_WIDE = '"prefer-vector-width"="512"'


@intrinsic
def _wide_vectors(typingctx):
    """Mark the calling function for LLVM to vectorise with 512-bit registers.

    A call compiles to nothing; it sets the ``prefer-vector-width`` attribute of
    the function being compiled, which the function keeps in numba's cache.
    """
    sig = types.none()

    def codegen(context, builder, signature, args):
        try:
            # llvmlite's attribute set admits only LLVM's keyword attributes;
            # a string attribute is added past its check, and printed as is.
            set.add(builder.function.attributes, _PREFER_WIDE)
        except TypeError:  # another llvmlite: leave LLVM's default width
            pass
        return context.get_dummy_value()

    return sig, codegen


# The exp and log below are scalar functions that LLVM inlines into the pair loops
# and vectorises with them (numba's np.exp and np.log are scalar libm calls, which
# took half the time of a pair). They are compiled without re-association, which
# would undo their argument reductions; their callers keep it.


@njit(**_KERNEL_EXACT)
def _exp_scalar(t):
    r"""``exp(t)`` for ``t <= 0``; exactly 0 below ``-708``.

    :math:`e^t = 2^{n} e^{r}` with :math:`n = \mathrm{round}(t / \ln 2)` and
    :math:`|r| \le \ln(2) / 2`; :math:`e^r` is its Taylor polynomial of degree 12
    (truncation below 2e-16) and :math:`2^n` is built from its bits. Measured
    relative error against ``np.exp`` over ``[-708, 0]``: below 5e-16. Below
    ``-708`` (where ``exp`` is under 3.3e-308) it returns 0.

    The polynomial is evaluated by Estrin's scheme (pairs of terms, then pairs of
    pairs with r^2, r^4, r^8): a chain of 5 dependent operations instead of
    Horner's 13, so that the pair loops are not bound by the latency of one
    exp (measured: 20 % less time per pair for the Gaussian kernel).
    """
    tj = max(t, _EXP_MIN)
    # Adding 1.5 * 2**52 rounds t / ln 2 to the nearest integer n, which then
    # sits in the low bits of the sum: no rounding or conversion instruction.
    shifted = tj * _LOG2E + _ROUND_SHIFT
    nf = shifted - _ROUND_SHIFT
    r = (tj - nf * _LN2_HI) - nf * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    w0 = (1.0 + r) + r2 * (1.0 / 2.0 + r * (1.0 / 6.0))
    w1 = (1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0 + r * (1.0 / 5040.0))
    w2 = (1.0 / 40320.0 + r * (1.0 / 362880.0)) + r2 * (1.0 / 3628800.0 + r * (1.0 / 39916800.0))
    p = (w0 + r4 * w1) + (r4 * r4) * (w2 + r4 * (1.0 / 479001600.0))
    # The sum's bits are those of 1.5 * 2**52 plus n; shifted left by 52, only
    # n's remain, in the exponent field.
    p *= _bits_as_float64((_float64_bits(shifted) << 52) + (1023 << 52))
    return p if t > _EXP_MIN else 0.0


@njit(**_KERNEL_EXACT)
def _log_atleast1(q, out, bits, m):
    r"""``out[:m] = log(q[:m])`` for finite ``q >= 1``, in loops LLVM vectorises.

    With :math:`q = 2^e m`, :math:`m \in [\sqrt{1/2}, \sqrt 2)`:
    :math:`\log q = e \ln 2 + 2\,\mathrm{atanh}(z)`, :math:`z = (m - 1)/(m + 1)`,
    :math:`|z| < 0.172`, and the atanh series is cut after :math:`z^{19}`
    (truncation below 1e-17). Measured against ``np.log``: relative error below
    5e-16.
    """
    _wide_vectors()
    # Unsigned views: AVX2 has logical, not arithmetic, 64-bit vector shifts.
    qbits = q.view(np.uint64)
    ubits = bits.view(np.uint64)
    ebits = bits.view(np.float64)
    mbits = out.view(np.uint64)
    for j in range(m):
        b = qbits[j]
        ubits[j] = (b >> np.uint64(52)) | np.uint64(0x4330000000000000)  # 2**52 + exponent
        mbits[j] = (b & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000)
    for j in range(m):
        big = out[j] > _SQRT2
        mj = out[j] * 0.5 if big else out[j]
        e = (ebits[j] - _TWO52_PLUS_BIAS) + (1.0 if big else 0.0)
        z = (mj - 1.0) / (mj + 1.0)
        z2 = z * z
        p = 1.0 / 19.0
        p = p * z2 + 1.0 / 17.0
        p = p * z2 + 1.0 / 15.0
        p = p * z2 + 1.0 / 13.0
        p = p * z2 + 1.0 / 11.0
        p = p * z2 + 1.0 / 9.0
        p = p * z2 + 1.0 / 7.0
        p = p * z2 + 1.0 / 5.0
        p = p * z2 + 1.0 / 3.0
        p = p * z2 + 1.0
        out[j] = e * _LN2 + 2.0 * z * p


@njit(cache=True)
def _ordered_sum(rows):
    # A plain loop, kept out of the parallel drivers so that numba does not turn
    # it into a threaded reduction with a run-dependent order.
    total = 0.0
    for v in rows:
        total += v
    return total
