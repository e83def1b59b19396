"""Stein kernel pair sums, one module per backend.

Kernels take arrays (particles ``x`` and their scores ``s``) and know nothing
about targets; :mod:`ksdnumba.objective` joins the two. ``_reference`` holds the
dense NumPy formulas that the compiled backends are tested against.
"""
