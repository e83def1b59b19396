r"""Numba CPU kernels for the Stein pair sums.

What is computed
----------------
For particles ``x`` and their scores ``s`` (both ``(n, d)``) and a Stein kernel
:math:`k_p`, every kernel returns

- ``total`` :math:`= \sum_{i,j} k_p(x_i, x_j)`,
- ``gx`` with rows :math:`\sum_j \nabla_x k_p(x_i, x_j)` (scores held fixed),
- ``gs`` with rows :math:`\sum_j \partial k_p(x_i, x_j) / \partial s(x_i)`,

which :mod:`ksdnumba.objective` chains through the target's Hessian.

Radial kernels
--------------
The Gaussian and IMQ kernels are radial, :math:`k = \phi(r^2)`, and share one row
function; only the profile (:math:`\phi` and its first three derivatives in
:math:`r^2`, evaluated in :func:`_gaussian_block` and :func:`_imq_block`)
differs. With ``u = x_i - x_j``, ``r2 = |u|^2``, ``S = s_i . s_j`` and
``D = s_i - s_j``:

.. math::

    k_p &= \phi S - 2 \phi' (D \cdot u + d) - 4 r^2 \phi'' \\
    \nabla_x k_p &= u \left[ 2 \phi' S - 4 \phi'' (D \cdot u + d + 2)
        - 8 r^2 \phi''' \right] - 2 \phi' D \\
    \partial k_p / \partial s(x) &= \phi \, s_j - 2 \phi' u

The Gaussian kernel has its own block loop: its derivatives are multiples of
:math:`\phi`, so it stores two arrays per block where IMQ stores three.

Layout of the computation
-------------------------
The particles and scores are passed transposed, as float64 ``(d, n)`` arrays, so
that the loops over the partner index ``j`` run over contiguous memory and LLVM
vectorises them. For each particle ``i`` the partners are taken in blocks of
``_BLOCK``: one pass fills the pair quantities of the block (``r2``, ``S``,
``D . u``), a second evaluates the profile and the value with an exp written to
vectorise (numba's ``np.exp`` is a scalar libm call and took half the time), and
stores the gradients' coefficients; a third accumulates the row's gradients.
LLVM vectorises a loop only while it can check cheaply that the arrays it writes
do not overlap those it reads, which is why no loop stores more than two arrays
where it can be helped (a third store made the Gaussian loop 2-3 times slower).
Measured on a 2-core Xeon, serial, d = 2, n = 2000: 4.7 ns per pair for the
Gaussian kernel (6.6 with a separate exp pass), 7.4 ns for IMQ with beta = 1/2.

In two dimensions, the case of every figure of the paper, the Gaussian kernel and
the IMQ kernel with beta = 1/2 have rows of their own (:func:`_gaussian_row_2d`,
:func:`_imq_half_row_2d`): one loop over the partners that keeps every pair
quantity in registers and stores nothing. Measured side by side with the blocked
rows (``benchmarks/compare_kernels.py``), two threads: Gaussian 1.41-1.51 times
faster, IMQ 2.6 times, with 256-bit vectors.

On CPUs with AVX-512 the pair loops ask LLVM for 512-bit vectors
(:func:`_wide_vectors`), which its default tuning does not use. Side by side on
a 2-core Cascade Lake, against the same loops in 256 bits: 1.42-1.51 times for
the 2-D Gaussian row (0.68 Gpairs/s at n = 20,000 with two threads), 1.5-1.7
times for the 2-D SVGD and MMD rows, 1.0-1.25 for the 2-D IMQ row (its square
root and division gain little from width); at d = 10, 1.0-1.4 for the Gaussian,
SVGD and MMD sums and 0.93-1.14 for IMQ, within the machine's noise.

The kernels use NumPy's
error model: under Python's, every division carried a zero test and an exception
branch that kept LLVM from vectorising its loop. The base Gaussian kernel of SVGD
and MMD has a 2-D row of the same kind (1.16-1.36 times faster than its blocked
row with the same exp).

Each row ``i`` is owned by one loop iteration and written once, and the blocks of a
row are summed in a fixed order, so results are bit-identical from run to run and
between the parallel driver and its serial twin (which serves small ``n``, where
starting the thread pool costs more than it saves). Memory is O(n d).

``fastmath`` is limited to re-association, contraction and reciprocal flags, so
NaN and infinity keep their IEEE meaning. The exp and log leave re-association
out as well: it would undo their argument reductions.

The linear kernel needs no pair loop (see :func:`linear_stein_sums`).
"""

import numpy as np
from llvmlite import ir as llvm_ir
from numba import get_num_threads, njit, prange, types
from numba.extending import intrinsic

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_FASTMATH_EXACT = {"contract", "nsz", "arcp"}
# NumPy's error model: a division by zero gives inf, as IEEE says, instead of a
# test and a Python exception, whose branch kept LLVM from vectorising any loop
# with a division (the one-loop IMQ row ran 2.5 times slower under Python's model).
_KERNEL = {"cache": True, "fastmath": _FASTMATH, "error_model": "numpy"}
_KERNEL_EXACT = {"cache": True, "fastmath": _FASTMATH_EXACT, "error_model": "numpy"}
_BLOCK = 256

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



@njit(**_KERNEL)
def _pair_block(i, xT, sT, j0, m, r2, S, Du):
    """Fill ``r2``, ``S`` and ``D . u`` for partners ``j0 .. j0 + m - 1`` of ``i``."""
    _wide_vectors()
    d = xT.shape[0]
    for jj in range(m):
        r2[jj] = 0.0
        S[jj] = 0.0
        Du[jj] = 0.0
    for k in range(d):
        xik = xT[k, i]
        sik = sT[k, i]
        xk = xT[k, j0:j0 + m]
        sk = sT[k, j0:j0 + m]
        for jj in range(m):
            u = xik - xk[jj]
            r2[jj] += u * u
            S[jj] += sik * sk[jj]
            Du[jj] += (sik - sk[jj]) * u


@njit(**_KERNEL)
def _gaussian_block(inv_h, d, m, r2, S, Du, P, C):
    """Value of a block of Gaussian pairs; fills ``P = phi`` and ``C``.

    ``grad_x k_p = C u + (P / h) D`` and ``d k_p / d s(x) = P s_j + (P / h) u``.
    The loop stores two arrays only: with a third, LLVM stopped vectorising it
    (too many pairs of arrays to check for overlap at run time).
    """
    _wide_vectors()
    inv_h2 = inv_h * inv_h
    inv_h3 = inv_h2 * inv_h
    total = 0.0
    for jj in range(m):
        p = _exp_scalar(-0.5 * inv_h * r2[jj])
        total += p * (S[jj] + (Du[jj] + d) * inv_h - r2[jj] * inv_h2)
        C[jj] = p * (r2[jj] * inv_h3 - S[jj] * inv_h - (Du[jj] + d + 2.0) * inv_h2)
        P[jj] = p
    return total


@njit(**_KERNEL)
def _imq_block(inv_h, beta, d, m, r2, S, Du, P, Q, C):
    """Value of a block of IMQ pairs; fills ``P = phi``, ``Q = -2 phi'`` and ``C``.

    ``grad_x k_p = C u + Q D`` and ``d k_p / d s(x) = P s_j + Q u``.
    """
    _wide_vectors()
    if beta == 0.5:  # q^(-1/2) is a square root, 3x cheaper than a log and an exp
        for jj in range(m):
            w = 1.0 / (1.0 + inv_h * r2[jj])
            P[jj] = np.sqrt(w)
            Q[jj] = w
    else:
        for jj in range(m):
            C[jj] = 1.0 + inv_h * r2[jj]  # q, until C is filled below
        _log_atleast1(C, P, Q.view(np.int64), m)
        for jj in range(m):
            Q[jj] = 1.0 / C[jj]
        for jj in range(m):
            P[jj] = _exp_scalar(-beta * P[jj])
    c1 = -beta * inv_h
    c2 = -(beta + 1.0) * inv_h
    c3 = -(beta + 2.0) * inv_h
    total = 0.0
    for jj in range(m):
        w = Q[jj]
        p1 = c1 * w * P[jj]
        p2 = c2 * w * p1
        p3 = c3 * w * p2
        total += P[jj] * S[jj] - 2.0 * p1 * (Du[jj] + d) - 4.0 * r2[jj] * p2
        C[jj] = 2.0 * p1 * S[jj] - 4.0 * p2 * (Du[jj] + d + 2.0) - 8.0 * r2[jj] * p3
        Q[jj] = -2.0 * p1
    return total


@njit(**_KERNEL)
def _gaussian_row_2d(i, xT, sT, inv_h, gx, gs):
    """Row ``i`` of the Gaussian Stein sums in two dimensions, in one loop.

    With ``d`` known, every pair quantity stays in a register: no blocks, no
    stores in the loop, only five running sums, which LLVM vectorises (the
    general row stores and reloads them). Uses ``C = -k_p / h - 2 phi / h^2``,
    the coefficient of :func:`_gaussian_block` rewritten with the pair's value.
    """
    _wide_vectors()
    n = xT.shape[1]
    x0 = xT[0]
    x1 = xT[1]
    s0 = sT[0]
    s1 = sT[1]
    xi0 = x0[i]
    xi1 = x1[i]
    si0 = s0[i]
    si1 = s1[i]
    c_exp = -0.5 * inv_h
    inv_h2 = inv_h * inv_h
    two_inv_h = 2.0 * inv_h  # d / h
    neg_two_inv_h2 = -2.0 * inv_h2
    total = 0.0
    ax0 = 0.0
    ax1 = 0.0
    as0 = 0.0
    as1 = 0.0
    for j in range(n):
        u0 = xi0 - x0[j]
        u1 = xi1 - x1[j]
        d0 = si0 - s0[j]
        d1 = si1 - s1[j]
        r2 = u0 * u0 + u1 * u1
        p = _exp_scalar(c_exp * r2)
        k_p = p * (si0 * s0[j] + si1 * s1[j] + (d0 * u0 + d1 * u1) * inv_h + two_inv_h
                   - r2 * inv_h2)
        total += k_p
        c = neg_two_inv_h2 * p - inv_h * k_p
        q = p * inv_h
        ax0 += c * u0 + q * d0
        ax1 += c * u1 + q * d1
        as0 += p * s0[j] + q * u0
        as1 += p * s1[j] + q * u1
    gx[i, 0] = ax0
    gx[i, 1] = ax1
    gs[i, 0] = as0
    gs[i, 1] = as1
    return total


@njit(**_KERNEL)
def _imq_half_row_2d(i, xT, sT, inv_h, gx, gs):
    """Row ``i`` of the IMQ Stein sums with beta = 1/2 in two dimensions, in one loop.

    As :func:`_gaussian_row_2d`, with the profile of :func:`_imq_block`:
    ``phi = w^(1/2)`` with ``w = 1 / (1 + r2 / h)``.
    """
    _wide_vectors()
    n = xT.shape[1]
    x0 = xT[0]
    x1 = xT[1]
    s0 = sT[0]
    s1 = sT[1]
    xi0 = x0[i]
    xi1 = x1[i]
    si0 = s0[i]
    si1 = s1[i]
    c1 = -0.5 * inv_h
    c2 = -1.5 * inv_h
    c3 = -2.5 * inv_h
    total = 0.0
    ax0 = 0.0
    ax1 = 0.0
    as0 = 0.0
    as1 = 0.0
    for j in range(n):
        u0 = xi0 - x0[j]
        u1 = xi1 - x1[j]
        d0 = si0 - s0[j]
        d1 = si1 - s1[j]
        r2 = u0 * u0 + u1 * u1
        S = si0 * s0[j] + si1 * s1[j]
        Du = d0 * u0 + d1 * u1
        w = 1.0 / (1.0 + inv_h * r2)
        p = np.sqrt(w)
        p1 = c1 * w * p
        p2 = c2 * w * p1
        p3 = c3 * w * p2
        total += p * S - 2.0 * p1 * (Du + 2.0) - 4.0 * r2 * p2
        c = 2.0 * p1 * S - 4.0 * p2 * (Du + 4.0) - 8.0 * r2 * p3
        q = -2.0 * p1
        ax0 += c * u0 + q * d0
        ax1 += c * u1 + q * d1
        as0 += p * s0[j] + q * u0
        as1 += p * s1[j] + q * u1
    gx[i, 0] = ax0
    gx[i, 1] = ax1
    gs[i, 0] = as0
    gs[i, 1] = as1
    return total


@njit(cache=True)
def _row_2d(kind, beta, d):
    """Which one-loop row serves a kernel: 1 Gaussian, 2 IMQ with beta = 1/2, 0 none."""
    if d != 2:
        return 0
    if kind == GAUSSIAN:
        return 1
    return 2 if beta == 0.5 else 0


@njit(**_KERNEL)
def _radial_row(i, xT, sT, kind, bw, beta, gx, gs, buf):
    """Row ``i`` of the radial Stein sums; writes ``gx[i]``, ``gs[i]``, returns the value."""
    _wide_vectors()
    d, n = xT.shape
    inv_h = 1.0 / bw
    r2, S, Du, P, Q, C = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5]
    for k in range(d):
        gx[i, k] = 0.0
        gs[i, k] = 0.0
    total = 0.0
    for j0 in range(0, n, _BLOCK):
        m = min(_BLOCK, n - j0)
        _pair_block(i, xT, sT, j0, m, r2, S, Du)
        if kind == GAUSSIAN:
            total += _gaussian_block(inv_h, d, m, r2, S, Du, P, C)
        else:
            total += _imq_block(inv_h, beta, d, m, r2, S, Du, P, Q, C)
        for k in range(d):
            xik = xT[k, i]
            sik = sT[k, i]
            xk = xT[k, j0:j0 + m]
            sk = sT[k, j0:j0 + m]
            acc_x = 0.0
            acc_s = 0.0
            if kind == GAUSSIAN:  # Q = P / h, not stored
                for jj in range(m):
                    u = xik - xk[jj]
                    q = P[jj] * inv_h
                    acc_x += C[jj] * u + q * (sik - sk[jj])
                    acc_s += P[jj] * sk[jj] + q * u
            else:
                for jj in range(m):
                    u = xik - xk[jj]
                    acc_x += C[jj] * u + Q[jj] * (sik - sk[jj])
                    acc_s += P[jj] * sk[jj] + Q[jj] * u
            gx[i, k] += acc_x
            gs[i, k] += acc_s
    return total


@njit(**_KERNEL)
def _radial_row_value(i, xT, sT, kind, bw, beta, buf):
    """Row ``i`` of the radial Stein kernel sum, without gradients."""
    d, n = xT.shape
    inv_h = 1.0 / bw
    r2, S, Du, P, Q, C = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5]
    total = 0.0
    for j0 in range(0, n, _BLOCK):
        m = min(_BLOCK, n - j0)
        _pair_block(i, xT, sT, j0, m, r2, S, Du)
        if kind == GAUSSIAN:
            total += _gaussian_block(inv_h, d, m, r2, S, Du, P, C)
        else:
            total += _imq_block(inv_h, beta, d, m, r2, S, Du, P, Q, C)
    return total


@njit(cache=True)
def _scratch(n):
    return np.empty((6, min(n, _BLOCK)))


@njit(cache=True)
def _ordered_sum(rows):
    # A plain loop, kept out of the parallel drivers so that numba does not turn
    # it into a threaded reduction with a run-dependent order.
    total = 0.0
    for v in rows:
        total += v
    return total


# The drivers come in parallel/serial twins around the same row function. The
# parallel one splits the rows in chunks; each chunk allocates its scratch once
# instead of once per row.


@njit(cache=True, parallel=True)
def _radial_sums_parallel(xT, sT, kind, bw, beta, gx, gs, n_chunks):
    d, n = xT.shape
    rows = np.empty(n)
    fast = _row_2d(kind, beta, d)
    for c in prange(n_chunks):
        buf = _scratch(n)
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            if fast == 1:
                rows[i] = _gaussian_row_2d(i, xT, sT, 1.0 / bw, gx, gs)
            elif fast == 2:
                rows[i] = _imq_half_row_2d(i, xT, sT, 1.0 / bw, gx, gs)
            else:
                rows[i] = _radial_row(i, xT, sT, kind, bw, beta, gx, gs, buf)
    return _ordered_sum(rows)


@njit(cache=True)
def _radial_sums_serial(xT, sT, kind, bw, beta, gx, gs):
    d, n = xT.shape
    rows = np.empty(n)
    fast = _row_2d(kind, beta, d)
    if fast:
        # Called from here, not from _radial_row: through it, the row took
        # 100 ns more (5 of the 19 microseconds of all pairs at n = 50).
        inv_h = 1.0 / bw
        for i in range(n):
            if fast == 1:
                rows[i] = _gaussian_row_2d(i, xT, sT, inv_h, gx, gs)
            else:
                rows[i] = _imq_half_row_2d(i, xT, sT, inv_h, gx, gs)
        return _ordered_sum(rows)
    buf = _scratch(n)
    for i in range(n):
        rows[i] = _radial_row(i, xT, sT, kind, bw, beta, gx, gs, buf)
    return _ordered_sum(rows)


@njit(cache=True, parallel=True)
def _radial_total_parallel(xT, sT, kind, bw, beta, n_chunks):
    n = xT.shape[1]
    rows = np.empty(n)
    for c in prange(n_chunks):
        buf = _scratch(n)
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            rows[i] = _radial_row_value(i, xT, sT, kind, bw, beta, buf)
    return _ordered_sum(rows)


@njit(cache=True)
def _radial_total_serial(xT, sT, kind, bw, beta):
    n = xT.shape[1]
    rows = np.empty(n)
    buf = _scratch(n)
    for i in range(n):
        rows[i] = _radial_row_value(i, xT, sT, kind, bw, beta, buf)
    return _ordered_sum(rows)


# Below this many particles the serial twin is faster than waking the threads
# (measured on a 2-core machine: equal at n = 64, serial 40% faster at n = 16).
SERIAL_MAX_N = 64


def _use_parallel(n, parallel):
    return n > SERIAL_MAX_N if parallel is None else bool(parallel)


def _n_chunks(n):
    # A few chunks per thread balance the load. Read here, not inside the
    # kernel, where get_num_threads would make the kernel uncacheable.
    return min(n, 8 * get_num_threads())


def _transposed(x, s):
    # float64 copies: the kernels compute in float64 whatever the input dtype,
    # and compile once.
    return (np.ascontiguousarray(x.T, dtype=np.float64),
            np.ascontiguousarray(s.T, dtype=np.float64))


def _radial_sums(kind, x, s, bw, beta, parallel):
    xT, sT = _transposed(x, s)
    gx = np.empty(x.shape)
    gs = np.empty(x.shape)
    n = x.shape[0]
    if _use_parallel(n, parallel):
        total = _radial_sums_parallel(xT, sT, kind, bw, beta, gx, gs, _n_chunks(n))
    else:
        total = _radial_sums_serial(xT, sT, kind, bw, beta, gx, gs)
    return total, gx, gs


def _radial_total(kind, x, s, bw, beta, parallel):
    xT, sT = _transposed(x, s)
    n = x.shape[0]
    if _use_parallel(n, parallel):
        return _radial_total_parallel(xT, sT, kind, bw, beta, _n_chunks(n))
    return _radial_total_serial(xT, sT, kind, bw, beta)


def gaussian_stein_sums(x, s, bw, parallel=None):
    r"""Gaussian Stein kernel summed over all pairs, with its partial gradients.

    Base kernel :math:`k(x, y) = e^{-|x - y|^2 / (2 h)}`, ``h = bw``.

    Parameters
    ----------
    x, s : ndarray of shape (n, d)
        Particles and their scores.
    bw : float
        Squared length scale ``h``.
    parallel : bool or None
        Use the threaded driver; None decides from ``n``.

    Returns
    -------
    total : float
        :math:`\sum_{i,j} k_p(x_i, x_j)`.
    gx : ndarray of shape (n, d), float64
        Row ``i`` is :math:`\sum_j \nabla_x k_p(x_i, x_j)`, scores held fixed.
    gs : ndarray of shape (n, d), float64
        Row ``i`` is :math:`\sum_j \partial k_p(x_i, x_j) / \partial s(x_i)`.
    """
    return _radial_sums(GAUSSIAN, x, s, float(bw), 0.0, parallel)


def gaussian_stein_total(x, s, bw, parallel=None):
    r"""Gaussian Stein kernel summed over all pairs, :math:`\sum_{i,j} k_p(x_i, x_j)`."""
    return _radial_total(GAUSSIAN, x, s, float(bw), 0.0, parallel)


def gaussian_stein_diagonal(x, s, bw):
    """``k_p(x_i, x_i) = |s_i|^2 + d / h`` for each particle."""
    return np.einsum("ij,ij->i", s, s) + x.shape[1] / bw


def imq_stein_sums(x, s, bw, beta, parallel=None):
    r"""IMQ Stein kernel summed over all pairs, with its partial gradients.

    Base kernel :math:`k(x, y) = (1 + |x - y|^2 / h)^{-\beta}`, ``h = bw``,
    ``0 < beta < 1``. Parameters and returns as :func:`gaussian_stein_sums`.
    """
    return _radial_sums(IMQ, x, s, float(bw), float(beta), parallel)


def imq_stein_total(x, s, bw, beta, parallel=None):
    r"""IMQ Stein kernel summed over all pairs, :math:`\sum_{i,j} k_p(x_i, x_j)`."""
    return _radial_total(IMQ, x, s, float(bw), float(beta), parallel)


def imq_stein_diagonal(x, s, bw, beta):
    r"""``k_p(x_i, x_i) = |s_i|^2 + 2 d \beta / h`` for each particle."""
    return np.einsum("ij,ij->i", s, s) + 2.0 * x.shape[1] * beta / bw


def linear_stein_sums(x, s):
    r"""Linear Stein kernel summed over all pairs, with its partial gradients.

    Base kernel :math:`k(x, y) = x \cdot y`, whose Stein kernel is
    :math:`k_p(x, y) = (x \cdot y)(s(x) \cdot s(y)) + s(x) \cdot x + s(y) \cdot y + d`.
    With :math:`M = \sum_i x_i s_i^\top` every sum is linear in ``n``:

    .. math::

        \sum_{i,j} k_p = \|M\|_F^2 + 2 n \sum_i s_i \cdot x_i + n^2 d, \quad
        g^x_i = M s_i + n s_i, \quad g^s_i = M^\top x_i + n x_i.

    Returns ``total, gx, gs`` as :func:`gaussian_stein_sums`. O(n d^2) time.
    """
    x = np.asarray(x, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    n, d = x.shape
    M = x.T @ s
    total = np.sum(M * M) + 2.0 * n * np.einsum("ij,ij->", s, x) + n * n * d
    return total, s @ M.T + n * s, x @ M + n * x


def linear_stein_total(x, s):
    """Linear Stein kernel summed over all pairs (see :func:`linear_stein_sums`)."""
    x = np.asarray(x, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    n, d = x.shape
    M = x.T @ s
    return np.sum(M * M) + 2.0 * n * np.einsum("ij,ij->", s, x) + n * n * d


def linear_stein_diagonal(x, s):
    """``k_p(x_i, x_i) = |x_i|^2 |s_i|^2 + 2 s_i . x_i + d`` for each particle."""
    return (np.einsum("ij,ij->i", x, x) * np.einsum("ij,ij->i", s, s)
            + 2.0 * np.einsum("ij,ij->i", s, x) + x.shape[1])


# --------------------------------------------------------------------------- base kernel
# The contenders of KSD descent (SVGD, MMD descent) need the base Gaussian kernel
# itself, not its Stein kernel: one row function serves both, with the same blocked
# layout as the Stein kernels (transposed float64 inputs, a block of partners at a
# time, the vectorised exp).


@njit(**_KERNEL)
def _gaussian_cross_row(i, xT, yT, wT, bw, gx, gw, buf):
    r"""Row ``i`` of the Gaussian kernel sums between ``x`` and partners ``y``.

    With :math:`k_{ij} = e^{-|x_i - y_j|^2 / (2 h)}`, writes

    .. math::

        g^x_i = \sum_j k_{ij} (x_i - y_j), \qquad g^w_i = \sum_j k_{ij} w_j

    and returns :math:`\sum_j k_{ij}`. ``wT`` has shape ``(d_w, m)``; with
    ``d_w = 0`` the weighted sum is skipped (and ``gw`` not touched).
    """
    _wide_vectors()
    d, m_total = yT.shape
    dw = wT.shape[0]
    r2, p0 = buf[0], buf[1]
    for k in range(d):
        gx[i, k] = 0.0
    for k in range(dw):
        gw[i, k] = 0.0
    c = -0.5 / bw
    total = 0.0
    for j0 in range(0, m_total, _BLOCK):
        m = min(_BLOCK, m_total - j0)
        for jj in range(m):
            r2[jj] = 0.0
        for k in range(d):
            xik = xT[k, i]
            yk = yT[k, j0:j0 + m]
            for jj in range(m):
                u = xik - yk[jj]
                r2[jj] += u * u
        block_total = 0.0
        for jj in range(m):
            p0[jj] = _exp_scalar(c * r2[jj])
            block_total += p0[jj]
        total += block_total
        for k in range(d):
            xik = xT[k, i]
            yk = yT[k, j0:j0 + m]
            acc = 0.0
            for jj in range(m):
                acc += p0[jj] * (xik - yk[jj])
            gx[i, k] += acc
        for k in range(dw):
            wk = wT[k, j0:j0 + m]
            acc = 0.0
            for jj in range(m):
                acc += p0[jj] * wk[jj]
            gw[i, k] += acc
    return total


@njit(**_KERNEL)
def _gaussian_cross_row_2d(i, xT, yT, wT, c, gx, gw):
    """:func:`_gaussian_cross_row` in two dimensions, in one loop, ``c = -1 / (2 h)``.

    ``wT`` has 0 rows (MMD) or 2 (SVGD: the scores); the loop is chosen outside.
    """
    _wide_vectors()
    m = yT.shape[1]
    y0 = yT[0]
    y1 = yT[1]
    xi0 = xT[0, i]
    xi1 = xT[1, i]
    total = 0.0
    a0 = 0.0
    a1 = 0.0
    if wT.shape[0] == 2:
        w0 = wT[0]
        w1 = wT[1]
        b0 = 0.0
        b1 = 0.0
        for j in range(m):
            u0 = xi0 - y0[j]
            u1 = xi1 - y1[j]
            p = _exp_scalar(c * (u0 * u0 + u1 * u1))
            total += p
            a0 += p * u0
            a1 += p * u1
            b0 += p * w0[j]
            b1 += p * w1[j]
        gw[i, 0] = b0
        gw[i, 1] = b1
    else:
        for j in range(m):
            u0 = xi0 - y0[j]
            u1 = xi1 - y1[j]
            p = _exp_scalar(c * (u0 * u0 + u1 * u1))
            total += p
            a0 += p * u0
            a1 += p * u1
    gx[i, 0] = a0
    gx[i, 1] = a1
    return total


@njit(cache=True, parallel=True)
def _gaussian_cross_parallel(xT, yT, wT, bw, gx, gw, n_chunks):
    d, n = xT.shape
    rows = np.empty(n)
    fast = d == 2 and (wT.shape[0] == 0 or wT.shape[0] == 2)
    for c in prange(n_chunks):
        buf = _scratch(yT.shape[1])
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            if fast:
                rows[i] = _gaussian_cross_row_2d(i, xT, yT, wT, -0.5 / bw, gx, gw)
            else:
                rows[i] = _gaussian_cross_row(i, xT, yT, wT, bw, gx, gw, buf)
    return _ordered_sum(rows)


@njit(cache=True)
def _gaussian_cross_serial(xT, yT, wT, bw, gx, gw):
    d, n = xT.shape
    rows = np.empty(n)
    if d == 2 and (wT.shape[0] == 0 or wT.shape[0] == 2):
        for i in range(n):
            rows[i] = _gaussian_cross_row_2d(i, xT, yT, wT, -0.5 / bw, gx, gw)
        return _ordered_sum(rows)
    buf = _scratch(yT.shape[1])
    for i in range(n):
        rows[i] = _gaussian_cross_row(i, xT, yT, wT, bw, gx, gw, buf)
    return _ordered_sum(rows)


def _gaussian_cross(x, y, w, bw, parallel):
    xT = np.ascontiguousarray(x.T, dtype=np.float64)
    yT = xT if y is x else np.ascontiguousarray(y.T, dtype=np.float64)
    wT = (np.empty((0, yT.shape[1])) if w is None
          else np.ascontiguousarray(w.T, dtype=np.float64))
    n = x.shape[0]
    gx = np.empty((n, x.shape[1]))
    gw = np.empty((n, wT.shape[0]))
    # The number of pairs decides whether waking the threads pays (n != m for MMD).
    if (n * y.shape[0] > SERIAL_MAX_N**2) if parallel is None else parallel:
        total = _gaussian_cross_parallel(xT, yT, wT, float(bw), gx, gw, _n_chunks(n))
    else:
        total = _gaussian_cross_serial(xT, yT, wT, float(bw), gx, gw)
    return total, gx, gw


def gaussian_kernel_sums(x, y, bw, parallel=None):
    r"""Gaussian kernel summed over all pairs of ``x`` and ``y``, with its gradient.

    .. math::

        k(x, y) = e^{-|x - y|^2 / (2 h)}, \qquad
        \mathrm{total} = \sum_{i,j} k(x_i, y_j), \qquad
        g_i = \sum_j k(x_i, y_j)\, (x_i - y_j),

    so that :math:`\nabla_{x_i} \sum_j k(x_i, y_j) = -g_i / h`.

    Parameters
    ----------
    x : ndarray of shape (n, d)
        Points.
    y : ndarray of shape (m, d)
        Partners; pass ``x`` itself (the same object) for the sums within ``x``.
    bw : float
        Squared length scale ``h``.
    parallel : bool or None
        Use the threaded driver; None decides from ``n`` and ``m``.

    Returns
    -------
    total : float
        :math:`\sum_{i,j} k(x_i, y_j)`.
    g : ndarray of shape (n, d), float64
        Row ``i`` is :math:`\sum_j k(x_i, y_j) (x_i - y_j)`.
    """
    total, gx, _ = _gaussian_cross(x, y, None, bw, parallel)
    return total, gx


def gaussian_svgd_direction(x, s, bw, parallel=None):
    r"""The SVGD direction for the Gaussian kernel, one row per particle.

    .. math::

        \phi(x_i) = \frac{1}{n} \sum_j \left[ k(x_j, x_i)\, s_j
            + \nabla_{x_j} k(x_j, x_i) \right]
        = \frac{1}{n} \sum_j k_{ij} \left[ s_j + \frac{x_i - x_j}{h} \right],

    with :math:`k(x, y) = e^{-|x - y|^2 / (2 h)}`: the kernel-smoothed score
    (drift) plus the repulsion between particles.

    Parameters
    ----------
    x, s : ndarray of shape (n, d)
        Particles and their scores.
    bw : float
        Squared length scale ``h``.
    parallel : bool or None
        Use the threaded driver; None decides from ``n``.

    Returns
    -------
    ndarray of shape (n, d), float64
        Row ``i`` is :math:`\phi(x_i)`.
    """
    n = x.shape[0]
    _, gx, gs = _gaussian_cross(x, x, s, bw, parallel)
    gx *= 1.0 / bw
    gx += gs
    gx *= 1.0 / n
    return gx
