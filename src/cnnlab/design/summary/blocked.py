"""The field of a map upsampled in blocks (§3.2), and of the windows after it.

An upsampling by S (F.interpolate, F.fold or a transposed conv of stride S, a pixel shuffle,
max unpooling) puts each input unit on S finer positions: neighbouring positions share their
input units, in blocks of S. A window after it reads input units, not taps spaced jump / S
apart: Fold 4/4 (patch un-embedding) then a 3×3 conv reads two patches where it straddles a
block's edge, 4 + 4 = 8 px, not 4 + 2·1 = 6.

One axis. Input units of field size r, J px apart. Position o = P·m + j (0 ≤ j < P) of the
map reads the units
    i ∈ [Q·m + lo[j], Q·m + hi[j]]
(P positions to Q units: a periodic table), so its field is r + n·J, n = max_j hi[j] − lo[j],
the largest over the map's positions. Every step is such a map of positions, and maps
compose exactly (position o reads positions [L(o), H(o)] of a map that reads units: units
[lo(L(o)), hi(H(o))], both ends nondecreasing in o; period P₂·P₁/gcd(P₁, Q₂)):
  - an upsampling (transposed window of extent E = D(K − 1) + 1, stride s, padding p): P = s,
    Q = 1, o reads [⌈(o + p − E + 1)/s⌉, ⌊(o + p)/s⌋]. Nearest by S: E = s = S, p = 0;
    bilinear by an even S: E = 2S, p = S/2 (the 2 taps around (o + ½)/S − ½);
  - an interpolation at x(o) = (a·o + b)/c (bicubic by an odd S: x = (o − (S − 1)/2)/S):
    P = c/gcd(a, c), the 2 or 4 taps around x, or x alone where x is whole (the kernel is 0
    at the other whole offsets);
  - a window (k taps, dilation d, padding q, stride t): P = 1, Q = t, [t·o − q, t·o − q + L],
    L = d(k − 1). So k×k after nearest ×S reads ⌈(k − 1)/S⌉ + 1 units, a chain counts
    blocks once (2×2 twice after ×4 reads 2 units, not the 3 of a ceiling per window), and
    a stride, or a second upsampling after one, keeps every position's count exact. P = 1 (a
    stride that is a multiple of the blocks): no blocks left, a plain field r + n·J.
  - A join of two branches (a U-Net's or a dense block's concatenation) over the same units
    (r, J and Q/P alike) reads the span of both: the min of the lo's, the max of the hi's.
Most blocks keep the arithmetic form (E, s, p, t) of the table P = s, Q = t, lo[j] =
⌈(t·j + p − E + 1)/s⌉, hi[j] = ⌊(t·j + p)/s⌋ (an upsampling, windows and joins after it,
a second upsampling before any stride: n = ⌊(E − 1)/s⌋, no list per window; `windowed`,
`upsampled`); an interpolation's, or an upsampling after a stride, becomes a table.
The field's jump and start stay the evenly spaced ones (`products.spread`,
`calls.window_rf`): a row's jump is the step between positions, J·Q/P.
"""

from __future__ import annotations

import math

from cnnlab.design.summary.facts import Field

Block = tuple  # (r, J, E, s, p, t), or the table (r, J, P, Q, lo, hi) with lo, hi lists


class Blocked(Field):
    """A Field of positions that read input units in blocks: its size the largest over the
    map's positions, and `block`: (r, J, E, s, p, t), o reading [⌈(t·o + p − E + 1)/s⌉,
    ⌊(t·o + p)/s⌋] (gcd(t, s) = 1: an upsampling and windows after it, n = ⌊(E − 1)/s⌋,
    arithmetic per window), or the table (r, J, P, Q, lo, hi) of the module docstring (an
    interpolation's, or a stride then an upsampling). (A tuple subclass takes no __slots__:
    `block` lives in the instance's dict.)"""

    block: Block


def blocked(jump: int, start: float, block: Block) -> Field:
    """The field r + n·J of `block` (n = ⌊(E − 1)/s⌋, or max(hi − lo) of a table), at
    `jump` and `start`: Blocked, or a plain Field where s = 1 or P = 1 (every position
    reads as many units)."""
    r, big_j, e_or_p, s_or_q, lo, hi = block
    if type(lo) is list:
        n = max(map(int.__sub__, hi, lo))
        if e_or_p == 1:
            return Field(r + n * big_j, jump, start)
    elif s_or_q == 1:
        return Field(r + (e_or_p - 1) * big_j, jump, start)
    else:
        n = (e_or_p - 1) // s_or_q
    out = tuple.__new__(Blocked, (r + n * big_j, jump, start))
    out.block = block
    return out


def table(block: Block) -> Block:
    """`block` as a table: (E, s, p, t) reads [⌈(t·j + p − E + 1)/s⌉, ⌊(t·j + p)/s⌋] at
    j < s, P = s, Q = t."""
    r, big_j, extent, s, p, t = block
    if type(p) is list:
        return block
    lo = [-((extent - 1 - t * j - p) // s) for j in range(s)]
    return (r, big_j, s, t, lo, [(t * j + p) // s for j in range(s)])


def composed(rf: Field, period: int, rate: int, lo: list, hi: list) -> Block:
    """The table of positions that read positions [lo, hi] (a map of `period` positions to
    `rate` of rf's) of rf's map: rf's block, or rf's units themselves (P = Q = 1)."""
    if type(rf) is not Blocked:
        return (rf.size, rf.jump, period, rate, lo, hi)
    r, big_j, p1, q1, lo1, hi1 = table(rf.block)
    g = math.gcd(p1, rate)
    starts = range(0, rate * (p1 // g), rate)  # m·Q₂ for the periods of rf's that align
    out_lo = [q1 * ((x + y) // p1) + lo1[(x + y) % p1] for x in starts for y in lo]
    out_hi = [q1 * ((x + y) // p1) + hi1[(x + y) % p1] for x in starts for y in hi]
    return (r, big_j, len(out_lo), q1 * (rate // g), out_lo, out_hi)


def upsampled(rf: Field, extent: int, s: int, p: int, jump: int, start: float) -> Field:
    """The field after a transposed window (extent E, stride s, padding p) over units of
    `rf`, spaced `jump` and starting at `start`: (E, s, p, 1), composed with rf's own
    block where it has one, (E + (E₁ − 1)·s, s₁·s, p + p₁·s) after one of t = 1 (the
    nested floors ⌊(⌊(o + p)/s⌋ + p₁)/s₁⌋ = ⌊(o + p + p₁·s)/(s₁·s)⌋), else as tables."""
    if type(rf) is not Blocked:
        return blocked(jump, start, (rf.size, rf.jump, extent, s, p, 1))
    r, big_j, e1, s1, p1, t = rf.block
    if type(p1) is not list and t == 1:
        return blocked(jump, start, (r, big_j, extent + (e1 - 1) * s, s1 * s, p + p1 * s, 1))
    lo = [-((extent - 1 - o - p) // s) for o in range(s)]
    return blocked(jump, start, composed(rf, s, 1, lo, [(o + p) // s for o in range(s)]))


def interpolated(rf: Field, a: int, b: int, c: int, taps: int, jump: int, start: float):
    """The field after an interpolation of `taps` (2 or 4) taps at x(o) = (a·o + b)/c:
    ⌊x⌋ − taps/2 + 1 .. ⌊x⌋ + taps/2, or x alone where it is whole (the linear and cubic
    kernels are 0 at the other whole offsets); period c/gcd(a, c) positions to a/gcd(a, c)
    units."""
    g = math.gcd(a, c)
    lo, hi = [], []
    for o in range(c // g):
        x, rest = divmod(a * o + b, c)
        lo.append(x - taps // 2 + 1 if rest else x)
        hi.append(x + taps // 2 if rest else x)
    return blocked(jump, start, composed(rf, c // g, a // g, lo, hi))


def windowed(rf: Blocked, k: int, stride: int, q: int, d: int, even: Field) -> Field:
    """The field after a window (k taps, stride t₂, padding q before, dilation d) over
    blocked units `rf`, at the jump and start of `even`, the evenly spaced one
    (`calls.window_rf`): position o reads [t₂·o − q, t₂·o − q + L], L = d(k − 1). On
    (E, s, p, t): E' = E + t·L, p' = p + t·(L − q), t' = t·t₂, divided by g = gcd(t', s)
    (⌊(t'·o + p')/s⌋ = ⌊(t'/g·o + ⌊p'/g⌋)/(s/g)⌋, the ceiling alike): E'' = ⌊p'/g⌋ −
    ⌈(p' − E' + 1)/g⌉ + 1; on a table, `composed`."""
    r, big_j, extent, s, p, t = rf.block
    reach = d * (k - 1)
    if type(p) is list:
        block = composed(rf, 1, stride, [-q], [reach - q])
        return blocked(even.jump, even.start, block)
    extent, p, t = extent + t * reach, p + t * (reach - q), t * stride
    g = math.gcd(t, s)
    if g > 1:
        low = -(-(p - extent + 1) // g)  # ⌈(p' − E' + 1)/g⌉
        extent, s, p, t = p // g - low + 1, s // g, p // g, t // g
    return blocked(even.jump, even.start, (r, big_j, extent, s, p, t))


def window_pair(rf: tuple[Field, Field], w) -> tuple[Field, Field]:
    """`calls.window_rf` where an axis is blocked: the evenly spaced field per axis, then
    `windowed` on a blocked one."""
    out = []
    for i in (0, 1):
        r, k, t, q, d = rf[i], w.kernel[i], w.stride[i], w.padding[i], w.dilation[i]
        if k == t == 1 and q == 0:  # (a (3, 1) conv's other axis: AHNet's, a third of them)
            out.append(r)
            continue
        reach = d * (k - 1)
        even = Field(r.size + reach * r.jump, r.jump * t, r.start + (reach / 2 - q) * r.jump)
        out.append(windowed(r, k, t, q, d, even) if type(r) is Blocked else even)
    return out[0], out[1]


def union(a: Field, b: Field) -> Field:
    """The field of positions that read both a's and b's units (a join of two branches of
    one map), where either is blocked: blocks over the same units (r, J, s, t alike) join
    into one, P = max(p₁, p₂), E = P − min(p₁ − E₁, p₂ − E₂) (a dense block's
    concatenation of x and a conv of x keeps the conv's reach); tables (r, J, Q/P alike)
    over the lcm of their periods, lo the min, hi the max; any other pair, the larger (the
    first of equal ones), as `tags.combine` takes it."""
    lead = b if b.size > a.size else a
    if a is b or type(a) is not Blocked or type(b) is not Blocked or a.block == b.block:
        return lead  # (a join's first input meets itself; x and a 1×1 conv of x: one block)
    r, big_j, e1, s, p1, t = a.block
    r2, big_j2, e2, s2, p2, t2 = b.block
    if r2 != r or big_j2 != big_j:
        return lead
    if type(p1) is list or type(p2) is list:
        return joined(table(a.block), table(b.block), lead)
    if s2 != s or t2 != t:
        return lead
    p = p1 if p1 > p2 else p2
    low = p1 - e1 if p1 - e1 < p2 - e2 else p2 - e2
    return blocked(lead.jump, lead.start, (r, big_j, p - low, s, p, t))


def joined(a: Block, b: Block, lead: Field) -> Field:
    """`union` of two tables: over the lcm of their periods where Q/P is alike, else lead."""
    r, big_j, p1, q1, lo1, hi1 = a
    _, _, p2, q2, lo2, hi2 = b
    if q1 * p2 != q2 * p1:
        return lead
    n = p1 * p2 // math.gcd(p1, p2)
    lo, hi = [], []
    for o in range(n):
        (m1, i1), (m2, i2) = divmod(o, p1), divmod(o, p2)
        lo.append(min(q1 * m1 + lo1[i1], q2 * m2 + lo2[i2]))
        hi.append(max(q1 * m1 + hi1[i1], q2 * m2 + hi2[i2]))
    return blocked(lead.jump, lead.start, (r, big_j, n, q1 * n // p1, lo, hi))
