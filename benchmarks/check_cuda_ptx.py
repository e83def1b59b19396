"""Compile every CUDA kernel to PTX and SASS without a GPU, and check the code.

For each kernel of ``ksdnumba.kernels._cuda`` (the descent sums: Gaussian and
IMQ Stein sums, the base Gaussian kernel of SVGD and MMD; the Stein matrix:
products with one and with many right-hand sides, the quadratic forms of
several bandwidths, dense blocks and columns, thinning's greedy step), each
kernel kind, dimension and dtype, prints the registers per thread, the bytes
spilled to local memory, and the float64 arithmetic instructions in the PTX.
It fails (exit status 1) when a float32 kernel does float64 arithmetic other
than additions (the running sums across tiles and the block reductions are
float64 by design; a float64 multiply, FMA, division, square root or exp in a
float32 kernel means that a float64 constant slipped in). Spills are reported,
not failed: a thread of the descent sums keeps about 9 d running values, and
from d of about 20 on some of them live in (cached) local memory.

With ``cuobjdump`` (and the ``nvdisasm`` it calls) it also reads the SASS of
the main pair loop and models its speed, a bound and not a measurement: the
instructions issued per pair, the pipe that limits them (instruction issue, the
float32, float64, integer or special-function pipes, shared-memory loads), and
the pairs per second that this pipe allows on ``--sms`` multiprocessors at
``--clock-ghz`` (an H100 or H200 SXM by default) with every slot filled. It
leaves out what a real run adds: the tile loads and barriers, latency that too
few warps cannot hide, lower clocks under load, the host side. For the float32
Gaussian kernel at d = 2 it gives about 1 Tpairs/s, the roofline the GPU issue
quotes for an H200.

Needs numba-cuda (``pip install -e ".[cuda]"``), NVRTC (``pip install
"nvidia-cuda-nvrtc==13.*"`` or a CUDA toolkit) and ``ptxas`` from a CUDA
toolkit on the PATH or under ``$CUDA_HOME/bin``; no GPU and no driver. The
model needs ``cuobjdump`` and ``nvdisasm`` on the PATH (a CUDA toolkit's, or
``pip install "nvidia-cuda-cuobjdump==13.*" "nvidia-cuda-nvdisasm==13.*"``)::

    CUDA_HOME=/usr/local/cuda python benchmarks/check_cuda_ptx.py

``--cc 9.0`` (the default) targets the H100/H200; ``--groups`` picks the
kernels (``sums``, ``matrix``, ``thinning``).
"""

import argparse
import json
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


def _arrays(dtype):
    from numba import from_dtype, types

    dt = from_dtype(np.dtype(dtype))
    return (dt, types.Array(dt, 1, "C"), types.Array(dt, 2, "C"), types.Array(dt, 3, "C"))


def _signature(kind, d, dtype):
    """The argument types of a kernel ``kind`` (see :func:`_kernels`)."""
    from numba import types

    dt, a1, a2, _ = _arrays(dtype)
    f1, f2, f3 = (types.Array(types.float64, k, "C") for k in (1, 2, 3))
    i1 = types.Array(types.int64, 1, "C")
    if kind == "cross":
        return (a2, a2, a2, dt, f3, f3, f2)
    if kind in ("gaussian", "imq_half", "imq"):
        return (a2, a2, dt, dt, f3, f3, f2)
    if kind == "tiles":
        return (a2, a2, a1, a1, a1, dt, dt, dt, a2, f3)
    if kind == "entries":
        return (a2, a2, a1, dt, dt, dt, dt, i1, i1, f2)
    if kind == "step":
        return (a2, a2, a1, dt, dt, dt, dt, f1, f1, f1, dt, f1, i1, types.int64, f1, i1)
    raise ValueError(kind)


def _kernels(groups, dims):
    """``(group, name, profile, dtype, d, tile, kernel, signature)`` of every kernel to check.

    ``profile`` is the base kernel whose exponential or reciprocal marks a pair
    in the SASS model (None: not modelled).
    """
    from ksdnumba.kernels._cuda import _launch, _matrix, _sums, _values
    from ksdnumba.kernels._kinds import GAUSSIAN, IMQ, LINEAR

    kinds = {
        "gaussian": (GAUSSIAN, False),
        "imq_half": (IMQ, True),
        "imq": (IMQ, False),
        "linear": (LINEAR, False),
    }
    for dtype in (np.float32, np.float64):
        for d in dims:
            if "sums" in groups:
                tile = _launch.tile_for(2 * d, dtype)
                for name in ("gaussian", "imq_half", "imq"):
                    kind, half = kinds[name]
                    kernel = _sums.stein_kernel(kind, half, d, dtype, tile, True)
                    yield ("sums", name, name, dtype, d, tile, kernel, _signature(name, d, dtype))
                # as for SVGD: the scores ride with the partners
                kernel = _sums.cross_kernel(d, d, dtype, tile)
                yield (
                    "sums",
                    "cross",
                    "cross",
                    dtype,
                    d,
                    tile,
                    kernel,
                    _signature("cross", d, dtype),
                )
            if "matrix" in groups:
                for name, (kind, half) in kinds.items():
                    profile = None if kind == LINEAR else name
                    # H W with one and with many columns; forms over 4 bandwidths
                    for B, K, forms in ((1, 1, False), (256, 1, False), (256, 4, True)):
                        if K > 1 and kind == LINEAR:
                            continue
                        shape = _matrix.tile_shape(B, K, d, dtype)
                        kernel = _matrix.tile_kernel(
                            kind, half, d, dtype, shape, K, False, forms, K > 1
                        )
                        label = f"{name}:{'forms' if forms else 'HW'} B={B} K={K}"
                        yield (
                            "matrix",
                            label,
                            profile,
                            dtype,
                            d,
                            shape[2],
                            kernel,
                            _signature("tiles", d, dtype),
                        )
                    kernel = _matrix.entries_kernel(
                        kind, half, d, dtype, _launch.POINT_THREADS, False
                    )
                    yield (
                        "matrix",
                        f"{name}:entries",
                        profile,
                        dtype,
                        d,
                        _launch.POINT_THREADS,
                        kernel,
                        _signature("entries", d, dtype),
                    )
            if "thinning" in groups and dtype == np.float64:
                for name in ("gaussian", "imq_half", "imq"):
                    kind, half = kinds[name]
                    kernel = _values.step_kernel(kind, half, d, _launch.POINT_THREADS)
                    yield (
                        "thinning",
                        f"{name}:step",
                        name,
                        dtype,
                        d,
                        _launch.POINT_THREADS,
                        kernel,
                        _signature("step", d, dtype),
                    )


def _ptxas():
    found = shutil.which("ptxas")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidate = os.path.join(home, "bin", "ptxas")
    if os.path.exists(candidate):
        return candidate
    sys.exit("ptxas not found: put a CUDA toolkit's bin/ on the PATH or set CUDA_HOME")


# ---------------------------------------------------------------- SASS pair-loop model

_SASS_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_BRANCH = re.compile(r"\bBRA\b.*?0x([0-9a-f]+)")
_PREDICATE = re.compile(r"^@!?U?P[0-9T]\s+")
# Cycles of one sub-partition (a quarter of an SM) per warp instruction, from the
# per-SM throughputs of compute capability 9.0 in the CUDA C++ Programming Guide:
# 128 float32 add/multiply/FMA, 64 float64, 64 32-bit integer (here with the
# compares and selects), 16 special functions (MUFU) per clock; one instruction
# issued per clock per sub-partition, uniform-datapath ones included; shared-memory
# loads taken as one warp instruction per clock per SM (an assumption: the guide
# gives no figure; broadcast loads, as here, need one shared-memory pass each).
_PIPES = {
    "fp32": (("FADD", "FMUL", "FFMA", "FMNMX"), 1),
    "fp64": (("DADD", "DMUL", "DFMA", "DSETP", "DMNMX"), 2),
    "int": (
        (
            "IMAD",
            "IADD3",
            "VIADD",
            "ISETP",
            "LOP3",
            "SHF",
            "LEA",
            "IABS",
            "IMNMX",
            "SEL",
            "FSEL",
            "FSETP",
            "PRMT",
            "MOV",
        ),
        2,
    ),
    "mufu": (("MUFU",), 8),
    "lds": (("LDS",), 4),
}
# The shift that rounds to an integer in libdevice's float64 exp2 (1.5 * 2^52):
# added and subtracted once per exponential.
_EXP64_SHIFT = "6.75539944105574400000e+15"


def _sass(cubin):
    """``[(address, instruction)]`` of a cubin, through cuobjdump (and nvdisasm)."""
    tool = shutil.which("cuobjdump")
    if tool is None:
        return None
    proc = subprocess.run([tool, "-sass", cubin], capture_output=True, text=True)
    if proc.returncode:
        return None
    return [(int(a, 16), text) for a, text in _SASS_LINE.findall(proc.stdout)]


def _opcode(text):
    return _PREDICATE.sub("", text).split()[0]


def _per_pair(text, kind, dtype):
    """How many times an instruction marks a pair: one exponential or reciprocal each."""
    op = _opcode(text)
    if kind is None:
        return False
    if kind in ("gaussian", "cross"):
        return op == "MUFU.EX2" if dtype == np.float32 else (_EXP64_SHIFT in text) / 2
    return op == ("MUFU.RCP" if dtype == np.float32 else "MUFU.RCP64H")


def _pair_loop(sass, kind, dtype):
    """The hot instructions of the unrolled pair loop and the pairs per trip.

    The pair loops are the innermost loops (a backward branch) without a barrier;
    the one with the most pairs (counted by :func:`_per_pair`) is the main,
    unrolled loop. Instructions that a forward branch inside it jumps over count
    as cold: in these kernels such branches skip libdevice's rare paths (an exp2
    argument below about -1022, special cases of a float64 division or square
    root). ``None`` when there is no such loop or when it calls a subroutine on
    every pair (libdevice's float64 pow).
    """
    loops = []
    for addr, text in sass:
        m = _BRANCH.search(text)
        if m and int(m.group(1), 16) < addr:
            loops.append((int(m.group(1), 16), addr))
    best = None
    for start, end in loops:
        if any(start < s and e < end for s, e in loops):
            continue  # not innermost
        body = [(a, t) for a, t in sass if start <= a <= end]
        if any(_opcode(t).startswith("BAR") for _, t in body):
            continue
        cold = set()
        for a, t in body:
            m = _BRANCH.search(t)
            if m and t.startswith("@") and a < int(m.group(1), 16) <= end:
                cold.update(b for b, _ in body if a < b < int(m.group(1), 16))
        hot = [t for a, t in body if a not in cold]
        pairs = int(sum(_per_pair(t, kind, dtype) for t in hot))
        if pairs and any(_opcode(t).startswith("CALL") for t in hot):
            return None  # a subroutine on the hot path (float64 pow): not modelled
        if pairs and (best is None or pairs > best[1]):
            best = (hot, pairs)
    return best


def _model(hot, pairs, sms, clock_ghz):
    """Per pair: instructions, cycles on the busiest pipe and the bound in Tpairs/s."""
    counts = dict.fromkeys(_PIPES, 0)
    for t in hot:
        op = _opcode(t).split(".")[0]
        for pipe, (ops, _) in _PIPES.items():
            if op in ops:
                counts[pipe] += 1
    cycles = {pipe: counts[pipe] * _PIPES[pipe][1] / pairs for pipe in _PIPES}
    cycles["issue"] = len(hot) / pairs
    limit = max(cycles, key=cycles.get)
    # Each sub-partition runs 32 pairs (a warp) per cycles[limit] clocks.
    rate = 4 * sms * 32 * clock_ghz * 1e9 / cycles[limit] / 1e12
    return len(hot) / pairs, limit, rate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0")
    parser.add_argument("--dims", default="1,2,3,10,50")
    parser.add_argument(
        "--groups",
        default="sums,matrix,thinning",
        help="which kernels: sums (descent), matrix (SteinMatrix), thinning",
    )
    parser.add_argument(
        "--sms",
        type=int,
        default=132,
        help="streaming multiprocessors of the modelled GPU (H100/H200 SXM: 132)",
    )
    parser.add_argument(
        "--clock-ghz", type=float, default=1.98, help="its boost clock (H100/H200 SXM: 1.98 GHz)"
    )
    parser.add_argument("--json", help="also write the table to this file as JSON")
    args = parser.parse_args(argv)
    cc = tuple(int(v) for v in args.cc.split("."))
    dims = [int(v) for v in args.dims.split(",")]
    groups = args.groups.split(",")

    from numba import config, cuda

    if config.ENABLE_CUDASIM:
        sys.exit("the CUDA simulator is on (NUMBA_ENABLE_CUDASIM): nothing to compile")
    import numba.cuda.dispatcher as dispatcher

    # Device functions called by a kernel are compiled for "the current device";
    # without a GPU there is none, so name the target here.
    dispatcher.get_current_device = lambda: _Device(cc)

    ptxas = _ptxas()
    arch = f"sm_{cc[0]}{cc[1]}"
    f64_math = re.compile(r"\b(mul|fma|div|sqrt|rcp|ex2|lg2)\.[a-z.]*f64\b")
    failures = []
    ptxas_errors = []
    print(
        f"{'kernel':>22} {'dtype':>7} {'d':>3} {'tile':>4} {'registers':>9} {'spilled B':>9} "
        f"{'f64 ops':>7} {'f64 mul/fma/...':>15} {'instr/pair':>10} {'bound':>5} "
        f"{'Tpairs/s':>8}"
    )
    no_sass = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for group, name, profile, dtype, d, tile, kernel, signature in _kernels(groups, dims):
            ptx, _ = cuda.compile_ptx(
                kernel.py_func, signature, cc=cc, fastmath=dtype == np.float32
            )
            path = os.path.join(tmp, "kernel.ptx")
            with open(path, "w") as f:
                f.write(ptx)
            proc = subprocess.run(
                [ptxas, f"-arch={arch}", "-v", path, "-o", os.path.join(tmp, "kernel.cubin")],
                capture_output=True,
                text=True,
            )
            if proc.returncode:  # e.g. a ptxas older than the PTX that NVVM wrote
                if not ptxas_errors:
                    print(
                        f"ptxas failed, registers not reported: "
                        f"{proc.stderr.strip().splitlines()[0]}"
                    )
                ptxas_errors.append(name)
                registers = spilled = "-"
                sass = None
            else:
                log = proc.stderr
                registers = max(int(v) for v in re.findall(r"Used (\d+) registers", log))
                spilled = sum(int(v) for v in re.findall(r"(\d+) bytes spill stores", log))
                sass = _sass(os.path.join(tmp, "kernel.cubin"))
                no_sass = no_sass or sass is None
            loop = _pair_loop(sass, profile, dtype) if sass and profile else None
            if loop:
                per_pair, limit, rate = _model(*loop, args.sms, args.clock_ghz)
                modelled = f"{per_pair:>10.4g} {limit:>5} {rate:>8.3g}"
            else:
                per_pair = limit = rate = None
                modelled = f"{'-':>10} {'-':>5} {'-':>8}"
            f64_ops = len(re.findall(r"\.f64\b", ptx))
            bad = len(f64_math.findall(ptx))
            dname = np.dtype(dtype).name
            print(
                f"{name:>22} {dname:>7} {d:>3} {tile:>4} {registers:>9} {spilled:>9} "
                f"{f64_ops:>7} {bad if dtype == np.float32 else '-':>15} {modelled}",
                flush=True,
            )
            if dtype == np.float32 and bad:
                failures.append((name, dname, d, bad))
            rows.append(
                {
                    "group": group,
                    "kernel": name,
                    "dtype": dname,
                    "d": d,
                    "tile": tile,
                    "registers": None if registers == "-" else registers,
                    "spilled_bytes": None if spilled == "-" else spilled,
                    "f64_ops": f64_ops,
                    "f64_mul_fma_etc": bad if dtype == np.float32 else None,
                    "instructions_per_pair": per_pair,
                    "bound_by": limit,
                    "bound_tpairs_per_s": rate,
                }
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"cc": args.cc, "sms": args.sms, "clock_ghz": args.clock_ghz, "rows": rows},
                f,
                indent=1,
            )
    if no_sass:
        print("cuobjdump (with nvdisasm) not found or failed: no SASS, no pair-loop model")
    if failures:
        print("FAIL: float64 arithmetic in float32 kernels:", failures)
        return 1
    print("ok: no float64 multiply/FMA/division/sqrt/exp in the float32 kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
