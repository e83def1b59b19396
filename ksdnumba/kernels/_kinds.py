"""The one enumeration of kernel kinds, shared by every backend and every convention.

A kind is the base kernel's profile; how distances are measured (a bandwidth
``bw`` or a preconditioner) is a separate choice, made by the caller, so the
same kind serves the package's radial kernels and stein-thinning's
preconditioned ones. The integers are what compiled code (numba on the CPU,
numba.cuda on the GPU) receives.

Adding a kernel: one line here, its profile in each backend (the CPU's
:func:`ksdnumba.kernels._cpu._profiles` functions and the GPU's device
function of the same role), and its closed forms in
:mod:`ksdnumba.kernels._reference`; ``tests/test_stein_matrix.py`` runs every
kind of :data:`KINDS` on every backend against the reference.
"""

GAUSSIAN = 0
IMQ = 1
LINEAR = 2

KINDS = {"gaussian": GAUSSIAN, "imq": IMQ, "linear": LINEAR}
NAMES = {value: name for name, value in KINDS.items()}
# Kernels whose value is a function of a distance, the ones a bandwidth or a
# preconditioner applies to.
RADIAL = ("gaussian", "imq")
