"""A bandwidth-reducing numbering of a piece's unknowns, for the sparse-times-block products
of the eigen-solve and of the moment projections.

The assembled numbering (scikit-fem's: the vertex unknowns, then those on the edges) puts
the couplings of a P2 unknown far apart in memory, so each sparse product with a block of
vectors reads the block's rows all over it.  Reverse Cuthill-McKee keeps coupled unknowns
close: on the P2 matrices of a remeshed navis neuron (134k unknowns, bandwidth 133,770 ->
1,845) ``M X`` with 16 columns took 18 ms instead of 51 ms, and the block Lanczos solve of
its 1,022 modes 143 s of CPU instead of 186 s (one core, one run:
benchmarks/bench_real_cell_kernels.py).  The callers renumber, solve, and give the vectors
back in the assembled numbering.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee


def bandwidth_numbering(matrix: sp.spmatrix) -> np.ndarray:
    """Reverse Cuthill-McKee numbering (n,) of a structurally symmetric ``matrix``: new
    unknown i is old unknown ``numbering[i]``."""
    return np.asarray(reverse_cuthill_mckee(sp.csr_matrix(matrix), symmetric_mode=True))


def renumbered(matrix: sp.spmatrix, numbering: np.ndarray) -> sp.csr_matrix:
    """``matrix`` in the new numbering: P A P^T (CSR, sorted indices)."""
    out = sp.csr_matrix(matrix)[numbering][:, numbering].tocsr()
    out.sort_indices()
    return out


def restored(rows: np.ndarray, numbering: np.ndarray) -> np.ndarray:
    """Rows (n, ...) of the new numbering back in the old one (column-major for blocks)."""
    out = np.empty_like(rows, order="F")
    out[numbering] = rows
    return out
