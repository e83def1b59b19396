"""Vectorisable math for the pair loops: flags, exp, log, wide vectors, ordered sums."""

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic, overload

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_FASTMATH_EXACT = {"contract", "nsz", "arcp"}
# NumPy's error model: a division by zero gives inf, as IEEE says, instead of a
# test and a Python exception, whose branch kept LLVM from vectorising any loop
# with a division.
_KERNEL = {"cache": True, "fastmath": _FASTMATH, "error_model": "numpy"}
_KERNEL_EXACT = {"cache": True, "fastmath": _FASTMATH_EXACT, "error_model": "numpy"}

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody and Waite) so that
_LN2_LO = 1.90821492927058770002e-10  # nf * _LN2_HI is exact for |nf| < 2**20
_EXP_MIN = -708.0  # exp(-708) ~ 3.3e-308, the smallest normal float64's order
_SQRT2 = 1.4142135623730951
_TWO52_PLUS_BIAS = 4503599627371519.0  # 2**52 + 1023
_ROUND_SHIFT = 6755399441055744.0  # 1.5 * 2**52
# float32's counterparts: the exp's smallest argument (exp(-87) ~ 1.6e-38, the
# smallest normal float32's order), ln 2 in two parts with nf * hi exact for
# |nf| < 2**15 (hi has 9 significant bits), and 1.5 * 2**23.
_EXP_MIN32 = np.float32(-87.0)
_LOG2E32 = np.float32(_LOG2E)
_LN2_HI32 = np.float32(0.693359375)
_LN2_LO32 = np.float32(-2.12194440e-4)
_ROUND_SHIFT32 = np.float32(12582912.0)


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


@intrinsic
def _pow2_of_shifted32(typingctx, shifted):
    """``2**n`` from ``shifted = 1.5 * 2**23 + n`` (a float32, ``|n| < 127``), through its bits.

    The sum's low mantissa bits hold ``n``; shifted left by 23 they land in the
    exponent field, where adding the bias gives ``2**n``. All in 32-bit
    integers (numba widens its own integer arithmetic to 64 bits, which would
    halve the width of the vectorised loops).
    """
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = llvm_ir.IntType(32)
        bits = builder.bitcast(args[0], i32)
        bits = builder.shl(bits, llvm_ir.Constant(i32, 23))
        bits = builder.add(bits, llvm_ir.Constant(i32, 127 << 23))
        return builder.bitcast(bits, llvm_ir.FloatType())

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


@intrinsic
def _not_inlined(typingctx):
    """Keep the calling function out of its callers (LLVM's ``noinline``).

    A row function inlined into the threaded driver and into its serial twin
    is optimised twice, in two contexts, and with re-association allowed the
    two copies need not sum in the same order: the float32 IMQ row in two
    dimensions gave totals that differed in the last bits between the
    drivers. Compiled on its own, the row is the same code for both.
    """
    sig = types.none()

    def codegen(context, builder, signature, args):
        builder.function.attributes.add("noinline")
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
    exp.
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
def _exp_scalar32(t):
    r"""``exp(t)`` in float32 for float32 ``t <= 0``; exactly 0 below ``-87``.

    :func:`_exp_scalar`'s reduction in float32: :math:`e^t = 2^n e^r`,
    :math:`|r| \le \ln(2) / 2`, :math:`e^r` by its Taylor polynomial of degree 7
    (truncation below 6e-9) in Estrin's scheme. Measured relative error against
    ``np.exp`` in float64 over ``[-87, 0]``: below 1.7e-7 (1.4 float32 ulps).
    """
    tj = max(t, _EXP_MIN32)
    shifted = tj * _LOG2E32 + _ROUND_SHIFT32
    nf = shifted - _ROUND_SHIFT32
    r = (tj - nf * _LN2_HI32) - nf * _LN2_LO32
    r2 = r * r
    w0 = (np.float32(1.0) + r) + r2 * (np.float32(1.0 / 2.0) + r * np.float32(1.0 / 6.0))
    w1 = (np.float32(1.0 / 24.0) + r * np.float32(1.0 / 120.0)) + r2 * (
        np.float32(1.0 / 720.0) + r * np.float32(1.0 / 5040.0)
    )
    p = (w0 + (r2 * r2) * w1) * _pow2_of_shifted32(shifted)
    return p if t > _EXP_MIN32 else np.float32(0.0)


def fexp(t):
    """``exp(t)`` for ``t <= 0`` in ``t``'s precision.

    :func:`_exp_scalar` or :func:`_exp_scalar32`.
    """
    raise NotImplementedError("fexp is called from compiled code only")


@overload(fexp)
def _fexp_overload(t):
    if t == types.float32:
        return lambda t: _exp_scalar32(t)
    return lambda t: _exp_scalar(t)


def like(ref, value):
    """``value`` cast to the dtype of ``ref`` (an array or a scalar), in compiled code.

    The pair loops are written once for float32 and float64: a float literal is
    a float64 in numba, and one of them in a float32 expression made the whole
    expression float64 (the width of the vectors halved). Constants taken
    through ``like`` are folded by LLVM.
    """
    raise NotImplementedError("like is called from compiled code only")


@overload(like, inline="always")
def _like_overload(ref, value):
    dtype = ref.dtype if isinstance(ref, types.Array) else ref

    def cast(ref, value):
        return dtype(value)

    return cast


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
