#!/usr/bin/env python3
"""Anchor benchmark: one Llama decoder block (SmolLM2-135M shapes), forward and
forward+backward, in PyTorch or in MLX's Python API. Reference only: it measures the
frameworks we compare against; the product never runs Python.

Prints ONE JSON line on stdout (everything else goes to stderr).

Graph (the Swift benchmark implements exactly this; keep the two in sync)
-------------------------------------------------------------------------
Shapes: batch B=4, sequence L=256, hidden D=576, heads H=9, head dim 64, KV heads 3
(GQA: query head h uses KV head h // 3, i.e. Hugging Face `repeat_kv`), MLP hidden
F=1536, float32 everywhere, no biases.

Weights use the PyTorch/HF nn.Linear layout W[out, in]; linear(x, W) = x @ W^T.
  wq [576,576]  wk [192,576]  wv [192,576]  wo [576,576]
  wg [1536,576] wu [1536,576] wd [576,1536]  norm1 [576] = 1  norm2 [576] = 1
Values: numpy.random.default_rng(seed=0).standard_normal(shape, float32), drawn in this
order: x [B,L,D] (unscaled), wq, wk, wv, wo, wg, wu, wd (each * 0.02), r [B,L,D]
(unscaled). Norm weights are ones. Both frameworks get bit-identical inputs, so their
"loss" fields agree to float32 rounding.

  rms(x, w)  = x * rsqrt(mean(x^2, last axis) + 1e-5) * w
  rope(t)    : t [B, heads, L, 64]; position p = 0..L-1, inv_freq_i = 100000^(-2i/64),
               i = 0..31, angle = p * inv_freq_i; cos/sin tables [L,64] = [c, c] / [s, s];
               rope(t) = t * cos + rotate_half(t) * sin, rotate_half([a, b]) = [-b, a]
               (halves of the 64-wide head dim; "non-traditional", HF layout; whole head
               dim rotated). torch precomputes the tables once, outside the timed region;
               MLX uses mx.fast.rope(traditional=False, base=100000, scale=1, offset=0).
  a          = rms(x, norm1)
  q = rope(split_heads(linear(a, wq), 9)); k = rope(split_heads(linear(a, wk), 3))
  v = split_heads(linear(a, wv), 3)
  o          = softmax(q k^T / sqrt(64) + causal_mask) v   (mask: -inf where key > query)
  h          = x + linear(merge_heads(o), wo)
  b          = rms(h, norm2)
  y          = h + linear(silu(linear(b, wg)) * linear(b, wu), wd)
  loss       = sum(y * r)
Backward: gradients of loss w.r.t. all 9 weight tensors (wq, wk, wv, wo, wg, wu, wd,
norm1, norm2) and x.

Framework specifics
  torch: torch.set_num_threads(--threads); F.rms_norm, explicit repeat_kv then
         F.scaled_dot_product_attention(is_causal=True), F.silu. fwd is timed under
         torch.no_grad(); fwd_bwd = forward with autograd + loss.backward() (grads reset
         to None before each iteration).
  mlx:   mx.fast.rms_norm, mx.fast.rope, mx.fast.scaled_dot_product_attention(
         mask="causal") with 3 KV heads (native GQA, same grouping as repeat_kv),
         nn-free; fwd = mx.eval(loss); fwd_bwd = mx.value_and_grad over a dict holding the
         9 weights and x, mx.eval(loss, grads). Eager by default; --compile wraps both in
         mx.compile. MLX's CPU matmuls go through BLAS: the mlx-cpu wheel bundles reference
         BLAS; run under LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 for the fair
         anchor ("blas" field in the JSON says which one is loaded); the script pins
         OpenBLAS to --threads via openblas_set_num_threads ("openblas_threads" field).

Timing: --warmup (3) untimed iterations, then the median over --iters (10) iterations of
time.perf_counter() around each call (including the final evaluation/synchronisation).

Also: --op matmul --n 1024 times an n x n float32 matmul (median) and reports GFLOP/s
(2 n^3 / t).

Examples (from the repo root, after bench/anchors/setup.sh):
  PYTHONPATH=.deps/anchors python3 bench/anchors/llama_block.py --framework torch
  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 \
    PYTHONPATH=.deps/anchors python3 bench/anchors/llama_block.py --framework mlx
  PYTHONPATH=.deps/anchors python3 bench/anchors/llama_block.py --framework mlx --op matmul --n 1024
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

D, H, HD, KVH, F_HID = 576, 9, 64, 3, 1536
EPS, ROPE_BASE, SCALE = 1e-5, 100000.0, 1.0 / math.sqrt(64)
WEIGHT_SHAPES = [("wq", (H * HD, D)), ("wk", (KVH * HD, D)), ("wv", (KVH * HD, D)),
                 ("wo", (D, H * HD)), ("wg", (F_HID, D)), ("wu", (F_HID, D)),
                 ("wd", (D, F_HID))]


def make_inputs(B, L, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, L, D), dtype=np.float32)
    w = {n: (rng.standard_normal(s, dtype=np.float32) * np.float32(0.02)) for n, s in WEIGHT_SHAPES}
    r = rng.standard_normal((B, L, D), dtype=np.float32)
    w["norm1"] = np.ones(D, np.float32)
    w["norm2"] = np.ones(D, np.float32)
    return x, w, r


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3, min(ts) * 1e3


def pin_openblas_threads(n):
    """A preloaded OpenBLAS reads OPENBLAS_NUM_THREADS before Python starts; enforce
    --threads through its API instead. Returns the thread count it reports (or None)."""
    import ctypes
    try:
        lib = ctypes.CDLL(None)
        lib.openblas_set_num_threads(ctypes.c_int(n))
        return int(lib.openblas_get_num_threads())
    except (AttributeError, OSError):
        return None


def loaded_blas():
    try:
        maps = open("/proc/self/maps").read()
    except OSError:
        return "unknown"
    if "libopenblas" in maps:
        return "openblas"
    if "libblas" in maps:
        return "reference-blas"
    return "unknown"


# ----------------------------------------------------------------------------- torch
def run_torch(args):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    out = {"framework": "torch", "version": torch.__version__, "threads": torch.get_num_threads()}

    if args.op == "matmul":
        n = args.n
        g = torch.Generator().manual_seed(args.seed)
        a = torch.randn(n, n, generator=g)
        b = torch.randn(n, n, generator=g)

        def mm():
            with torch.no_grad():
                torch.mm(a, b)
        ms, best = timed(mm, args.warmup, args.iters)
        out.update(op="matmul", n=n, ms=ms, min_ms=best, gflops=2 * n ** 3 / (ms * 1e-3) / 1e9,
                   iters=args.iters, blas="mkl")
        return out

    B, L = args.batch, args.seq
    xn, wn, rn = make_inputs(B, L, args.seed)
    x = torch.from_numpy(xn).requires_grad_(True)
    w = {k: torch.from_numpy(v).requires_grad_(True) for k, v in wn.items()}
    r = torch.from_numpy(rn)

    inv_freq = ROPE_BASE ** (-torch.arange(0, HD, 2, dtype=torch.float32) / HD)   # [32]
    ang = torch.arange(L, dtype=torch.float32)[:, None] * inv_freq[None, :]      # [L,32]
    cos = torch.cat([ang.cos(), ang.cos()], -1)                                  # [L,64]
    sin = torch.cat([ang.sin(), ang.sin()], -1)

    def rope(t):
        t1, t2 = t[..., :HD // 2], t[..., HD // 2:]
        return t * cos + torch.cat([-t2, t1], -1) * sin

    def forward(x, w):
        a = F.rms_norm(x, (D,), w["norm1"], EPS)
        q = F.linear(a, w["wq"]).view(B, L, H, HD).transpose(1, 2)
        k = F.linear(a, w["wk"]).view(B, L, KVH, HD).transpose(1, 2)
        v = F.linear(a, w["wv"]).view(B, L, KVH, HD).transpose(1, 2)
        q, k = rope(q), rope(k)
        rep = H // KVH  # HF repeat_kv: query head h uses KV head h // rep
        k = k[:, :, None].expand(B, KVH, rep, L, HD).reshape(B, H, L, HD)
        v = v[:, :, None].expand(B, KVH, rep, L, HD).reshape(B, H, L, HD)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=SCALE)
        h = x + F.linear(o.transpose(1, 2).reshape(B, L, H * HD), w["wo"])
        b = F.rms_norm(h, (D,), w["norm2"], EPS)
        y = h + F.linear(F.silu(F.linear(b, w["wg"])) * F.linear(b, w["wu"]), w["wd"])
        return (y * r).sum()

    params = [x] + list(w.values())

    def fwd():
        with torch.no_grad():
            forward(x, w)

    def fwd_bwd():
        for p in params:
            p.grad = None
        forward(x, w).backward()

    fwd_ms, fwd_min = timed(fwd, args.warmup, args.iters)
    fb_ms, fb_min = timed(fwd_bwd, args.warmup, args.iters)
    for p in params:
        p.grad = None
    loss = forward(x, w)
    loss.backward()
    names = ["x"] + list(w.keys())
    gsq = {n: float((p.grad.double() ** 2).sum()) for n, p in zip(names, params)}
    out.update(op="llama_block", fwd_ms=fwd_ms, fwd_bwd_ms=fb_ms, fwd_min_ms=fwd_min,
               fwd_bwd_min_ms=fb_min, iters=args.iters, warmup=args.warmup, batch=B, seq=L,
               loss=float(loss.detach()), grad_sq=gsq, blas="mkl", compile=False)
    return out


# ------------------------------------------------------------------------------- mlx
def run_mlx(args):
    import mlx.core as mx
    mx.set_default_device(mx.cpu)
    out = {"framework": "mlx", "version": mx.__version__, "threads": args.threads,
           "openblas_threads": pin_openblas_threads(args.threads)}

    if args.op == "matmul":
        n = args.n
        key = mx.random.key(args.seed)
        k1, k2 = mx.random.split(key)
        a = mx.random.normal((n, n), key=k1)
        b = mx.random.normal((n, n), key=k2)
        mx.eval(a, b)
        ms, best = timed(lambda: mx.eval(a @ b), args.warmup, args.iters)
        out.update(op="matmul", n=n, ms=ms, min_ms=best, gflops=2 * n ** 3 / (ms * 1e-3) / 1e9,
                   iters=args.iters, blas=loaded_blas())
        return out

    B, L = args.batch, args.seq
    xn, wn, rn = make_inputs(B, L, args.seed)
    params = {k: mx.array(v) for k, v in wn.items()}
    params["x"] = mx.array(xn)
    r = mx.array(rn)
    mx.eval(params, r)

    def rope(t):
        return mx.fast.rope(t, HD, traditional=False, base=ROPE_BASE, scale=1.0, offset=0)

    def loss_fn(p):
        x = p["x"]
        a = mx.fast.rms_norm(x, p["norm1"], EPS)
        q = (a @ p["wq"].T).reshape(B, L, H, HD).transpose(0, 2, 1, 3)
        k = (a @ p["wk"].T).reshape(B, L, KVH, HD).transpose(0, 2, 1, 3)
        v = (a @ p["wv"].T).reshape(B, L, KVH, HD).transpose(0, 2, 1, 3)
        q, k = rope(q), rope(k)
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=SCALE, mask="causal")
        h = x + o.transpose(0, 2, 1, 3).reshape(B, L, H * HD) @ p["wo"].T
        b = mx.fast.rms_norm(h, p["norm2"], EPS)
        g = b @ p["wg"].T
        y = h + ((g * mx.sigmoid(g)) * (b @ p["wu"].T)) @ p["wd"].T   # silu(g) = g*sigmoid(g)
        return mx.sum(y * r)

    vg = mx.value_and_grad(loss_fn)
    fwd_f, vg_f = (mx.compile(loss_fn), mx.compile(vg)) if args.compile else (loss_fn, vg)

    def fwd():
        mx.eval(fwd_f(params))

    def fwd_bwd():
        loss, grads = vg_f(params)
        mx.eval(loss, grads)

    fwd_ms, fwd_min = timed(fwd, args.warmup, args.iters)
    fb_ms, fb_min = timed(fwd_bwd, args.warmup, args.iters)
    loss, grads = vg(params)
    mx.eval(loss, grads)
    assert sorted(grads) == sorted(params)  # 9 weights + x
    import numpy as np
    gsq = {n: float((np.array(grads[n]).astype(np.float64) ** 2).sum())
           for n in ["x"] + [k for k in params if k != "x"]}
    out.update(op="llama_block", fwd_ms=fwd_ms, fwd_bwd_ms=fb_ms, fwd_min_ms=fwd_min,
               fwd_bwd_min_ms=fb_min, iters=args.iters, warmup=args.warmup, batch=B, seq=L,
               loss=float(loss), grad_sq=gsq, blas=loaded_blas(), compile=args.compile)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--framework", choices=["torch", "mlx"], required=True)
    ap.add_argument("--op", choices=["llama_block", "matmul"], default="llama_block")
    ap.add_argument("--n", type=int, default=1024, help="matmul size (--op matmul)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="mlx only: mx.compile both graphs")
    args = ap.parse_args()
    if args.compile and args.framework != "mlx":
        ap.error("--compile is for --framework mlx")
    out = run_torch(args) if args.framework == "torch" else run_mlx(args)
    out["ld_preload"] = os.environ.get("LD_PRELOAD", "")
    out["python"] = platform.python_version()
    out["cpus"] = os.cpu_count()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
