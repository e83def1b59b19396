"""Compile every CUDA kernel to PTX and SASS without a GPU, and check the code.

For each kernel (Gaussian and IMQ Stein sums, the base Gaussian kernel of SVGD
and MMD), dimension and dtype, prints the registers per thread, the bytes
spilled to local memory, and the float64 arithmetic instructions in the PTX.
It fails (exit status 1) when a float32 kernel does float64 arithmetic other
than additions (the running sums across tiles and the block reduction are
float64 by design; a float64 multiply, FMA, division, square root or exp in a
float32 kernel means that a float64 constant slipped in). Spills are reported,
not failed: a thread keeps about 9 d running values, and from d of about 20 on
some of them live in (cached) local memory.

Needs numba-cuda (``pip install -e ".[cuda]"``), NVRTC (``pip install
"nvidia-cuda-nvrtc==13.*"`` or a CUDA toolkit) and ``ptxas`` from a CUDA
toolkit on the PATH or under ``$CUDA_HOME/bin``; no GPU and no driver::

    CUDA_HOME=/usr/local/cuda python benchmarks/check_cuda_ptx.py

``--cc 9.0`` (the default) targets the H100/H200.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np


class _Device:
    def __init__(self, cc):
        self.compute_capability = cc


def _signature(kind, d, dtype):
    from numba import from_dtype, types

    dt = from_dtype(np.dtype(dtype))
    a2 = types.Array(dt, 2, "C")
    part = types.Array(types.float64, 3, "C")
    values = types.Array(types.float64, 2, "C")
    if kind == "cross":
        return (a2, a2, a2, dt, part, part, values)
    return (a2, a2, dt, dt, part, part, values)


def _ptxas():
    found = shutil.which("ptxas")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidate = os.path.join(home, "bin", "ptxas")
    if os.path.exists(candidate):
        return candidate
    sys.exit("ptxas not found: put a CUDA toolkit's bin/ on the PATH or set CUDA_HOME")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0")
    parser.add_argument("--dims", default="1,2,3,10,50")
    args = parser.parse_args(argv)
    cc = tuple(int(v) for v in args.cc.split("."))
    dims = [int(v) for v in args.dims.split(",")]

    from numba import config, cuda

    if config.ENABLE_CUDASIM:
        sys.exit("the CUDA simulator is on (NUMBA_ENABLE_CUDASIM): nothing to compile")
    import numba.cuda.dispatcher as dispatcher

    # Device functions called by a kernel are compiled for "the current device";
    # without a GPU there is none, so name the target here.
    dispatcher.get_current_device = lambda: _Device(cc)
    from ksdnumba.kernels import _cuda

    ptxas = _ptxas()
    arch = f"sm_{cc[0]}{cc[1]}"
    f64_math = re.compile(r"\b(mul|fma|div|sqrt|rcp|ex2|lg2)\.[a-z.]*f64\b")
    failures = []
    ptxas_errors = []
    print(f"{'kernel':>9} {'dtype':>7} {'d':>3} {'tile':>4} {'registers':>9} {'spilled B':>9} "
          f"{'f64 ops':>7} {'f64 mul/fma/...':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in (np.float32, np.float64):
            for kind in ("gaussian", "imq_half", "imq", "cross"):
                for d in dims:
                    if kind == "cross":  # as for SVGD: the scores ride with the partners
                        tile = _cuda._tile_for(2 * d, dtype, arrays=1)
                        kernel = _cuda._cross_kernel(d, d, dtype, tile)
                    else:
                        tile = _cuda._tile_for(d, dtype)
                        kernel = _cuda._stein_kernel(kind, d, dtype, tile, True)
                    ptx, _ = cuda.compile_ptx(kernel.py_func, _signature(kind, d, dtype), cc=cc,
                                              fastmath=dtype == np.float32)
                    path = os.path.join(tmp, "kernel.ptx")
                    with open(path, "w") as f:
                        f.write(ptx)
                    proc = subprocess.run([ptxas, f"-arch={arch}", "-v", path, "-o",
                                           os.path.join(tmp, "kernel.cubin")],
                                          capture_output=True, text=True)
                    if proc.returncode:  # e.g. a ptxas older than the PTX that NVVM wrote
                        if not ptxas_errors:
                            print(f"ptxas failed, registers not reported: "
                                  f"{proc.stderr.strip().splitlines()[0]}")
                        ptxas_errors.append(kind)
                        registers = spilled = "-"
                    else:
                        log = proc.stderr
                        registers = max(int(v) for v in re.findall(r"Used (\d+) registers", log))
                        spilled = sum(int(v) for v in re.findall(r"(\d+) bytes spill stores", log))
                    f64_ops = len(re.findall(r"\.f64\b", ptx))
                    bad = len(f64_math.findall(ptx))
                    name = np.dtype(dtype).name
                    print(f"{kind:>9} {name:>7} {d:>3} {tile:>4} {registers:>9} {spilled:>9} "
                          f"{f64_ops:>7} {bad if dtype == np.float32 else '-':>15}", flush=True)
                    if dtype == np.float32 and bad:
                        failures.append((kind, name, d, bad))
    if failures:
        print("FAIL: float64 arithmetic in float32 kernels:", failures)
        return 1
    print("ok: no float64 multiply/FMA/division/sqrt/exp in the float32 kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
