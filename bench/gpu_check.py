"""GPU check: NPO steps on a ~1B-parameter Llama (random weights) in bf16 — full, LoRA, QLoRA.

    bash bench/gpu_check.sh                 # on a machine with a CUDA GPU, <= 8 min
    python bench/gpu_check.py --size tiny   # CPU smoke test of the same code path

For each mode it reports tokens/s (non-pad tokens through the trained model), peak GPU memory
and model FLOPs utilisation: MFU = model FLOPs per second / the GPU's bf16 dense peak, with
model FLOPs per token = 6N for full fine-tuning (forward 2N + backward 4N), 4N for LoRA and
QLoRA (no weight gradients of the frozen base) plus 2N for the adapter-off reference forward.
Writes ``runs/bench/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from genforget.config import UnlearnConfig
from genforget.lm.trainer import unlearn_lm

SIZES = {  # hidden, layers, heads, intermediate, vocab
    "1b": (2048, 16, 16, 5632, 32000),
    "tiny": (64, 2, 4, 128, 512),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # bf16 dense


def _tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = {f"w{i}": i for i in range(vocab - 3)}
    words.update({"<pad>": vocab - 3, "<s>": vocab - 2, "</s>": vocab - 1})
    tok = Tokenizer(models.WordLevel(words, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def _examples(n: int, length: int, vocab: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {"text": " ".join(f"w{i}" for i in torch.randint(0, vocab - 3, (length,), generator=g).tolist())}
        for _ in range(n)
    ]


def run_mode(mode: str, size: str, steps: int, batch: int, length: int, workdir: Path) -> dict:
    hidden, layers, heads, inter, vocab = SIZES[size]
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=inter,
        max_position_embeddings=2 * length + 8,
    )
    tok = _tokenizer(vocab)
    torch.manual_seed(0)
    if mode == "qlora":
        path = workdir / f"{size}-bf16"
        if not path.is_dir():
            LlamaForCausalLM(cfg).to(dtype).save_pretrained(path)
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
        model = LlamaForCausalLM.from_pretrained(path, quantization_config=quant, dtype=dtype)
    else:
        model = LlamaForCausalLM(cfg).to(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    ucfg = UnlearnConfig(
        method="npo",
        max_steps=steps,
        batch_size=batch,
        learning_rate=1e-5,
        use_lora=mode != "full",
        lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        max_length=length + 1,
    )
    history: list[dict] = []
    t0 = time.perf_counter()
    unlearn_lm(model, tok, _examples(4 * batch, length, vocab, 0), None, ucfg, history=history)
    total_s = time.perf_counter() - t0
    rows = history[2:] or history
    tps = statistics.median(h["tokens"] / h["seconds"] for h in rows)
    n_dense = hidden * hidden * 4 * layers + 3 * hidden * inter * layers + 2 * vocab * hidden
    flops_per_token = (6 if mode == "full" else 4 + 2) * n_dense
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return {
        "mode": mode,
        "params": n_params,
        "device": name,
        "tokens_per_s": tps,
        "step_s": statistics.median(h["seconds"] for h in rows),
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "mfu": (flops_per_token * tps / (peak * 1e12)) if peak else None,
        "total_s": total_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1b", choices=list(SIZES))
    ap.add_argument("--modes", nargs="+", default=["full", "lora", "qlora"])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--out", default="runs/bench/gpu_check.json")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            print(f"[gpu_check] {mode}", flush=True)
            try:
                results.append(run_mode(mode, args.size, args.steps, args.batch, args.length, Path(tmp)))
            except Exception as e:  # one failing mode (e.g. no bitsandbytes kernel) must not hide the rest
                results.append({"mode": mode, "error": f"{type(e).__name__}: {e}"})
            print(json.dumps(results[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("\n| mode | params | tokens/s | step s | peak GB | MFU |\n|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['mode']} | error: {r['error'][:80]} | | | | |")
            continue
        gb = "—" if r["peak_mem_gb"] is None else f"{r['peak_mem_gb']:.1f}"
        mfu = "—" if r["mfu"] is None else f"{r['mfu']:.1%}"
        print(
            f"| {r['mode']} | {r['params'] / 1e9:.2f}B | {r['tokens_per_s']:.0f} | {r['step_s']:.3f} | {gb} | {mfu} |"
        )


if __name__ == "__main__":
    main()
