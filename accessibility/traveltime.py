"""Snapping and compiled shortest paths on the walking network.

All searches run in ``scipy.sparse.csgraph`` on a CSR matrix compiled once per weight column and
cached on the :class:`~accessibility.network.WalkNetwork` (DESIGN.md, "Travel-time engine").

"Home to facility" times are what count, so searches start at the facilities and run on the
*transposed* graph: the distance from facility ``s`` to ``v`` there is ``d(v -> s)`` in the walking
direction.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

import numpy as np

__all__ = [
    "EPS",
    "REACH_EPS",
    "graph_matrix",
    "limit_slack",
    "max_speed",
    "multi_source",
    "reach_matrix",
    "snap",
]

logger = logging.getLogger(__name__)

#: Weight given to zero-length edges and to super-source links so that csgraph keeps them.
EPS = 1e-9
#: Added to every value stored by :func:`reach_matrix` so that exact zeros survive as entries.
REACH_EPS = 1e-9
#: Slack on search limits: a facility exactly at the limit must not be lost to float sums or
#: to the EPS given to zero-weight edges.
_ABS_SLACK = 1e-6
_REL_SLACK = 1e-9
#: Below this many nodes reach_matrix searches the whole graph (sub-graphs do not pay off).
_LOCAL_MIN_NODES = 20_000
#: Point sets whose snapping is remembered per network (cells, facilities, candidates, ...).
_SNAP_MEMO = 8


def _digest(*arrays) -> bytes:
    """Content digest of arrays (dtype, shape and bytes): the key of every cache on a network.

    The network's tables are ordinary (mutable) pandas frames, so a cached matrix, KD-tree or
    tile index is only reused when the columns it was built from still hold the same bytes
    (DESIGN.md, "Cache policy"). SHA-1 runs at about 1 GB/s here: a few ms for the demo's
    edges, ~25 ms per column for a million-node city.
    """
    h = hashlib.sha1(usedforsecurity=False)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.digest()


def _cached(net, key, token: bytes, build):
    """``build()`` memoised on ``net`` under ``key`` while the inputs' digest ``token`` holds.

    One slot per key: a changed input replaces the entry (no stale answer, no growth).
    """
    hit = net._cache.get(key)
    if hit is not None and hit[0] == token:
        return hit[1]
    value = build()
    net._cache[key] = (token, value)
    return value


def _edge_arrays(net, weight: str | None = None):
    """``u``, ``v`` (int64) and optionally the weight column (float64) of the edge table."""
    u = net.edges["u"].to_numpy(dtype=np.int64)
    v = net.edges["v"].to_numpy(dtype=np.int64)
    if weight is None:
        return u, v
    return u, v, net.edges[weight].to_numpy(dtype=float)


def limit_slack(limit: float) -> float:
    """Tolerance added to a search limit or threshold (1e-6 + 1e-9 x limit; 0 for no limit)."""
    return _ABS_SLACK + _REL_SLACK * abs(limit) if np.isfinite(limit) else 0.0


def graph_matrix(net, weight: str, *, reverse: bool = False):
    """Sparse adjacency matrix of the walking graph for one weight column.

    Parameters
    ----------
    net : WalkNetwork
    weight : str
        Edge column, e.g. ``"length_m"`` or ``"time_s_adult"``.
    reverse : bool, default False
        Return the transposed graph (edge ``v -> u`` for every ``u -> v``).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``n x n``; parallel edges keep their minimum, zero weights become :data:`EPS`, infinite
        or NaN weights (edges the profile may not use) are left out. Cached on ``net`` and
        read-only: matrices of weights usable on every edge share one write-protected
        ``indices`` array; copy before in-place operations.
    """
    from scipy.sparse import csr_matrix

    if weight not in net.edges.columns:
        raise KeyError(f"the network has no edge column {weight!r}; weights: {', '.join(net.weight_columns())}")
    u, v, w = _edge_arrays(net, weight)
    uv_token = _digest(u, v, np.int64(net.n_nodes))
    token = uv_token + _digest(w)

    def build():
        n = net.n_nodes
        order, starts, gu, gv = _structure(net, reverse, u, v, uv_token)
        ww = w if order is None else w[order]  # None: rows already in (u, v) order
        ww = np.where(np.isnan(ww), np.inf, ww)
        # parallel edges keep their minimum (inf = forbidden for this weight, dropped below)
        wmin = ((ww if starts.size == ww.size else np.minimum.reduceat(ww, starts)) if starts.size
                else np.empty(0))
        ok = np.isfinite(wmin)
        idx_dtype = np.int32 if n < 2**31 else np.int64
        if ok.all():  # every pair usable: the structure's own index arrays serve every such weight
            indices, indptr = _structure_csr(net, reverse, gu, gv, idx_dtype, uv_token)
            data = np.maximum(wmin, EPS)
        else:
            data = np.maximum(wmin[ok], EPS)
            indices = gv[ok].astype(idx_dtype)
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.bincount(gu[ok], minlength=n), out=indptr[1:])
        return csr_matrix((data, indices, indptr), shape=(n, n))

    return _cached(net, ("matrix", weight, bool(reverse)), token, build)


def _structure_csr(net, reverse: bool, gu, gv, idx_dtype, uv_token: bytes):
    """CSR ``indices``/``indptr`` of all distinct (u, v) pairs (cached; shared, never written)."""
    def build():
        n = net.n_nodes
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(gu, minlength=n), out=indptr[1:])
        indices = gv.astype(idx_dtype)
        indptr.flags.writeable = indices.flags.writeable = False
        return indices, indptr

    return _cached(net, ("structure_csr", bool(reverse)), uv_token, build)


def _structure(net, reverse: bool, u, v, uv_token: bytes):
    """Edge order (None when the rows are already sorted by (u, v)) and distinct (u, v) pairs,
    shared by the matrices of every weight column."""
    def build():
        a, b = (v, u) if reverse else (u, v)
        n = max(int(net.n_nodes), 1)
        sort_key = a * n + b
        if sort_key.size and (sort_key[1:] >= sort_key[:-1]).all():  # networks built here: reverse=True
            order = None  # the identity: edge rows are already in (u, v) order
            us, vs = a, b
        else:
            order = np.argsort(sort_key, kind="stable")  # by u then v; one int64 key sorts ~3x faster
            us, vs = a[order], b[order]
        first = np.ones(us.size, dtype=bool)
        first[1:] = (us[1:] != us[:-1]) | (vs[1:] != vs[:-1])
        starts = np.flatnonzero(first)
        return order, starts, us[starts], vs[starts]

    return _cached(net, ("structure", bool(reverse)), uv_token, build)


def _submatrix(g, nodes: np.ndarray, loc: np.ndarray):
    """``g[nodes][:, nodes]`` for sorted distinct ``nodes`` (what scipy's fancy indexing returns).

    ``loc`` is scratch of length ``g.shape[0]`` holding -1; it is left as it was found. Vectorised
    gathers on the CSR arrays, without scipy's per-call checks: the per-tile extraction of
    :func:`reach_matrix` is called hundreds of times per circle.
    """
    from scipy.sparse import csr_matrix

    k = nodes.size
    loc[nodes] = np.arange(k, dtype=loc.dtype)
    try:
        starts = g.indptr[nodes].astype(np.int64)
        lens = g.indptr[nodes + 1].astype(np.int64) - starts
        total = int(lens.sum())
        first = np.cumsum(lens) - lens  # position of each row's first edge in the gathered arrays
        edge = np.arange(total, dtype=np.int64) + np.repeat(starts - first, lens)
        cols = loc[g.indices[edge]]
        keep = cols >= 0
        row = np.repeat(np.arange(k), lens)[keep]
        indptr = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=k), out=indptr[1:])
        return csr_matrix((g.data[edge][keep], cols[keep], indptr), shape=(k, k))
    finally:
        loc[nodes] = -1


def _block_size(tx: np.ndarray, ty: np.ndarray, nodes_per_tile: float) -> int:
    """Tiles per side of the blocks whose sources :func:`reach_matrix` searches together.

    A block of ``b x b`` tiles searches the sub-graph of ``(b + 2)^2`` tiles. Small blocks mean
    many small sub-graphs (a fixed cost per extraction and call), large blocks mean long dense rows
    per source; the rough cost model below (constants measured on this machine's scipy) picks the
    cheaper side for the sources at hand: sparse facilities get large blocks, dense candidate sets
    small ones. Any ``b`` gives the same exact answer.
    """
    per_group, per_node, per_pair = 2e-4, 2e-8, 4e-9
    best, best_cost = 1, np.inf
    for b in (1, 2, 3, 4, 6, 8):
        bx, by = tx // b, ty // b
        o = np.lexsort((by, bx))
        groups = 1 + int(np.count_nonzero((np.diff(bx[o]) != 0) | (np.diff(by[o]) != 0))) if o.size else 0
        sub = (b + 2) ** 2 * nodes_per_tile
        cost = groups * (per_group + per_node * sub) + tx.size * per_pair * sub
        if cost < best_cost:
            best, best_cost = b, cost
    return best


def _node_tiles(net, size: float) -> dict:
    """Positional node ids per square tile of side ``size`` (cached on the network)."""
    x = net.nodes["x"].to_numpy(dtype=float)
    y = net.nodes["y"].to_numpy(dtype=float)

    def build():
        tx = np.floor(x / size).astype(np.int64)
        ty = np.floor(y / size).astype(np.int64)
        order = np.lexsort((ty, tx))
        cut = np.flatnonzero((np.diff(tx[order]) != 0) | (np.diff(ty[order]) != 0)) + 1
        return {(int(tx[c[0]]), int(ty[c[0]])): c for c in np.split(order, cut)} if order.size else {}

    return _cached(net, ("tiles", float(size)), _digest(x, y), build)


def max_speed(net, weight: str) -> float:
    """Largest ``length_m / weight`` over usable edges (metres per weight unit; 1 for length_m).

    Bounds how far (straight line) a search limited to ``limit`` can get: ``limit * max_speed``.
    ``inf`` when an edge has length but (almost) no cost, so no bound can be given.
    """
    length = net.edges["length_m"].to_numpy(dtype=float)
    w = length if weight == "length_m" else net.edges[weight].to_numpy(dtype=float)

    def build():
        if weight == "length_m":
            return 1.0
        ok = np.isfinite(w) & (length > 0)
        if not ok.any():
            return 1.0
        if (w[ok] <= EPS).any():
            return np.inf
        return float(np.max(length[ok] / w[ok]))

    return _cached(net, ("max_speed", weight), _digest(length, w), build)


def _components_key(components):
    return None if components is None else tuple(sorted({int(c) for c in components}))


def _kdtree(net, components):
    """KD-tree of the node coordinates (of some components), its node ids and the inputs' digest."""
    from scipy.spatial import cKDTree

    comp_key = _components_key(components)
    xy = net.nodes[["x", "y"]].to_numpy(dtype=float)
    comp = net.nodes["component"].to_numpy() if components is not None else np.zeros(0)
    token = _digest(xy, comp)

    def build():
        ids = np.arange(len(xy), dtype=np.int64)
        pts = xy
        if components is not None:
            keep = np.isin(comp, list(comp_key))
            pts, ids = xy[keep], ids[keep]
        if ids.size == 0:
            raise ValueError(f"no network node in components {components}")
        # unbalanced, non-compact: builds ~3x faster, queries as exact
        return cKDTree(pts, balanced_tree=False, compact_nodes=False), ids

    tree, ids = _cached(net, ("kdtree", comp_key), token, build)
    return tree, ids, token


def snap(net, x, y, *, components=None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest network node of each point (straight line, projected metres).

    Parameters
    ----------
    net : WalkNetwork
    x, y : array_like
        Coordinates in ``net.crs``.
    components : iterable of int, optional
        Snap only to nodes of these components (e.g. ``[0]`` for the largest).

    Returns
    -------
    node : numpy.ndarray of int64
        Positional node ids.
    dist_m : numpy.ndarray of float
        Straight-line distance to that node, metres.
    """
    tree, ids, tree_token = _kdtree(net, components)
    pts = np.column_stack([np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()])
    if pts.shape[0] == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=float)
    # The same cells and facilities are snapped again and again (every circle, the facility reach,
    # siting, scenarios of a sweep): answers are kept per point set, keyed by a digest of the
    # coordinates, a few at a time (least recently used goes first).
    key = (_components_key(components), tree_token, _digest(pts))
    memo = net._cache.setdefault("snaps", OrderedDict())
    if key in memo:
        memo.move_to_end(key)
        node, dist = memo[key]
        return node.copy(), dist.copy()
    bad = ~np.isfinite(pts).all(axis=1)
    pts[bad] = 0.0
    dist, idx = tree.query(pts, k=1, workers=-1 if len(pts) > 5000 else 1)  # threads pay off for many
    node = ids[idx].astype(np.int64)
    dist = np.asarray(dist, dtype=float)
    dist[bad] = np.inf
    memo[key] = (node.copy(), dist.copy())
    while len(memo) > _SNAP_MEMO:
        memo.popitem(last=False)
    return node, dist


def _augmented(net, weight: str, source_nodes: np.ndarray, offsets: np.ndarray):
    """Transposed graph plus a super-source (index n) linked to each source with its offset."""
    from scipy.sparse import csr_matrix

    g = graph_matrix(net, weight, reverse=True)
    n = g.shape[0]
    # one link per distinct source node: the smallest offset
    order = np.lexsort((offsets, source_nodes))
    sn, off = source_nodes[order], offsets[order]
    first = np.ones(sn.size, dtype=bool)
    first[1:] = sn[1:] != sn[:-1]
    sn, off = sn[first], off[first]
    idx_dtype = np.int64 if g.nnz + sn.size >= 2**31 - 1 else g.indices.dtype
    indptr = np.empty(n + 2, dtype=idx_dtype)
    indptr[: n + 1] = g.indptr
    indptr[n + 1] = g.nnz + sn.size
    indices = np.concatenate([g.indices.astype(idx_dtype, copy=False), sn.astype(idx_dtype)])
    data = np.concatenate([g.data, off + EPS])
    return csr_matrix((data, indices, indptr), shape=(n + 1, n + 1))


def multi_source(net, weight: str, source_nodes, source_offsets=None, *, limit: float = np.inf,
                 with_origin: bool = True):
    """Time (or distance) from every node to its nearest source, in one Dijkstra pass.

    ``times[v] = min_s offsets[s] + d(v -> source_nodes[s])`` on the forward (walking) graph,
    computed by one ``scipy.sparse.csgraph.dijkstra`` on the transposed graph from a super-source
    joined to each source node by its offset.

    Parameters
    ----------
    net : WalkNetwork
    weight : str
        Edge column to minimise.
    source_nodes : array_like of int
        Positional node of each source (facility).
    source_offsets : array_like of float, optional
        Cost added for each source (walk from the network to the facility); default 0.
    limit : float, default inf
        Stop the search beyond this value; farther nodes get ``inf``.
    with_origin : bool, default True
        Also find which source is the nearest (costs a predecessor array and pointer jumping);
        ``False`` returns ``origin`` as all -1.

    Returns
    -------
    times : numpy.ndarray of float, length n
        ``inf`` where no source is within ``limit``.
    origin : numpy.ndarray of int64, length n
        Index into ``source_nodes`` of the source achieving the minimum, -1 where unreached.
    """
    from scipy.sparse.csgraph import dijkstra

    n = net.n_nodes
    sn = np.asarray(source_nodes, dtype=np.int64).ravel()
    off = (np.zeros(sn.size) if source_offsets is None
           else np.asarray(source_offsets, dtype=float).ravel())
    if off.shape != sn.shape:
        raise ValueError(f"source_offsets has {off.size} values for {sn.size} source nodes")
    # the same slack as the distance test below and reach_matrix: a facility whose walk is a
    # float hair above the limit is still at the threshold (inclusive)
    usable = np.isfinite(off) & (off <= limit + limit_slack(limit)) & (sn >= 0) & (sn < n)
    times = np.full(n, np.inf)
    origin = np.full(n, -1, dtype=np.int64)
    if not usable.any():
        return times, origin
    src_idx = np.flatnonzero(usable)
    sn_u, off_u = sn[src_idx], off[src_idx]
    aug = _augmented(net, weight, sn_u, off_u)
    lim = limit + EPS + limit_slack(limit) if np.isfinite(limit) else np.inf
    if not with_origin:
        dist = dijkstra(aug, directed=True, indices=n, limit=lim)[:n] - EPS
        reached = np.isfinite(dist)
        if np.isfinite(limit):
            reached &= dist <= limit + limit_slack(limit)
        times[reached] = np.maximum(dist[reached], 0.0)
        return times, origin
    dist, pred = dijkstra(aug, directed=True, indices=n, limit=lim, return_predecessors=True)
    dist = dist[:n] - EPS
    pred = pred[:n].astype(np.int64)
    reached = np.isfinite(dist)
    if np.isfinite(limit):
        reached &= dist <= limit + limit_slack(limit)
    times[reached] = np.maximum(dist[reached], 0.0)

    # pointer jumping to the first node after the super-source (the source node used)
    parent = np.where((pred >= 0) & (pred < n), pred, np.arange(n))
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    # best source index per source node (smallest offset, first listed on ties)
    order = np.lexsort((np.arange(sn_u.size), off_u, sn_u))
    first = np.ones(order.size, dtype=bool)
    first[1:] = sn_u[order][1:] != sn_u[order][:-1]
    best = np.full(n, -1, dtype=np.int64)
    best[sn_u[order][first]] = src_idx[order][first]
    origin[reached] = best[parent[reached]]
    return times, origin


def reach_matrix(
    net,
    weight: str,
    source_nodes,
    *,
    limit: float,
    offsets=None,
    batch_size: int = 256,
    max_batch_cells: int = 20_000_000,
    progress: bool = False,
):
    """All (source, node) pairs within ``limit``, as a sparse matrix.

    Parameters
    ----------
    net : WalkNetwork
    weight : str
        Edge column.
    source_nodes : array_like of int
        Positional node of each source (facility or candidate site).
    limit : float
        Keep pairs with ``offsets[s] + d(v -> source_nodes[s]) <= limit``.
    offsets : array_like of float, optional
        Per-source cost (walk from the network to the facility); default 0.
    batch_size : int, default 256
        Sources per bounded Dijkstra call.
    max_batch_cells : int, default 2e7
        Cap on ``batch x n`` (the dense block csgraph returns), to bound memory.
    progress : bool, default False
        Show a progress bar over batches.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``len(source_nodes) x n``; entry = ``offsets[s] + d(v -> s) + REACH_EPS`` (so exact zeros
        are kept as entries). Subtract :data:`REACH_EPS` to get the value.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    n = net.n_nodes
    sn = np.asarray(source_nodes, dtype=np.int64).ravel()
    off = np.zeros(sn.size) if offsets is None else np.asarray(offsets, dtype=float).ravel()
    if off.shape != sn.shape:
        raise ValueError(f"offsets has {off.size} values for {sn.size} source nodes")
    slack = limit_slack(limit)
    g = graph_matrix(net, weight, reverse=True)
    usable = np.flatnonzero(np.isfinite(off) & (off <= limit + slack) & (sn >= 0) & (sn < n))
    # Every node within `limit` of a source lies within `limit * max_speed` metres of it in a
    # straight line (an edge is never shorter than the segment between its nodes), and so does
    # every node on the way. Searching the subgraph inside that box around a batch of sources
    # is therefore exact, and the dense block csgraph returns is batch x (nodes in the box),
    # not batch x n.
    local = (n > _LOCAL_MIN_NODES and np.isfinite(limit) and "length_m" in net.edges.columns
             and {"x", "y"} <= set(net.nodes.columns))
    radius = (limit + slack) * max_speed(net, weight) if local else np.inf
    local = local and np.isfinite(radius) and usable.size > 0  # no usable source: nothing to search
    rows_l, cols_l, vals_l = [], [], []

    def _search(graph, idx, local_nodes, pos):
        """Bounded search from sources idx (positions pos in graph); keep pairs within the limit."""
        lim_b = limit - off[idx].min() + slack if np.isfinite(limit) else np.inf
        uniq, inv = np.unique(pos, return_inverse=True)
        d = dijkstra(graph, directed=True, indices=uniq, limit=lim_b)
        d = d[inv] + off[idx][:, None]
        r, c = np.nonzero(d <= limit + slack)
        rows_l.append(idx[r])
        cols_l.append(c if local_nodes is None else local_nodes[c])
        vals_l.append(d[r, c] + REACH_EPS)

    if local:
        # square tiles of side `radius`: the sources of one tile can only reach nodes in that tile
        # and its 8 neighbours, so each tile's batch searches that small sub-graph
        radius = radius * (1 + 1e-9) + 1e-6
        x = net.nodes["x"].to_numpy(dtype=float)
        y = net.nodes["y"].to_numpy(dtype=float)
        tiles = _node_tiles(net, radius)
        loc = np.full(n, -1, dtype=g.indices.dtype)  # scratch for _submatrix: node -> local id
        tx = np.floor(x[sn[usable]] / radius).astype(np.int64)
        ty = np.floor(y[sn[usable]] / radius).astype(np.int64)
        b = _block_size(tx, ty, net.n_nodes / max(len(tiles), 1))
        sx, sy = tx // b, ty // b
        order = np.lexsort((sy, sx))
        usable, sx, sy = usable[order], sx[order], sy[order]
        cut = np.flatnonzero((np.diff(sx) != 0) | (np.diff(sy) != 0)) + 1
        groups = [(g_idx, int(g_sx[0]), int(g_sy[0])) for g_idx, g_sx, g_sy in
                  zip(np.split(usable, cut), np.split(sx, cut), np.split(sy, cut), strict=True)]
        if progress:
            from tqdm.auto import tqdm

            groups = tqdm(groups, desc=f"reach {weight}")
        for g_idx, bx, by in groups:
            near = [tiles.get((bx * b + dx, by * b + dy)) for dx in range(-1, b + 1) for dy in range(-1, b + 1)]
            inside = np.sort(np.concatenate([a for a in near if a is not None]))
            sub_g = _submatrix(g, inside, loc)
            pos = np.searchsorted(inside, sn[g_idx])
            step = max(1, min(int(batch_size), int(max_batch_cells // max(inside.size, 1))))
            for k in range(0, g_idx.size, step):
                _search(sub_g, g_idx[k:k + step], inside, pos[k:k + step])
    else:
        bs = max(1, min(int(batch_size), int(max_batch_cells // max(n, 1))))
        batches = range(0, usable.size, bs)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"reach {weight}", total=-(-usable.size // bs) if usable.size else 0)
        for start in batches:
            idx = usable[start:start + bs]
            _search(g, idx, None, sn[idx])
    if rows_l:
        rows = np.concatenate(rows_l)
        cols = np.concatenate(cols_l)
        vals = np.concatenate(vals_l)
    else:
        rows = cols = np.empty(0, dtype=np.int64)
        vals = np.empty(0)
    return csr_matrix((vals, (rows, cols)), shape=(sn.size, n))
