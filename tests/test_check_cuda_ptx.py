"""The SASS pair-loop model of benchmarks/check_cuda_ptx.py, on hand-written SASS.

The script itself needs numba-cuda and a CUDA toolkit; its parsing and its
arithmetic do not, and are checked here on listings in cuobjdump's format.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

path = Path(__file__).parents[1] / "benchmarks" / "check_cuda_ptx.py"
spec = importlib.util.spec_from_file_location("check_cuda_ptx", path)
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def _listing(lines):
    """cuobjdump-style text: an address comment, the instruction, its encoding."""
    return "\n".join(
        f"        /*{16 * k:04x}*/  {text} ;  /* 0x000000000000000000000000000000 */"
        for k, text in enumerate(lines)
    )


# An outer loop with a barrier (0x00-0xb0) around an inner pair loop (0x10-0x90)
# unrolled twice: two exponentials per trip, and a forward branch over a cold
# instruction at 0x70.
FLOAT32_LOOPS = [
    "MOV R1, c[0x0][0x28]",  # 0x00
    "LDS.64 R12, [R40+UR22+0x200]",  # 0x10: the pair loop starts
    "FADD.FTZ R12, -R12, R22",  # 0x20
    "FFMA.FTZ R43, R35, R35, R14",  # 0x30
    "MUFU.EX2 R39, R39",  # 0x40
    "MUFU.EX2 R14, R44",  # 0x50
    "@!P1 BRA 0x80",  # 0x60: jumps over 0x70
    "DMUL R4, R4, R4",  # 0x70: cold
    "IADD3 R33, R33, 0x2, RZ",  # 0x80
    "@P2 BRA 0x10",  # 0x90: the pair loop ends
    "BAR.SYNC.DEFER_BLOCKING 0x0",  # 0xa0
    "@P0 BRA 0x0",  # 0xb0: the tile loop, not innermost
    "EXIT",
]


def _sass(lines):
    return [(int(a, 16), t) for a, t in check._SASS_LINE.findall(_listing(lines))]


def test_sass_lines_are_parsed_with_their_addresses():
    sass = _sass(FLOAT32_LOOPS)
    assert len(sass) == len(FLOAT32_LOOPS)
    assert sass[6] == (0x60, "@!P1 BRA 0x80")
    assert [check._opcode(t) for _, t in sass[5:7]] == ["MUFU.EX2", "BRA"]


def test_pair_loop_is_the_innermost_loop_without_its_cold_path():
    hot, pairs = check._pair_loop(_sass(FLOAT32_LOOPS), "gaussian", np.float32)
    assert pairs == 2
    assert "DMUL R4, R4, R4" not in hot
    assert hot[0].startswith("LDS.64") and hot[-1] == "@P2 BRA 0x10"
    assert len(hot) == 8


def test_model_takes_the_busiest_pipe():
    hot, pairs = check._pair_loop(_sass(FLOAT32_LOOPS), "gaussian", np.float32)
    per_pair, limit, rate = check._model(hot, pairs, sms=1, clock_ghz=1.0)
    # Per pair and sub-partition: 4 instructions issued, but one exponential
    # takes 8 cycles of the special-function pipe (16 lanes per SM).
    assert per_pair == 4.0 and limit == "mufu"
    # 4 sub-partitions, 32 pairs per warp, 1e9 cycles per second, 8 cycles.
    assert rate == pytest.approx(4 * 32 * 1e9 / 8 / 1e12)


def test_float64_pairs_are_counted_by_the_rounding_shift_and_fp64_bounds():
    shift = check._EXP64_SHIFT
    lines = [
        "MOV R1, c[0x0][0x28]",
        f"DADD R62, R46, {shift}",
        f"DADD R38, R62, -{shift}",
        "DFMA R40, R38, R40, UR16",
        "DFMA R42, R38, R42, 1",
        "UMOV UR16, 0x3b39803f",
        "@!P1 BRA 0x10",
        "EXIT",
    ]
    hot, pairs = check._pair_loop(_sass(lines), "gaussian", np.float64)
    assert pairs == 1 and len(hot) == 6
    per_pair, limit, _ = check._model(hot, pairs, sms=132, clock_ghz=1.98)
    assert per_pair == 6 and limit == "fp64"  # 4 float64 ops, 2 cycles each


def test_a_call_on_every_pair_is_not_modelled():
    lines = [
        "MOV R1, c[0x0][0x28]",
        "MUFU.RCP64H R55, R57",
        "CALL.REL.NOINC 0x60",
        "@P2 BRA 0x10",
        "EXIT",
        "NOP",
        "RET.REL.NODEC R20 0x0",
    ]
    assert check._pair_loop(_sass(lines), "imq", np.float64) is None


def test_no_pair_loop_gives_none():
    lines = ["MOV R1, c[0x0][0x28]", "FADD R2, R2, R3", "@P0 BRA 0x10", "EXIT"]
    assert check._pair_loop(_sass(lines), "gaussian", np.float32) is None


def test_an_outer_loop_is_never_the_pair_loop():
    # Without its barrier, the tile loop holds more exponentials than the pair
    # loop inside it; being outer is what rules it out.
    lines = [t if not t.startswith("BAR") else "MUFU.EX2 R2, R2" for t in FLOAT32_LOOPS]
    hot, pairs = check._pair_loop(_sass(lines), "gaussian", np.float32)
    assert pairs == 2 and len(hot) == 8


def test_a_loop_with_a_barrier_is_not_a_pair_loop():
    lines = [
        "MOV R1, c[0x0][0x28]",
        "MUFU.EX2 R39, R39",
        "BAR.SYNC.DEFER_BLOCKING 0x0",
        "@P2 BRA 0x10",
        "EXIT",
    ]
    assert check._pair_loop(_sass(lines), "gaussian", np.float32) is None


def test_every_kernel_has_a_signature_of_its_arity():
    """The argument types the script compiles with match the kernels' parameters.

    Built in numba's CUDA simulator here (tests/conftest.py): the kernels are the
    package's own Python functions, so their parameters are those compiled on a GPU.
    """
    import inspect

    from numba import config

    if not config.ENABLE_CUDASIM:
        pytest.skip("builds the kernels in the simulator")
    names = set()
    for group, name, _, dtype, d, _, kernel, signature in check._kernels(
        ["sums", "matrix", "thinning"], [1, 3]
    ):
        names.add((group, name.split(":")[-1].split(" ")[0]))
        params = inspect.signature(kernel.py_func).parameters
        assert len(signature) == len(params), (name, dtype, d)
    assert {"sums", "matrix", "thinning"} == {group for group, _ in names}
    assert {
        ("matrix", "HW"),
        ("matrix", "forms"),
        ("matrix", "entries"),
        ("thinning", "step"),
        ("sums", "cross"),
    } <= names
