"""Time the CUDA backend: Stein pair sums, Stein-matrix products, the objective, L-BFGS-B.

Prints tables and, with ``--json FILE``, writes the numbers to FILE:

* **check**: the CUDA kernels against the CPU kernels at ``--check-n`` particles
  (10,000 by default): the largest relative difference of the value and of the
  two gradients, for the Gaussian and IMQ kernels in float64 (must be < 1e-10)
  and float32 (< 1e-4).
* **kernels**: for each kernel, dimension ``d``, dtype and particle count
  ``n``: the time of one evaluation of the pair sums with their gradients
  (host arrays in, host arrays out: the copies and the device reductions
  included), the median of a few calls after one that compiles, and pairs per
  second (n^2 / t); then the same for ``kn.ksd_and_grad`` (the target's score and
  HVP on the host included). A size whose time, extrapolated from the previous
  size, would pass ``--max-seconds`` is skipped and reported as such.
* **matrix**: ``kn.SteinMatrix`` products ``H @ W`` with ``B`` right-hand sides
  (``--matrix-columns``, 1 and 256 by default: a matrix-vector product and a
  bootstrap's block), for each kernel, dimension (``--matrix-dims``), dtype and
  ``n`` (``--matrix-sizes``), on the GPU and on the CPU side by side: the median
  time of one product (host arrays in and out; the operator's layout prepared
  once beforehand, as it is for every product after the first), pairs per second
  (n^2 / t), the GEMM-equivalent rate (2 n^2 B flop / t), the CPU/GPU ratio, and
  the largest difference between the two results relative to the largest entry
  (< 1e-10 in float64, < 1e-4 in float32, or the row fails). A side whose time,
  extrapolated from the previous size, would pass ``--max-seconds`` is skipped
  and reported as such; the CPU side uses this machine's cores.
* **crossover**: ``kn.ksd_and_grad`` on the CPU and on the GPU side by side
  for small ``n`` (``--crossover-sizes``, float64, d = 2), and the smallest
  ``n`` from which the GPU is faster at that size and every larger one: the
  data for ``backend="auto"``'s threshold
  (``ksdnumba.kernels._backend.AUTO_CUDA_MIN_PAIRS``, 2048² pairs, so far an
  estimate). The CPU side uses this machine's cores.
* **lbfgs**: ``kn.ksdd_lbfgs(..., backend="cuda")`` end to end on
  ``--lbfgs-n`` particles (100,000 by default), float32.
* **torch**: when torch is importable with CUDA, the dense PyTorch baseline: the
  Gaussian Stein kernel matrix written out in torch (what ksddescent evaluates)
  and autograd for the gradient, float32 and float64, with out-of-memory
  reported as such.

Run on a machine with an NVIDIA GPU and numba-cuda (``pip install -e ".[cuda13]"``)
as ``python benchmarks/bench_gpu.py``. In numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``) it runs too, at toy sizes only, which is how its
code is tested without a GPU.
"""

import argparse
import json
import math
import platform
import sys
import time

import numpy as np

BW = 0.1


def _ints(text):
    return [int(float(v)) for v in text.split(",")]


def _problem(n, d, dtype, seed=0):
    """A 2-component mixture in d dimensions and n standard normal particles."""
    import ksdnumba as kn

    means = np.zeros((2, d))
    means[0, 0], means[1, 0] = -1.0, 1.0
    target = kn.GaussianMixture(means, [0.3, 0.3])
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)
    return target, x


def _median_time(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _repeats(seconds):
    return 5 if seconds < 0.2 else 3 if seconds < 2.0 else 1


def _machine():
    import numba
    from numba import cuda

    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_cuda": getattr(cuda, "implementation", "?"),
        "simulator": bool(numba.config.ENABLE_CUDASIM),
    }
    try:
        device = cuda.get_current_device()
        name = device.name
        info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
        info["compute_capability"] = list(device.compute_capability)
        info["multiprocessors"] = device.MULTIPROCESSOR_COUNT
    except Exception as exc:  # the simulator has no device attributes
        info["gpu"] = f"unknown ({type(exc).__name__})"
    return info


def _sums(kernel):
    from ksdnumba.kernels import _cpu, _cuda  # the CUDA package, imported on demand

    if kernel == "gaussian":
        return (
            lambda x, s: _cuda.gaussian_stein_sums(x, s, BW),
            lambda x, s: _cpu.gaussian_stein_sums(x, s, BW),
        )
    return (
        lambda x, s: _cuda.imq_stein_sums(x, s, BW, 0.5),
        lambda x, s: _cpu.imq_stein_sums(x, s, BW, 0.5),
    )


def check(n, kernels):
    """Largest relative differences between the CUDA and CPU pair sums."""
    rows = []
    for kernel in kernels:
        gpu, cpu = _sums(kernel)
        for dtype in (np.float64, np.float32):
            target, x = _problem(n, 2, dtype, seed=1)
            s = target.score(x).astype(dtype)
            want = cpu(x, s)
            got = gpu(x, s)
            errors = [abs(got[0] - want[0]) / abs(want[0])]
            errors += [
                float(np.abs(g - w).max() / np.abs(w).max())
                for g, w in zip(got[1:], want[1:], strict=True)
            ]
            bound = 1e-10 if dtype == np.float64 else 1e-4
            rows.append(
                {
                    "kernel": kernel,
                    "dtype": np.dtype(dtype).name,
                    "n": n,
                    "value": errors[0],
                    "gx": errors[1],
                    "gs": errors[2],
                    "ok": max(errors) < bound,
                    "bound": bound,
                }
            )
            print(
                f"{kernel:>8} {np.dtype(dtype).name:>7} n={n:<8} value {errors[0]:.1e} "
                f"gx {errors[1]:.1e} gs {errors[2]:.1e}  "
                f"{'ok' if rows[-1]['ok'] else 'FAIL'} (< {bound:g})",
                flush=True,
            )
    return rows


def time_kernels(sizes, dims, dtypes, kernels, max_seconds):
    import ksdnumba as kn

    rows = []
    print(
        f"{'kernel':>8} {'d':>3} {'dtype':>7} {'n':>9} {'sums s':>9} {'Tpairs/s':>9} "
        f"{'objective s':>11} {'Tpairs/s':>9}",
        flush=True,
    )
    for kernel in kernels:
        gpu, _ = _sums(kernel)
        for d in dims:
            for dtype in dtypes:
                name = np.dtype(dtype).name
                target, x = _problem(min(sizes), d, dtype)
                start = time.perf_counter()
                gpu(x[:256], target.score(x[:256]).astype(dtype))  # compiles
                compile_s = time.perf_counter() - start
                previous = None
                for n in sorted(sizes):
                    if previous is not None:
                        estimate = previous[1] * (n / previous[0]) ** 2
                        if estimate > max_seconds:
                            print(
                                f"{kernel:>8} {d:>3} {name:>7} {n:>9} skipped (about "
                                f"{estimate:.0f} s per evaluation > --max-seconds)",
                                flush=True,
                            )
                            rows.append(
                                {
                                    "kernel": kernel,
                                    "d": d,
                                    "dtype": name,
                                    "n": n,
                                    "skipped_estimate_s": estimate,
                                }
                            )
                            continue
                    target, x = _problem(n, d, dtype)
                    s = target.score(x).astype(dtype)
                    first = time.perf_counter()
                    gpu(x, s)
                    first = time.perf_counter() - first
                    t_sums = _median_time(lambda x=x, s=s: gpu(x, s), _repeats(first))
                    t_obj = _median_time(
                        lambda x=x, target=target: kn.ksd_and_grad(
                            x, target, kernel=kernel, bw=BW, backend="cuda"
                        ),
                        _repeats(first),
                    )
                    previous = (n, t_sums)
                    row = {
                        "kernel": kernel,
                        "d": d,
                        "dtype": name,
                        "n": n,
                        "sums_s": t_sums,
                        "sums_tpairs_s": n * n / t_sums / 1e12,
                        "objective_s": t_obj,
                        "objective_tpairs_s": n * n / t_obj / 1e12,
                        "compile_s": compile_s,
                    }
                    rows.append(row)
                    print(
                        f"{kernel:>8} {d:>3} {name:>7} {n:>9} {t_sums:>9.4f} "
                        f"{row['sums_tpairs_s']:>9.3f} {t_obj:>11.4f} "
                        f"{row['objective_tpairs_s']:>9.3f}",
                        flush=True,
                    )
    return rows


def _matrix_problem(n, d, dtype):
    """A SteinMatrix problem: mixture scores at n standard normal points, in ``dtype``."""
    target, x = _problem(n, d, dtype, seed=4)
    s = target.score(x.astype(np.float64)).astype(dtype)
    return x, s


def time_matrix(sizes, dims, dtypes, kernels, columns, max_seconds):
    """``H @ W`` on the GPU and on the CPU for each size and number of columns."""
    import ksdnumba as kn

    rows = []
    print(
        f"{'kernel':>8} {'d':>3} {'dtype':>7} {'n':>8} {'B':>4} {'cuda s':>9} {'cpu s':>9} "
        f"{'cpu/cuda':>8} {'cuda Gpairs/s':>13} {'cuda GFLOP/s':>12} {'max diff':>8}",
        flush=True,
    )
    for kernel in kernels:
        for d in dims:
            for dtype in dtypes:
                name = np.dtype(dtype).name
                bound = 1e-10 if dtype == np.float64 else 1e-4
                previous = {}  # (backend, B) -> (n, seconds)
                for n in sorted(sizes):
                    x, s = _matrix_problem(n, d, dtype)
                    W_all = np.random.default_rng(5).standard_normal((n, max(columns)))
                    for B in columns:
                        W = W_all[:, :B]
                        row = {"kernel": kernel, "d": d, "dtype": name, "n": n, "B": B}
                        products = {}
                        for backend in ("cuda", "cpu"):
                            if (backend, B) in previous:
                                n0, t0 = previous[backend, B]
                                estimate = t0 * (n / n0) ** 2
                                if estimate > max_seconds:
                                    row[f"{backend}_skipped_estimate_s"] = estimate
                                    continue
                            H = kn.SteinMatrix(
                                x, s, kernel=kernel, bw=BW, dtype=dtype, backend=backend
                            )
                            start = time.perf_counter()
                            products[backend] = H @ W  # compiles, lays out, and warms up
                            first = time.perf_counter() - start
                            seconds = _median_time(lambda H=H, W=W: H @ W, _repeats(first))
                            previous[backend, B] = (n, seconds)
                            row[f"{backend}_s"] = seconds
                        if "cuda_s" in row:
                            row["cuda_gpairs_s"] = n * n / row["cuda_s"] / 1e9
                            row["cuda_gflop_s"] = 2.0 * n * n * B / row["cuda_s"] / 1e9
                        if "cuda_s" in row and "cpu_s" in row:
                            row["cpu_over_cuda"] = row["cpu_s"] / row["cuda_s"]
                        if len(products) == 2:
                            want = products["cpu"]
                            diff = np.abs(products["cuda"] - want).max() / np.abs(want).max()
                            row.update(max_rel_diff=float(diff), bound=bound, ok=bool(diff < bound))
                        rows.append(row)

                        def fmt(key, spec, row=row):
                            return format(row[key], spec) if key in row else "-"

                        print(
                            f"{kernel:>8} {d:>3} {name:>7} {n:>8} {B:>4} "
                            f"{fmt('cuda_s', '9.4f'):>9} {fmt('cpu_s', '9.4f'):>9} "
                            f"{fmt('cpu_over_cuda', '8.2f'):>8} "
                            f"{fmt('cuda_gpairs_s', '13.2f'):>13} "
                            f"{fmt('cuda_gflop_s', '12.1f'):>12} "
                            f"{fmt('max_rel_diff', '8.1e'):>8}"
                            f"{'' if row.get('ok', True) else '  FAIL'}",
                            flush=True,
                        )
    return rows


def crossover(sizes):
    """``ksd_and_grad`` on the CPU and the GPU at small ``n``; where the GPU starts to win."""
    import ksdnumba as kn
    from ksdnumba.kernels import _backend

    rows = []
    print(f"{'n':>7} {'cpu ms':>9} {'cuda ms':>9} {'cpu/cuda':>9}", flush=True)
    for n in sorted(sizes):
        target, x = _problem(n, 2, np.float64, seed=3)
        times = {}
        for backend in ("cpu", "cuda"):

            def call(x=x, target=target, backend=backend):
                return kn.ksd_and_grad(x, target, bw=BW, backend=backend)

            call()  # compiles, and warms the caches
            first = time.perf_counter()
            call()
            first = time.perf_counter() - first
            times[backend] = _median_time(call, 21 if first < 0.01 else 5)
        rows.append({"n": n, "cpu_s": times["cpu"], "cuda_s": times["cuda"]})
        print(
            f"{n:>7} {times['cpu'] * 1e3:>9.3f} {times['cuda'] * 1e3:>9.3f} "
            f"{times['cpu'] / times['cuda']:>9.2f}",
            flush=True,
        )
    wins = [row["cpu_s"] > row["cuda_s"] for row in rows]
    # The smallest n from which the GPU wins at every size tried.
    first_win = next((row["n"] for k, row in enumerate(rows) if all(wins[k:])), None)
    current = _backend.AUTO_CUDA_MIN_PAIRS
    found = (
        f"the GPU is faster from n = {first_win} on"
        if first_win
        else "the GPU is not faster from any size tried on"
    )
    print(
        f"{found}; backend='auto' goes to it from {current} pairs (n = {math.isqrt(current)})",
        flush=True,
    )
    return {"rows": rows, "cuda_faster_from_n": first_win, "auto_cuda_min_pairs": current}


def lbfgs(n, max_iter):
    import ksdnumba as kn

    target, x0 = _problem(n, 2, np.float32, seed=2)
    x0 = x0 * 2.0 + 1.0
    kn.ksdd_lbfgs(x0[:256], target, bw=BW, max_iter=2, backend="cuda", dtype=np.float32)
    start = time.perf_counter()
    res = kn.ksdd_lbfgs(x0, target, bw=BW, max_iter=max_iter, backend="cuda", dtype=np.float32)
    seconds = time.perf_counter() - start
    row = {
        "n": n,
        "max_iter": max_iter,
        "seconds": seconds,
        "nit": int(res.nit),
        "nfev": int(res.nfev),
        "fun0": float(res.history[0]),
        "fun": float(res.fun),
        "status": int(res.status),
        "message": str(res.message),
    }
    print(
        f"ksdd_lbfgs backend='cuda' float32 n={n}: {seconds:.2f} s, {row['nit']} iterations, "
        f"{row['nfev']} evaluations ({seconds / max(row['nfev'], 1) * 1e3:.1f} ms each), "
        f"KSD^2 {row['fun0']:.3e} -> {row['fun']:.3e}; {row['message']}",
        flush=True,
    )
    return row


def _torch_dense(torch, x_np, dtype, device):
    """The dense Gaussian Stein kernel of a 2-mode mixture in torch, with autograd."""
    n, d = x_np.shape
    means = torch.zeros(2, d, dtype=dtype, device=device)
    means[0, 0], means[1, 0] = -1.0, 1.0
    var = 0.3
    x = torch.tensor(x_np, dtype=dtype, device=device, requires_grad=True)
    diff = x[:, None, :] - means[None, :, :]
    resp = torch.softmax(-0.5 * (diff**2).sum(-1) / var, dim=1)
    s = -(resp[:, :, None] * diff).sum(1) / var
    u = x[:, None, :] - x[None, :, :]  # (n, n, d): the memory the dense form needs
    r2 = (u * u).sum(-1)
    k = torch.exp(-r2 / (2 * BW))
    du = ((s[:, None, :] - s[None, :, :]) * u).sum(-1)
    stein = k * (s @ s.T + (du + d) / BW - r2 / BW**2)
    loss = stein.sum() / n**2
    loss.backward()
    return loss.item(), x.grad


def time_torch(sizes, dims, max_seconds, device_name):
    try:
        import torch
    except ImportError:
        print("torch baseline: skipped (torch is not importable)")
        return {"skipped": "torch not importable"}
    if device_name == "cuda" and not torch.cuda.is_available():
        print("torch baseline: skipped (torch sees no CUDA device)")
        return {"skipped": "torch without CUDA"}
    device = torch.device(device_name)
    rows = []
    print(f"torch {torch.__version__} dense Stein kernel + autograd on {device_name}")
    for d in dims:
        for dtype_name in ("float32", "float64"):
            dtype = getattr(torch, dtype_name)
            previous = None
            for n in sorted(sizes):
                row = {"d": d, "dtype": dtype_name, "n": n}
                if previous is not None and previous[1] * (n / previous[0]) ** 2 > max_seconds:
                    row["skipped_estimate_s"] = previous[1] * (n / previous[0]) ** 2
                    print(
                        f"  d={d} {dtype_name} n={n}: skipped (estimated "
                        f"{row['skipped_estimate_s']:.0f} s)"
                    )
                    rows.append(row)
                    continue
                _, x = _problem(n, d, np.float64)

                def call(x=x, dtype=dtype):
                    _torch_dense(torch, x, dtype, device)
                    if device_name == "cuda":
                        torch.cuda.synchronize()

                try:
                    call()
                    t = _median_time(call, 3)
                except torch.cuda.OutOfMemoryError if device_name == "cuda" else MemoryError:
                    row["error"] = "out of memory"
                    print(f"  d={d} {dtype_name} n={n}: out of memory")
                    rows.append(row)
                    if device_name == "cuda":
                        torch.cuda.empty_cache()
                    break
                previous = (n, t)
                row.update(seconds=t, tpairs_s=n * n / t / 1e12)
                print(
                    f"  d={d} {dtype_name} n={n}: {t:.4f} s, {row['tpairs_s']:.4f} Tpairs/s",
                    flush=True,
                )
                rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[10**4, 10**5, 3 * 10**5, 10**6])
    parser.add_argument("--dims", type=_ints, default=[2, 10])
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--kernels", default="gaussian,imq")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=20.0,
        help="skip a size whose evaluation would take longer (extrapolated)",
    )
    parser.add_argument("--check-n", type=int, default=10**4)
    parser.add_argument(
        "--matrix-sizes", type=_ints, default=[20000], help="n of the SteinMatrix products"
    )
    parser.add_argument("--matrix-dims", type=_ints, default=[10])
    parser.add_argument(
        "--matrix-columns",
        type=_ints,
        default=[1, 256],
        help="right-hand sides B of the SteinMatrix products",
    )
    parser.add_argument("--crossover-sizes", type=_ints, default=[128, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--lbfgs-n", type=int, default=10**5)
    parser.add_argument("--lbfgs-iter", type=int, default=100)
    parser.add_argument("--torch-sizes", type=_ints, default=[10**3, 10**4, 3 * 10**4, 10**5])
    parser.add_argument("--torch-device", default="cuda")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args(argv)
    kernels = args.kernels.split(",")
    dtypes = [np.dtype(v).type for v in args.dtypes.split(",")]

    report = {"machine": _machine()}
    print(json.dumps(report["machine"]), flush=True)
    print("\n# check: CUDA against CPU", flush=True)
    report["check"] = check(args.check_n, kernels)
    print("\n# kernels: one evaluation, value and gradient", flush=True)
    report["kernels"] = time_kernels(args.sizes, args.dims, dtypes, kernels, args.max_seconds)
    print("\n# matrix: SteinMatrix products H @ W, GPU and CPU", flush=True)
    report["matrix"] = time_matrix(
        args.matrix_sizes, args.matrix_dims, dtypes, kernels, args.matrix_columns, args.max_seconds
    )
    print("\n# crossover: ksd_and_grad on the CPU and on the GPU, float64, d = 2", flush=True)
    report["crossover"] = crossover(args.crossover_sizes)
    print("\n# lbfgs", flush=True)
    report["lbfgs"] = lbfgs(args.lbfgs_n, args.lbfgs_iter)
    print("\n# torch", flush=True)
    report["torch"] = (
        {"skipped": "--no-torch"}
        if args.no_torch
        else time_torch(args.torch_sizes, args.dims, args.max_seconds, args.torch_device)
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    checks = report["check"] + [row for row in report["matrix"] if "ok" in row]
    return 0 if all(row["ok"] for row in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
