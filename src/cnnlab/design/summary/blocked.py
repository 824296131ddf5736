"""The field of a map upsampled in blocks (§3.2), and of the windows after it.

An upsampling by S (F.interpolate nearest, or bilinear / bicubic by an even S, F.fold or a
transposed conv of stride S, a pixel shuffle, max unpooling) puts each input unit on S finer
positions: neighbouring positions share their input units, in blocks of S. A window after
it reads input units, not taps spaced jump / S apart: Fold 4/4 (patch un-embedding) then a
3×3 conv reads two patches where it straddles a block's edge, 4 + 4 = 8 px, not 4 + 2·1 = 6.

One axis. Input units of field size r, J px apart. Position o of the map reads the units
    i ∈ [⌈(t·o + p − E + 1) / s⌉, ⌊(t·o + p) / s⌋],    gcd(t, s) = 1, s > 1
so its field is r + n·J with n the largest ⌊(t·o + p)/s⌋ − ⌈(t·o + p − E + 1)/s⌉; t·o + p
takes every residue mod s (t and s coprime), so
    n = ⌊(E − 1) / s⌋
(at t·o + p ≡ 0 mod s, a block's end: a window that straddles two blocks, aligned or not).
  - An upsampling (transposed window of extent E = D(K − 1) + 1, stride s, padding p):
    t = 1. Nearest by S: E = s = S, p = 0, i = ⌊o / S⌋; bilinear by an even S: E = 2S,
    p = S/2 (the 2 taps around (o + ½)/S − ½).
  - A window after it (k taps, dilation d, padding q, stride t₂) reads positions
    [t₂·o − q, t₂·o − q + L], L = d(k − 1): the form again with E' = E + t·L,
    p' = p + t·(L − q), t' = t·t₂, divided by g = gcd(t', s) to keep t and s coprime
    (⌊(t'·o + p')/s⌋ = ⌊(t'/g·o + ⌊p'/g⌋)/(s/g)⌋, the ceiling alike): E'' = ⌊p'/g⌋ −
    ⌈(p' − E' + 1)/g⌉ + 1. So k×k after nearest ×S reads ⌈(k − 1)/S⌉ + 1 units, and a chain
    counts blocks once (2×2 twice after ×4 reads 2 units, not the 3 of a ceiling per
    window). s/g = 1 (a stride that is a multiple of the blocks): no blocks left, a plain
    field r + (E'' − 1)·J.
  - A second upsampling (E₂, s₂, p₂) of t = 1 positions is one: (E₂ + (E − 1)·s₂, s·s₂,
    p₂ + p·s₂), by the same nested floors; after a stride (t > 1) the trace spaces it evenly.
  - A join of two branches (a U-Net's or a dense block's concatenation) over the same units
    reads the span of both: p = max(p₁, p₂), E = p − min(p₁ − E₁, p₂ − E₂).
The field's jump and start stay the evenly spaced ones (`products.spread`,
`calls.window_rf`): a row's jump is the step between positions, J·t/s.
"""

from __future__ import annotations

import math

from cnnlab.design.summary.facts import Field

Block = tuple[int, int, int, int, int, int]  # (r, J, E, s, p, t) of the module docstring


class Blocked(Field):
    """A Field of positions that read input units in blocks: its size the largest over the
    map's positions, and `block` = (r, J, E, s, p, t). (A tuple subclass takes no
    __slots__: `block` lives in the instance's dict.)"""

    block: Block


def blocked(jump: int, start: float, block: Block) -> Field:
    """The field r + ⌊(E − 1)/s⌋·J of `block`, at `jump` and `start`: Blocked, or a plain
    Field where s = 1 (no blocks)."""
    r, big_j, extent, s, _, _ = block
    if s == 1:
        return Field(r + (extent - 1) * big_j, jump, start)
    out = tuple.__new__(Blocked, (r + (extent - 1) // s * big_j, jump, start))
    out.block = block
    return out


def upsampled(rf: Field, extent: int, s: int, p: int, jump: int, start: float) -> Field:
    """The field after a transposed window (extent E, stride s, padding p) over units of
    `rf`, spaced `jump` and starting at `start`: composed with rf's own block where it has
    one of t = 1 (module docstring); after a stride, as evenly spaced units."""
    if type(rf) is Blocked:
        r, big_j, e1, s1, p1, t = rf.block
        if t != 1:
            return Field(rf.size + (math.ceil(extent / s) - 1) * rf.jump, jump, start)
        extent, s, p = extent + (e1 - 1) * s, s1 * s, p + p1 * s
    else:
        r, big_j = rf.size, rf.jump
    return blocked(jump, start, (r, big_j, extent, s, p, 1))


def windowed(rf: Blocked, k: int, stride: int, q: int, d: int, even: Field) -> Field:
    """The field after a window (k taps, stride t₂, padding q before, dilation d) over
    blocked units `rf`, at the jump and start of `even`, the evenly spaced one
    (`calls.window_rf`): E' = E + t·d(k − 1), p' = p + t·(d(k − 1) − q), t' = t·t₂, then
    divided by gcd(t', s) (module docstring)."""
    r, big_j, extent, s, p, t = rf.block
    reach = d * (k - 1)
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
    one map), where either is blocked: blocks over the same units (r, J, s, t) join into
    one, P = max(p₁, p₂), E = P − min(p₁ − E₁, p₂ − E₂) (a dense block's concatenation of
    x and a conv of x keeps the conv's reach); any other pair, the larger (the first of
    equal ones), as `tags.combine` takes it."""
    lead = b if b.size > a.size else a
    if a is b or type(a) is not Blocked or type(b) is not Blocked or a.block == b.block:
        return lead  # (a join's first input meets itself; x and a 1×1 conv of x: one block)
    r, big_j, e1, s, p1, t = a.block
    r2, big_j2, e2, s2, p2, t2 = b.block
    if r2 != r or big_j2 != big_j or s2 != s or t2 != t:
        return lead
    p = p1 if p1 > p2 else p2
    low = p1 - e1 if p1 - e1 < p2 - e2 else p2 - e2
    return blocked(lead.jump, lead.start, (r, big_j, p - low, s, p, t))
