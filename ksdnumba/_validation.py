"""Input checks shared by every public entry point.

Each check names the argument it looked at and what was wrong with it, so that a
user reading the error knows which line of their own code to fix.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike

_FLOAT_DTYPES = {np.dtype(np.float32): np.float32, np.dtype(np.float64): np.float64}


def check_dtype(dtype):
    """Return ``np.float32`` or ``np.float64`` for `dtype`, or raise."""
    try:
        key = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from exc
    if key not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be np.float32 or np.float64, got {key.name}")
    return _FLOAT_DTYPES[key]


def check_particles(x, name="x0", dtype=np.float64):
    """Return `x` as a C-contiguous ``(n, d)`` array of `dtype`.

    Integers and booleans are not silently accepted as particle coordinates:
    integers are converted, anything that is not real-valued raises.
    """
    return _numeric_matrix(x, name, "(n_particles, n_dims)", dtype, copy=False)


def _numeric_matrix(x, name, shape_text, dtype, copy):
    """`x` as a finite, non-empty, real 2-D array of `dtype`, or a ValueError.

    Integers are converted; anything that is not real-valued raises. With
    ``copy=False`` the result may share memory with `x`.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be a numeric (real) array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape {shape_text}, "
            f"got {arr.ndim}-D with shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    arr = np.array(arr, dtype=dtype) if copy else np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


def check_bw(bw, name="bw"):
    """Return the bandwidth as a positive finite float, or raise."""
    if isinstance(bw, (bool, np.bool_)) or not isinstance(bw, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {bw!r}")
    bw = float(bw)
    if not np.isfinite(bw) or bw <= 0:
        raise ValueError(f"{name} must be positive and finite, got {bw!r}")
    return bw


def check_beta(beta):
    """Return the IMQ exponent as a float in (0, 1), or raise."""
    if isinstance(beta, (bool, np.bool_)) or not isinstance(beta, numbers.Real):
        raise TypeError(f"beta must be a real number in (0, 1), got {beta!r}")
    beta = float(beta)
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta must be in the open interval (0, 1), got {beta!r}")
    return beta


def check_positive_int(value, name, minimum=0):
    """Return `value` as an int >= `minimum`, or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_tolerance(value, name):
    """Return a non-negative finite float tolerance, or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a non-negative real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be non-negative and finite, got {value!r}")
    return value


def check_callback(callback):
    """Return `callback` if it is None or callable, or raise."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    return callback


def check_clamp(clamp):
    """Return None, or the box ``(low, high)`` as two finite floats with low < high."""
    if clamp is None:
        return None
    try:
        low, high = clamp
    except (TypeError, ValueError):
        raise TypeError(
            f"clamp must be None or a pair (low, high) of real numbers, got {clamp!r}"
        ) from None
    for v in (low, high):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(
                f"clamp must be None or a pair (low, high) of real numbers, got {clamp!r}"
            )
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"clamp must have finite bounds, got {clamp!r}")
    if not low < high:
        raise ValueError(f"clamp must be (low, high) with low < high, got {clamp!r}")
    return low, high


def check_samples(samples, x, name="target_samples", x_name="x0"):
    """Return reference samples as a float64 ``(m, d)`` array with ``x``'s ``d``, or raise."""
    arr = check_particles(samples, name, np.float64)
    if arr.shape[1] != x.shape[1]:
        raise ValueError(
            f"{name} has {arr.shape[1]} columns (dimensions) but {x_name} has {x.shape[1]}; "
            f"expected shape (m, {x.shape[1]})"
        )
    return arr


def check_radius(radius, n_modes):
    """Return `radius` as a positive finite float64 array of shape ``(n_modes,)``, or raise.

    A scalar is one radius for every mode.
    """
    arr = np.asarray(radius)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"radius must be a positive real number or array, got {radius!r}")
    arr = arr.astype(np.float64)
    if arr.ndim == 0:
        arr = np.full(n_modes, float(arr))
    if arr.shape != (n_modes,):
        raise ValueError(
            f"radius must be a scalar or have shape ({n_modes},), one per mode, got "
            f"shape {arr.shape}"
        )
    if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
        raise ValueError(f"radius must be positive and finite, got {radius!r}")
    return arr


def check_option(value, name, valid):
    """Return `value` if it is one of the names in `valid`, or raise listing them."""
    if not isinstance(value, str) or value not in valid:
        names = ", ".join(repr(v) for v in valid)
        raise ValueError(f"unknown {name} {value!r}; valid names are {names}")
    return value


def check_rng(rng, name="rng"):
    """Turn anything :func:`numpy.random.default_rng` accepts into a Generator (SPEC 7).

    None (fresh entropy), an int or a sequence of ints (a seed), a
    :class:`numpy.random.SeedSequence`, a bit generator, or a Generator (used as
    it is). Anything else raises ``TypeError`` naming ``name``.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (bool, np.bool_, float, str, bytes)):
        raise TypeError(
            f"{name} must be None, an int, a SeedSequence, a BitGenerator or a "
            f"numpy.random.Generator, got {type(rng).__name__}"
        )
    try:
        return np.random.default_rng(rng)
    except TypeError as exc:
        raise TypeError(
            f"{name} must be None, an int, a SeedSequence, a BitGenerator or a "
            f"numpy.random.Generator, got {type(rng).__name__}: {exc}"
        ) from None
    except ValueError as exc:  # a negative seed
        raise ValueError(f"{name}: {exc}") from None


class EvaluationError(ValueError):
    """Evaluating a sampler's objective or direction failed at some particles.

    The target's ``score`` or ``hvp`` raised, or returned the wrong shape or
    dtype, or NaN/inf; or the objective itself overflowed. At the initial
    particles this is the caller's error and propagates; later in a run the
    samplers catch it, stop, and return the last finite particles.
    """


class NonFiniteError(EvaluationError):
    """A target or the objective produced NaN or infinite values."""


def check_field(values, x, what):
    """Check the ``(n, d)`` output of a target's `what` (``score`` or ``hvp``) at `x`."""
    if (
        type(values) is np.ndarray
        and values.dtype == x.dtype
        and values.shape == x.shape
        and values.flags.c_contiguous
    ):
        return values  # the common case, checked in a fraction of the general path's time
    arr = np.asarray(values)
    if arr.shape != x.shape:
        raise EvaluationError(
            f"target.{what} returned shape {arr.shape} for particles of shape "
            f"{x.shape}; it must return one row per particle, of shape (n, d)"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise EvaluationError(f"target.{what} returned non-numeric dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=x.dtype)


def check_finite_field(values, x, what):
    """`check_field`, then raise :class:`NonFiniteError` if any value is NaN or inf."""
    arr = check_field(values, x, what)
    if not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr).all(axis=1)))
        raise NonFiniteError(
            f"target.{what} returned non-finite values (NaN or inf) for {bad} of "
            f"{x.shape[0]} particles"
        )
    return arr


def call_target(method, what, *args):
    """Call a target's `method` (named `what` in messages); wrap what it raises.

    Any exception becomes an :class:`EvaluationError` that names the method and
    chains the original, so that a sampler can stop cleanly mid-run.
    """
    try:
        return method(*args)
    except EvaluationError:
        raise
    except Exception as exc:
        raise EvaluationError(f"target.{what} raised {type(exc).__name__}: {exc}") from exc


def check_target_dims(target, x, name="x0"):
    """Raise if the target declares a dimension (``n_dims``) other than ``x``'s."""
    d = getattr(target, "n_dims", None)
    if d is not None and d != x.shape[1]:
        raise ValueError(
            f"{name} has {x.shape[1]} columns (dimensions) but the target is {d}-dimensional"
        )


# ------------------------------------------------------------------ target parameters

# Relative tolerance on max|C - C.T| / max|C| for a full covariance matrix: loose enough
# for matrices assembled in floating point (A @ A.T), tight enough to catch a typo.
_SYMMETRY_RTOL = 1e-10


def check_points(x: ArrayLike, n_dims: int, name: str = "x") -> np.ndarray:
    """Return `x` as a float64 ``(n, n_dims)`` array; a shape check only.

    No scan for NaN here: score and hvp sit in the solver's inner loop, and the
    entry points check the particles once.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n, {n_dims}), got {arr.ndim}-D "
            f"with shape {arr.shape}"
        )
    if arr.shape[1] != n_dims:
        raise ValueError(
            f"{name} has {arr.shape[1]} columns but the target has n_dims={n_dims}; "
            f"expected shape (n, {n_dims}), got {arr.shape}"
        )
    return arr


def check_directions(v: ArrayLike, x: np.ndarray, name: str = "v") -> np.ndarray:
    """Return `v` as a float64 array of `x`'s shape (a target method's directions)."""
    arr = np.asarray(v, dtype=np.float64)
    if arr.shape != x.shape:
        raise ValueError(f"{name} must have the same shape as x {x.shape}, got {arr.shape}")
    return arr


def check_means(means: ArrayLike) -> np.ndarray:
    """Return mixture means as a finite, non-empty float64 ``(K, d)`` array."""
    arr = np.array(means, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            "means must be a 2-D array of shape (n_components, n_dims), got "
            f"{arr.ndim}-D with shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"means must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("means contains non-finite values (NaN or inf)")
    return arr


def check_covariances(
    covariances: np.ndarray, n_components: int, n_dims: int, name: str, single: bool
) -> tuple[str, np.ndarray]:
    """Validate a stack of covariances; return its type and a float64 copy.

    `single` makes the messages speak of one matrix (``covariance``) instead of
    an element of a stack (``covariances[k]``).
    """
    k, d = n_components, n_dims
    cov = np.array(covariances, dtype=np.float64)
    if cov.shape == (k,):
        kind = "isotropic"
    elif cov.shape == (k, d):
        kind = "diagonal"
    elif cov.shape == (k, d, d):
        kind = "full"
    else:
        raise ValueError(
            f"{name} must have shape ({k},) (isotropic variances), ({k}, {d}) "
            f"(diagonal variances) or ({k}, {d}, {d}) (full covariance matrices) for "
            f"{k} component(s) in {d} dimension(s), got shape {cov.shape}"
        )
    if not np.all(np.isfinite(cov)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    if kind != "full":
        if np.any(cov <= 0):
            raise ValueError(f"{name} must contain positive variances, got minimum {cov.min()!r}")
        return kind, cov
    for i in range(k):
        item = name if single else f"{name}[{i}]"
        c = cov[i]
        asym = float(np.max(np.abs(c - c.T)))
        scale = float(np.max(np.abs(c)))
        if asym > _SYMMETRY_RTOL * scale:
            raise ValueError(
                f"{item} is not symmetric: max |C - C.T| = {asym:.3g} exceeds "
                f"{_SYMMETRY_RTOL:g} * max |C| = {_SYMMETRY_RTOL * scale:.3g}"
            )
        # Exact symmetry keeps the Hessian exactly symmetric.
        cov[i] = 0.5 * (c + c.T)
        try:
            np.linalg.cholesky(cov[i])
        except np.linalg.LinAlgError:
            raise ValueError(f"{item} is not positive definite") from None
    return kind, cov


def check_weights(weights: ArrayLike | None, n_components: int) -> np.ndarray:
    """Return mixture weights normalised to sum 1 (uniform for None)."""
    if weights is None:
        return np.full(n_components, 1.0 / n_components)
    w = np.array(weights, dtype=np.float64)
    if w.shape != (n_components,):
        raise ValueError(
            f"weights must have shape ({n_components},), one per component, got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contains non-finite values (NaN or inf)")
    if np.any(w < 0):
        raise ValueError(f"weights must be non-negative, got minimum {w.min()!r}")
    total = w.sum()
    if total <= 0:
        raise ValueError("weights must have a positive sum, got all zeros")
    return w / total


def check_design(X: ArrayLike, name: str = "X") -> np.ndarray:
    """Return a data matrix as a finite, non-empty float64 ``(N, p)`` array, or raise."""
    return _numeric_matrix(X, name, "(n_samples, n_features)", np.float64, copy=True)


def check_binary_labels(y: ArrayLike, n_samples: int, name: str = "y") -> np.ndarray:
    """Return labels in {0, 1} as a float64 ``(n_samples,)`` array, or raise."""
    arr = np.asarray(y)
    if arr.shape != (n_samples,):
        raise ValueError(
            f"{name} must have shape ({n_samples},), one label per row of X, got shape {arr.shape}"
        )
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must hold the labels 0 and 1, got dtype {arr.dtype}")
    values = arr.astype(np.float64)
    if not np.all((values == 0.0) | (values == 1.0)):
        bad = np.unique(values[(values != 0.0) & (values != 1.0)])[:5]
        raise ValueError(f"{name} must hold the labels 0 and 1 only, got {bad.tolist()}")
    return values


def check_fraction(value, name):
    """Return `value` as a float in the open interval (0, 1), or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in (0, 1), got {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in the open interval (0, 1), got {value!r}")
    return value


def check_square_matrices(m, name, allow_stack=True):
    """Return `m` as a finite float64 ``(p, p)`` matrix or ``(n, p, p)`` stack, or raise."""
    arr = np.asarray(m)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be a numeric (real) array, got dtype {arr.dtype}")
    ndims = (2, 3) if allow_stack else (2,)
    if arr.ndim not in ndims or arr.shape[-1] != arr.shape[-2] or arr.shape[-1] == 0:
        shapes = "(p, p) or (n, p, p)" if allow_stack else "(p, p)"
        raise ValueError(
            f"{name} must be a square matrix{' or a stack of them' if allow_stack else ''}"
            f" of shape {shapes}, got shape {arr.shape}"
        )
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


# ------------------------------------------------------------- thinning and testing


def check_like(values, x, name, x_name):
    """Return `values` as a finite float64 array of `x`'s shape ``(n, d)``, or raise."""
    arr = _numeric_matrix(values, name, "(n, d)", np.float64, copy=False)
    if arr.shape != x.shape:
        raise ValueError(
            f"{name} must have the shape of {x_name}, {x.shape}, one row per point; got {arr.shape}"
        )
    return arr


def check_per_point(values, n, name):
    """Return `values` as a finite float64 ``(n,)`` array (``(n, 1)`` accepted), or raise."""
    arr = np.asarray(values)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be a numeric (real) array, got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one value per point, got {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


def check_spd(matrix, d, name):
    """Return a symmetric positive definite ``(d, d)`` float64 matrix and its eigh, or raise.

    Returns ``(matrix, eigenvalues, eigenvectors)``; the matrix is symmetrised
    exactly after a check that it was symmetric to ``1e-10`` relative.
    """
    arr = np.array(matrix, dtype=np.float64)
    if arr.shape != (d, d):
        raise ValueError(f"{name} must have shape ({d}, {d}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    scale = float(np.max(np.abs(arr)))
    if float(np.max(np.abs(arr - arr.T))) > _SYMMETRY_RTOL * scale:
        raise ValueError(f"{name} is not symmetric")
    arr = 0.5 * (arr + arr.T)
    values, vectors = np.linalg.eigh(arr)
    # Relative to the largest eigenvalue: a matrix that rounding could make
    # singular is refused, not inverted into garbage.
    if not values[0] > d * np.finfo(np.float64).eps * max(values[-1], 0.0):
        raise ValueError(
            f"{name} is not positive definite (smallest eigenvalue {values[0]:.3g}, "
            f"largest {values[-1]:.3g})"
        )
    return arr, values, vectors
