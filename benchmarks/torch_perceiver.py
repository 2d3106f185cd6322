#!/usr/bin/python3
"""PyTorch side of attn-bench's "perceiver" group, and the Perceiver reference of the FFI test.

The model: lucidrains/perceiver-pytorch's `Perceiver` (v0.9), written here from docs/perceiver.md
because that package (and einops) is not installable on the build machines. Same module tree,
same state_dict names, same operations in the same order:
    latents                                   Parameter (M, D), randn
    layers.{i}.0  PreNorm(Attention)          cross-attention: norm (D), norm_context (C'), fn.to_q,
                                              fn.to_kv (no bias), fn.to_out (bias)
    layers.{i}.1  PreNorm(FeedForward)        norm, fn.net.0 Linear(D, 8D), GEGLU, fn.net.2 Linear(4D, D)
    layers.{i}.2.{j}.0 / .1                   latent self-attention / feed-forward, as above
    to_logits.1 (LayerNorm), to_logits.2 (Linear)   after a mean over the latents (to_logits.0, no
                                              tensors); nn.Identity when num_classes = 0 (the default
                                              here, libattn's; lucidrains' is 1000, and its latents out
                                              are final_classifier_head=False or return_embeddings)
With weight_tie_layers, layers 1..depth-1 hold the SAME module objects (lucidrains' cache_fn), so
state_dict lists them again under layers.{i>=2}.*. Dropout is left out (lucidrains' default 0 and
eval mode make it the identity; it holds no tensors).
Mask convention: libattn's, [B, N] with True/nonzero = IGNORE that input position, applied as
lucidrains does (masked_fill of the cross-attention scores with -finfo(dtype).max, so a fully masked
row attends uniformly to all positions). lucidrains' own mask is the opposite (True = keep).

The command line (attn-bench spawns it with /usr/bin/python3 and parses its standard output, one
record a line; the protocol of torch_mha.py):
    INFO <free text>                        the first one says what runs (version, threads)
    INFO runs perceiver_<S>_b<B> <runs>     before each result: the timed runs its median is taken of
    RESULT perceiver_<S>_b<B> <median seconds> <runs>
    ERROR <free text>                       (then the exit status is nonzero)
<S> is the side of a square (cubic, ...) input: each positional size s runs the input axes
(s,) * len(--axis), N = s ** len(--axis); with no positional size, the one input --axis is run
(named by its side when all axes are equal, else by the sizes joined with 'x', e.g. 5x3). Float32,
the model in eval mode under torch.no_grad(), lucidrains' default initialization (seed 0), data
uniform in [-1, 1), no mask. The Fourier features are computed inside every forward, as lucidrains
does. --threads 0 leaves torch's intra-op thread count at its default; n > 0 sets it. A case whose
first warm-up takes longer than --slow seconds gets at most --slow-runs timed runs.

Example: /usr/bin/python3 torch_perceiver.py --batch 1 4 --threads 2 56 112 224
"""
import argparse
import math
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except Exception as _e:  # noqa: BLE001  (any import failure means: no torch comparison)
    if __name__ != "__main__":
        raise
    print(f"ERROR torch is not importable: {type(_e).__name__}: {_e}", flush=True)
    sys.exit(3)


# ---- the model ---------------------------------------------------------------------------------


def cache_fn(f):
    """lucidrains' cache_fn: with _cache=True, one module per key, returned again on every call."""
    cache = {}

    def cached(*args, _cache=True, key=None, **kwargs):
        if not _cache:
            return f(*args, **kwargs)
        if key not in cache:
            cache[key] = f(*args, **kwargs)
        return cache[key]

    return cached


def fourier_encode(x, max_freq, num_bands):
    """x [..., axes] -> [..., axes, 2K+1]: per axis [sin(pi x f) (K), cos(pi x f) (K), x],
    f = linspace(1, max_freq/2, K)."""
    x = x.unsqueeze(-1)
    scales = torch.linspace(1.0, max_freq / 2, num_bands, dtype=x.dtype)
    xs = x * scales * math.pi
    return torch.cat([xs.sin(), xs.cos(), x], dim=-1)


class PreNorm(nn.Module):
    def __init__(self, dim, fn, context_dim=None):
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None

    def forward(self, x, **kwargs):
        x = self.norm(x)
        if self.norm_context is not None:
            kwargs["context"] = self.norm_context(kwargs["context"])
        return self.fn(x, **kwargs)


class GEGLU(nn.Module):
    def forward(self, x):
        x, gates = x.chunk(2, dim=-1)
        return x * F.gelu(gates)  # exact (erf) GELU


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mult * 2), GEGLU(), nn.Linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, query_dim, context_dim=None, heads=8, dim_head=64):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = query_dim if context_dim is None else context_dim
        self.scale = dim_head ** -0.5
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(context_dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, query_dim)

    def forward(self, x, context=None, mask=None):
        """x [B, n, query_dim], context [B, N, context_dim] (default x), mask [B, N] True = ignore."""
        h = self.heads
        context = x if context is None else context
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=-1)  # first half K, second half V

        def split(t):  # 'b n (h d) -> (b h) n d'
            b, n, _ = t.shape
            return t.reshape(b, n, h, -1).permute(0, 2, 1, 3).reshape(b * h, n, -1)

        q, k, v = split(q), split(k), split(v)
        sim = torch.einsum("b i d, b j d -> b i j", q, k) * self.scale
        if mask is not None:
            mask = mask.reshape(mask.shape[0], -1).repeat_interleave(h, dim=0)[:, None, :]  # (b h) 1 j
            sim.masked_fill_(mask, -torch.finfo(sim.dtype).max)
        attn = sim.softmax(dim=-1)
        out = torch.einsum("b i j, b j d -> b i d", attn, v)
        b = out.shape[0] // h
        out = out.reshape(b, h, out.shape[1], -1).permute(0, 2, 1, 3).reshape(b, out.shape[1], -1)
        return self.to_out(out)


class MeanOverLatents(nn.Module):
    """einops' Reduce('b n d -> b d', 'mean')."""

    def forward(self, x):
        return x.mean(dim=1)


class Perceiver(nn.Module):
    def __init__(self, *, num_freq_bands, depth, max_freq, input_channels=3, input_axis=2, num_latents=512,
                 latent_dim=512, cross_heads=1, latent_heads=8, cross_dim_head=64, latent_dim_head=64,
                 num_classes=0, weight_tie_layers=False, fourier_encode_data=True, self_per_cross_attn=1):
        super().__init__()
        self.input_axis = input_axis
        self.max_freq = max_freq
        self.num_freq_bands = num_freq_bands
        self.fourier_encode_data = fourier_encode_data
        fourier_channels = input_axis * (num_freq_bands * 2 + 1) if fourier_encode_data else 0
        input_dim = fourier_channels + input_channels

        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim))

        get_cross_attn = cache_fn(lambda: PreNorm(
            latent_dim, Attention(latent_dim, input_dim, heads=cross_heads, dim_head=cross_dim_head),
            context_dim=input_dim))
        get_cross_ff = cache_fn(lambda: PreNorm(latent_dim, FeedForward(latent_dim)))
        get_latent_attn = cache_fn(lambda: PreNorm(
            latent_dim, Attention(latent_dim, heads=latent_heads, dim_head=latent_dim_head)))
        get_latent_ff = cache_fn(lambda: PreNorm(latent_dim, FeedForward(latent_dim)))

        self.layers = nn.ModuleList([])
        for i in range(depth):
            cache = i > 0 and bool(weight_tie_layers)
            self_attns = nn.ModuleList([])
            for j in range(self_per_cross_attn):
                self_attns.append(nn.ModuleList([get_latent_attn(_cache=cache, key=j),
                                                 get_latent_ff(_cache=cache, key=j)]))
            self.layers.append(nn.ModuleList([get_cross_attn(_cache=cache), get_cross_ff(_cache=cache),
                                              self_attns]))

        if num_classes > 0:
            self.to_logits = nn.Sequential(MeanOverLatents(), nn.LayerNorm(latent_dim),
                                           nn.Linear(latent_dim, num_classes))
        else:
            self.to_logits = nn.Identity()

    def forward(self, data, mask=None):
        """data [B, *axis, C], mask [B, N] or [B, *axis] (True/nonzero = ignore) or None ->
        logits [B, num_classes], or the latents [B, M, D] when num_classes = 0."""
        b, *axis, _ = data.shape
        assert len(axis) == self.input_axis, "input data must have the right number of axis"
        if self.fourier_encode_data:
            axis_pos = [torch.linspace(-1.0, 1.0, steps=s, dtype=data.dtype) for s in axis]
            pos = torch.stack(torch.meshgrid(*axis_pos, indexing="ij"), dim=-1)  # [*axis, axes]
            enc_pos = fourier_encode(pos, self.max_freq, self.num_freq_bands)  # [*axis, axes, 2K+1]
            enc_pos = enc_pos.reshape(*axis, -1)
            enc_pos = enc_pos.unsqueeze(0).expand(b, *enc_pos.shape)
            data = torch.cat((data, enc_pos), dim=-1)
        data = data.reshape(b, -1, data.shape[-1])  # 'b ... d -> b (...) d', row-major
        if mask is not None:
            mask = torch.as_tensor(mask).reshape(b, -1) != 0

        x = self.latents.unsqueeze(0).expand(b, *self.latents.shape)
        for cross_attn, cross_ff, self_attns in self.layers:
            x = cross_attn(x, context=data, mask=mask) + x
            x = cross_ff(x) + x
            for self_attn, self_ff in self_attns:
                x = self_attn(x) + x
                x = self_ff(x) + x
        return self.to_logits(x)


# ---- the benchmark -----------------------------------------------------------------------------


def _case_name(axis, batch):
    side = str(axis[0]) if len(set(axis)) == 1 else "x".join(map(str, axis))
    return f"perceiver_{side}_b{batch}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--axis", type=int, nargs="+", default=[224, 224],
                    help="input axis sizes; their count is input_axis (default 224 224)")
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--num-freq-bands", type=int, default=64)
    ap.add_argument("--max-freq", type=float, default=10.0)
    ap.add_argument("--no-fourier", action="store_true", help="fourier_encode_data = False")
    ap.add_argument("--latents", type=int, default=256, help="num_latents M")
    ap.add_argument("--latent-dim", type=int, default=512, help="D")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--cross-heads", type=int, default=1)
    ap.add_argument("--cross-dim-head", type=int, default=64)
    ap.add_argument("--latent-heads", type=int, default=8)
    ap.add_argument("--latent-dim-head", type=int, default=64)
    ap.add_argument("--self-per-cross-attn", type=int, default=1)
    ap.add_argument("--weight-tie-layers", action="store_true")
    ap.add_argument("--num-classes", type=int, default=0, help="0: no head, the latents are the output")
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes, each run for every size")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = torch's default")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--slow", type=float, default=2.0, help="seconds of a warm-up beyond which a case is slow")
    ap.add_argument("--slow-runs", type=int, default=3, help="most timed runs of a slow case")
    ap.add_argument("sizes", type=int, nargs="*", help="sides s: input axes (s,) * len(--axis)")
    args = ap.parse_args()
    positive = [args.channels, args.latents, args.latent_dim, args.depth, args.cross_heads, args.cross_dim_head,
                args.latent_heads, args.latent_dim_head, args.runs, args.slow_runs] + args.axis + args.batch
    positive += args.sizes
    if min(positive) < 1 or args.warmup < 0 or args.threads < 0 or args.num_classes < 0 or \
            args.self_per_cross_attn < 0:
        print("ERROR sizes, batches, --runs, --slow-runs and the model sizes must be >= 1; --warmup, "
              "--threads, --num-classes, --self-per-cross-attn >= 0", flush=True)
        return 2
    if not 1 <= len(args.axis) <= 3:
        print("ERROR --axis takes 1 to 3 sizes", flush=True)
        return 2
    if not args.no_fourier and (args.num_freq_bands < 1 or not args.max_freq > 0):
        print("ERROR --num-freq-bands must be >= 1 and --max-freq > 0 with Fourier features", flush=True)
        return 2

    if args.threads:
        torch.set_num_threads(args.threads)
        how = f"--threads {args.threads}"
    else:
        how = "default"
    print(f"INFO torch {torch.__version__}, {torch.get_num_threads()} intra-op threads ({how}), "
          f"{sys.executable}", flush=True)

    try:
        torch.manual_seed(0)
        model = Perceiver(num_freq_bands=args.num_freq_bands, depth=args.depth, max_freq=args.max_freq,
                          input_channels=args.channels, input_axis=len(args.axis), num_latents=args.latents,
                          latent_dim=args.latent_dim, cross_heads=args.cross_heads, latent_heads=args.latent_heads,
                          cross_dim_head=args.cross_dim_head, latent_dim_head=args.latent_dim_head,
                          num_classes=args.num_classes, weight_tie_layers=args.weight_tie_layers,
                          fourier_encode_data=not args.no_fourier,
                          self_per_cross_attn=args.self_per_cross_attn).float().eval()
        shapes = [tuple(args.axis)] if not args.sizes else [(s,) * len(args.axis) for s in args.sizes]
        with torch.no_grad():
            for axis in shapes:
                for batch in args.batch:
                    name = _case_name(axis, batch)
                    x = torch.rand(batch, *axis, args.channels, dtype=torch.float32) * 2 - 1
                    runs = args.runs
                    for i in range(args.warmup):
                        t0 = time.perf_counter()
                        model(x)
                        if i == 0 and time.perf_counter() - t0 > args.slow:
                            runs = min(runs, args.slow_runs)
                    times = []
                    for _ in range(runs):
                        t0 = time.perf_counter()
                        model(x)
                        times.append(time.perf_counter() - t0)
                    print(f"INFO runs {name} {runs}", flush=True)
                    print(f"RESULT {name} {statistics.median(times):.9f} {runs}", flush=True)
                    del x
    except Exception as e:  # noqa: BLE001  (out of memory, ...): say so in the protocol
        print(f"ERROR {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
