#!/usr/bin/env bash
# Every GPU check in one go, for a machine with an NVIDIA GPU and numba-cuda:
#   1. the CUDA tests on the real GPU (not the simulator): the descent sums, the
#      Stein matrix's entry points and kn.SteinMatrix(backend="cuda"), thinning and
#      the KSD test;
#   2. the benchmark, whose first table checks the GPU against the CPU at n = 10^4,
#      and whose matrix table times H @ W (B = 1 and 256) on the GPU and the CPU.
# Writes gpu_tests.txt, gpu_bench.txt and gpu_bench.json into $OUT (default: .).
# Run from the repository root; the package need not be installed (the checkout is
# put on PYTHONPATH, after whatever PYTHONPATH already holds). numba-cuda 0.30.4 with
# NumPy 2.5 needs no patch from outside: ksdnumba.kernels._cuda restores the
# np.row_stack alias while numba-cuda loads (ksdnumba/kernels/_cuda/_compat.py).
# Budget: the tests stop after 6 minutes, the benchmark after 7; on a fresh machine
# much of the tests' time goes to compiling the kernels of their many configurations.
set -uo pipefail
out="${OUT:-.}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python -c "import numba, numba.cuda as c; print('numba', numba.__version__, c.implementation)"
# Stop here, rather than skip every test, when numba cannot use the GPU.
python -c "from ksdnumba.kernels import _backend as b; s = b._cuda_status()
print('numba can use the GPU:', *s); raise SystemExit(not s[0])" || exit 1

NUMBA_ENABLE_CUDASIM=0 timeout 360 python -m pytest -q -p no:cacheprovider \
    tests/test_kernels_cuda.py tests/test_stein_matrix_cuda.py tests/test_thinning_cuda.py \
    2>&1 | tee "$out/gpu_tests.txt" | tail -15
tests=${PIPESTATUS[0]}

timeout 420 python benchmarks/bench_gpu.py --json "$out/gpu_bench.json" "$@" 2>&1 \
    | tee "$out/gpu_bench.txt"
bench=${PIPESTATUS[0]}
echo "tests exit status $tests, benchmark exit status $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
