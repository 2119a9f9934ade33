"""Vector building blocks written as LLVM IR through numba intrinsics, for the loops LLVM will
not vectorise from numba source.

:func:`deinterleave2` splits a row into its even and odd elements (a stride-2 layer's two
column phases). As a numba loop (``even[t] = x[2t]; odd[t] = x[2t + 1]``) LLVM kept it scalar
for rows shorter than its unrolled vector body (MobileNetV2's 56 -> 28 plane), and a flat
1-D index was slower still (numba's negative-index wraparound checks); here every 32 values
are one vector load and two shuffles.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["deinterleave2", "vector_lanes"]


@lru_cache(maxsize=None)
def vector_lanes(itemsize: int) -> tuple[int, int]:
    """``(lanes, registers)`` of the host's widest float vectors: 512-bit with AVX-512F (32
    registers), else 256-bit (16)."""
    import llvmlite.binding as llvm
    wide = bool(llvm.get_host_cpu_features().get("avx512f", False))
    return (64 if wide else 32) // itemsize, (32 if wide else 16)


@lru_cache(maxsize=None)
def deinterleave2(vector_bytes: int):
    """The numba intrinsic ``dein(src, soff, spitch, dst, d0, d1, dpitch, n, rows)`` for 1-D float
    arrays ``src`` and ``dst`` of one dtype: for ``r < rows`` and ``t < n``,
    ``dst[d0 + r*dpitch + t] = src[soff + r*spitch + 2t]`` and
    ``dst[d1 + r*dpitch + t] = src[soff + r*spitch + 2t + 1]`` (it reads ``2n`` values a row).
    A vector of ``vector_bytes`` of each per step; a row's last ``n % lanes`` values in one
    masked step (a 14- or 7-wide row is shorter than one vector)."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    i64, i32, i1 = ir.IntType(64), ir.IntType(32), ir.IntType(1)

    @intrinsic
    def dein(typingctx, src, soff, spitch, dst, d0, d1, dpitch, n, rows):
        if src.dtype != dst.dtype or src.dtype not in (types.float32, types.float64):
            return None
        sig = types.void(src, soff, spitch, dst, d0, d1, dpitch, n, rows)
        bits = src.dtype.bitwidth
        lanes = vector_bytes * 8 // bits
        ft = ir.FloatType() if bits == 32 else ir.DoubleType()
        wide, half = ir.VectorType(ft, 2 * lanes), ir.VectorType(ft, lanes)
        mwide, mhalf = ir.VectorType(i1, 2 * lanes), ir.VectorType(i1, lanes)
        even = ir.Constant(ir.VectorType(i32, lanes), list(range(0, 2 * lanes, 2)))
        odd = ir.Constant(ir.VectorType(i32, lanes), list(range(1, 2 * lanes, 2)))
        align = bits // 8
        suffix = f"f{bits}.p0"

        def codegen(context, builder, signature, args):
            sa, so, sp_, da, e0, o0, dpp, cnt, nrows = args
            sp = context.make_array(signature.args[0])(context, builder, sa).data
            dp = context.make_array(signature.args[3])(context, builder, da).data
            mod = builder.module
            ptr = sp.type
            mload = cgutils.get_or_insert_function(
                mod, ir.FunctionType(wide, [ptr, i32, mwide, wide]), f"llvm.masked.load.v{2 * lanes}{suffix}")
            mstore = cgutils.get_or_insert_function(
                mod, ir.FunctionType(ir.VoidType(), [half, ptr, i32, mhalf]), f"llvm.masked.store.v{lanes}{suffix}")

            def c(v):
                return ir.Constant(i64, v)

            undef = ir.Constant(wide, ir.Undefined)
            nv = builder.sdiv(cnt, c(lanes))
            tail = builder.sub(cnt, builder.mul(nv, c(lanes)))
            # lane masks of the row's tail: the first 2*tail source lanes, the first tail results
            idx_w = ir.Constant(ir.VectorType(i64, 2 * lanes), list(range(2 * lanes)))
            idx_h = ir.Constant(ir.VectorType(i64, lanes), list(range(lanes)))

            def splat(v, k):
                vt = ir.VectorType(i64, k)
                one = builder.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(i32, 0))
                return builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(i32, k),
                                                                                            [0] * k))
            mw = builder.icmp_unsigned("<", idx_w, splat(builder.mul(tail, c(2)), 2 * lanes))
            mh = builder.icmp_unsigned("<", idx_h, splat(tail, lanes))
            zero = ir.Constant(wide, [0.0] * (2 * lanes))
            with cgutils.for_range(builder, nrows) as rloop:
                r = rloop.index
                sb = builder.add(so, builder.mul(r, sp_))
                db = builder.mul(r, dpp)
                with cgutils.for_range(builder, nv) as loop:
                    i = loop.index
                    v = builder.load(builder.bitcast(builder.gep(sp, [builder.add(sb, builder.mul(i, c(2 * lanes)))]),
                                                     wide.as_pointer()), align=align)
                    t = builder.add(db, builder.mul(i, c(lanes)))
                    for off, mask in ((e0, even), (o0, odd)):
                        builder.store(builder.shuffle_vector(v, undef, mask),
                                      builder.bitcast(builder.gep(dp, [builder.add(off, t)]), half.as_pointer()),
                                      align=align)
                # the row's tail: masked lanes are neither read nor written
                s_t = builder.gep(sp, [builder.add(sb, builder.mul(nv, c(2 * lanes)))])
                v = builder.call(mload, [builder.bitcast(s_t, ptr), ir.Constant(i32, align), mw, zero])
                t = builder.add(db, builder.mul(nv, c(lanes)))
                for off, mask in ((e0, even), (o0, odd)):
                    d_t = builder.gep(dp, [builder.add(off, t)])
                    builder.call(mstore, [builder.shuffle_vector(v, undef, mask), builder.bitcast(d_t, ptr),
                                          ir.Constant(i32, align), mh])
            return context.get_dummy_value()

        return sig, codegen

    return dein
