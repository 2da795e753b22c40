#!/usr/bin/env python3
"""Hugging Face transformers beside the CUDA backend (run by scripts/cuda-device-check.sh).

1. Logits: Qwen2ForCausalLM (float32, on the GPU) on the fixtures' reference prompts, compared
   with the logits our CUDA test dumped (QB_CUDA_LOGITS_DUMP) and with the shipped reference.
   GPTQ/AWQ fixtures: if transformers cannot load them natively (it needs extra packages), the
   int4 weights are dequantized here, independently of our C++ loader, into a plain Qwen2.
2. Throughput: generate() of a random-init Qwen2.5-7B-shape model (bf16, built on the GPU, no
   download) at batch 1, 8 and 32 with a 512-token prompt: decode tok/s from the time of 65 new
   tokens minus the time of 1.
"""
import argparse
import glob
import json
import os
import sys
import time

import torch

FIXTURES = {  # our test's case name -> (fixture dir, reference dir inside it)
    "micro_bf16": ("micro-qwen2", "reference/f32"),
    "micro_gptq": ("micro-qwen2-gptq", "reference"),
    "micro_gptq_descact": ("micro-qwen2-gptq-descact", "reference"),
    "micro_awq": ("micro-qwen2-awq", "reference"),
}
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # column 8c + AWQ_ORDER[i] is nibble i


def rel(a, b):
    return float((a - b).norm() / b.norm())


def unpack_rows(words):
    """int32 [r, c] -> 4-bit values [r, c, 8], nibble i at [..., i]."""
    shifts = torch.arange(0, 32, 4, device=words.device, dtype=torch.int32)
    return (words.unsqueeze(-1) >> shifts) & 15


def dequantize(sd, q):
    """GPTQ / AWQ tensors of a state dict -> float32 .weight [out, in]."""
    method, gs = q["quant_method"], q["group_size"]
    inverse = [AWQ_ORDER.index(j) for j in range(8)]
    for prefix in sorted(k[: -len(".qweight")] for k in list(sd) if k.endswith(".qweight")):
        qweight, qzeros = sd.pop(prefix + ".qweight"), sd.pop(prefix + ".qzeros")
        scales = sd.pop(prefix + ".scales").float()
        g_idx = sd.pop(prefix + ".g_idx", None)
        groups, out = scales.shape
        if method == "gptq":
            codes = unpack_rows(qweight.T.contiguous()).reshape(out, -1).T  # [in, out]
            zeros = unpack_rows(qzeros).reshape(groups, out)
            if q.get("checkpoint_format", "gptq") != "gptq_v2":
                zeros = torch.clamp(zeros + 1, max=15)
        else:
            codes = unpack_rows(qweight)[..., inverse].reshape(qweight.shape[0], out)
            zeros = unpack_rows(qzeros)[..., inverse].reshape(groups, out)
            g_idx = None
        n_in = codes.shape[0]
        if g_idx is None:
            g_idx = torch.arange(n_in) // (gs if gs != -1 else n_in)
        g_idx = g_idx.long()
        w = scales[g_idx] * (codes.float() - zeros[g_idx].float())  # [in, out]
        sd[prefix + ".weight"] = w.T.contiguous()
    return sd


def load_model(path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    try:
        try:
            m = Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32)
        except TypeError:  # transformers before 4.56 calls it torch_dtype
            m = Qwen2ForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
        return m.to("cuda").eval(), "transformers"
    except Exception as e:  # quantized checkpoints need optimum/gptqmodel/autoawq
        cfg = json.load(open(os.path.join(path, "config.json")))
        q = cfg.pop("quantization_config", None)
        if q is None:
            raise
        print(f"  transformers cannot load {os.path.basename(path)} natively ({type(e).__name__}: "
              f"{str(e).splitlines()[0][:120]}); dequantizing its int4 weights here")
        from safetensors.torch import load_file

        sd = dequantize(load_file(os.path.join(path, "model.safetensors")), q)
        for k in ("torch_dtype", "dtype", "model_type", "transformers_version"):
            cfg.pop(k, None)
        model = Qwen2ForCausalLM(Qwen2Config(**cfg)).float()
        sd = {k: v.float() for k, v in sd.items()}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if "rotary" not in k]
        if missing or unexpected:
            raise RuntimeError(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model.to("cuda").eval(), "dequantized here"


def check_logits(data, dump_dir, results):
    for case, (fixture, ref_dir) in FIXTURES.items():
        path = os.path.join(data, fixture)
        try:
            model, how = load_model(path)
        except Exception as e:
            print(f"SKIP logits {case}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        for ref_path in sorted(glob.glob(os.path.join(path, ref_dir, "*.json"))):
            ref = json.load(open(ref_path))
            ids = torch.tensor([ref["token_ids"]], device="cuda")
            with torch.no_grad():
                hf = model(ids).logits[0, -1].float().cpu()
            expected = torch.tensor(ref["last_logits_full"])
            line = f"logits {case} {ref['name']}: transformers ({how}) vs reference {rel(hf, expected):.2e}"
            entry = {"hf_vs_reference": rel(hf, expected)}
            for variant in ("auto", "gemv"):
                f = os.path.join(dump_dir, f"{case}_{variant}_{ref['name']}.json")
                if os.path.exists(f):
                    ours = torch.tensor(json.load(open(f))["logits"])
                    entry[f"ours_{variant}_vs_hf"] = rel(ours, hf)
                    line += f"; ours ({variant}) vs transformers {rel(ours, hf):.2e}"
                    entry[f"argmax_{variant}_equal"] = bool(ours.argmax() == hf.argmax())
            print(line)
            results.setdefault("logits", {})[f"{case}/{ref['name']}"] = entry
        del model
        torch.cuda.empty_cache()


def bench_generate(results, new_tokens, prompt):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                      num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                      rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False)
    t0 = time.time()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model.eval()
    print(f"  random 7B-shape model built in {time.time() - t0:.1f} s "
          f"({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, {model.dtype})")

    def run(batch, n):
        ids = torch.randint(0, 150000, (batch, prompt), device="cuda")
        torch.cuda.synchronize()
        t = time.time()
        with torch.no_grad():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=0, eos_token_id=None)
        torch.cuda.synchronize()
        return time.time() - t

    for batch in (1, 8, 32):
        run(batch, 2)  # warm-up
        t1, tn = run(batch, 1), run(batch, new_tokens + 1)
        tps = batch * new_tokens / max(tn - t1, 1e-9)
        print(f"hf generate b={batch}: {tps:.1f} tok/s decode ({(tn - t1) / new_tokens * 1e3:.1f} ms/step; "
              f"prefill of {prompt} tokens x {batch}: {t1:.2f} s)")
        results.setdefault("hf_generate", {})[f"b={batch}"] = {"decode_tok_s": tps, "prefill_s": t1}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--logits", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--skip-generate", action="store_true")
    a = ap.parse_args()
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name(0)}")
    results = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        check_logits(a.data, a.logits, results)
    except Exception as e:
        print(f"SKIP logits: {type(e).__name__}: {e}")
    if not a.skip_generate:
        try:
            bench_generate(results, a.new_tokens, a.prompt)
        except Exception as e:
            print(f"SKIP hf generate: {type(e).__name__}: {e}")
    json.dump(results, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    sys.exit(main())
