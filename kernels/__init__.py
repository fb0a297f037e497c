"""Numba kernels and their plain-numpy reference.

Importable as ``dse.kernels``. This package imports only numpy and numba, never ``dse``:
everything it needs arrives as small dense tables whose layout is defined in
:mod:`dse.kernels.layout`.
"""
