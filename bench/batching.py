"""How much batched decoding could give the embedded model (issue: many people at once).

Today one reply holds the model for its whole length, so N concurrent replies take N times
as long. llama.cpp can decode several sequences in one batch (one KV-cache sequence each);
on a CPU, a small model is bound by memory bandwidth, so a step for N sequences should cost
far less than N steps. This measures it directly with llama.cpp's batch API, as
llama-cpp-python exposes it: the same prompt in 1, 2, 4 and 8 sequences, greedy, 48 tokens
each, prompts prefilled together, then one token per sequence per step.

    python bench/batching.py

Prints the aggregate tokens/s at each width (with and without the prefill) and its ratio to
one sequence, and whether every sequence produced the same tokens as the single one (greedy,
same prompt).

First measured on a 2-core machine (llama-cpp-python 0.3.36): decoding alone 98-100 tokens/s
for one sequence, 1.00x for 2, 1.00-1.06x for 4, 1.27-1.30x for 8; and sequences in one
batch drift apart from the lone one after 12 to 18 tokens (the same prompt, greedy: the
kernels sum in another order for a batch, and a 4-bit 135M model has near-ties). So on this
CPU a batch of N costs nearly N single steps, and batched text is not the lone text.
"""

from __future__ import annotations

import time

import numpy as np

from avatarium.providers.llm.local_engine import bundled_model_path, chatml

TOKENS = 48
PROMPT = chatml(
    [
        ("system", "You are Aria, a friendly assistant. Answer in two or three sentences."),
        ("user", "Tell me about the moon in three sentences."),
    ]
)


def main() -> None:
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=str(bundled_model_path()), n_ctx=512, n_threads=2, verbose=False)
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    vocab = llm.n_vocab()
    widths = (1, 2, 4, 8)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = 1024 * max(widths)
    params.n_batch = 1024
    params.n_ubatch = 512
    params.n_seq_max = max(widths)
    params.n_threads = params.n_threads_batch = 2
    params.kv_unified = True
    ctx = llama_cpp.llama_init_from_model(llm.model, params)
    memory = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(1024, 0, max(widths))
    reference: list[int] | None = None
    single = single_decoding = 0.0
    print(f"llama.cpp batched decode, SmolLM2-135M, 2 threads, {TOKENS} tokens a sequence")
    try:
        for width in widths:
            llama_cpp.llama_memory_clear(memory, True)
            started = time.perf_counter()
            # Prefill every sequence's prompt in one batch; logits for each prompt's last.
            batch.n_tokens = 0
            for seq in range(width):
                for pos, token in enumerate(prompt):
                    i = batch.n_tokens
                    batch.token[i] = token
                    batch.pos[i] = pos
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = seq
                    batch.logits[i] = pos == len(prompt) - 1
                    batch.n_tokens += 1
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("prefill failed")
            rows = [len(prompt) * (seq + 1) - 1 for seq in range(width)]
            outputs: list[list[int]] = [[] for _ in range(width)]
            prefilled = time.perf_counter()
            for step in range(TOKENS):
                batch.n_tokens = 0
                for seq in range(width):
                    logits = np.ctypeslib.as_array(
                        llama_cpp.llama_get_logits_ith(ctx, rows[seq]), shape=(vocab,)
                    )
                    token = int(np.argmax(logits))
                    outputs[seq].append(token)
                    i = batch.n_tokens
                    batch.token[i] = token
                    batch.pos[i] = len(prompt) + step
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = seq
                    batch.logits[i] = True
                    rows[seq] = i
                    batch.n_tokens += 1
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    raise RuntimeError("decode failed")
            elapsed = time.perf_counter() - started
            rate = width * TOKENS / elapsed
            if width == 1:
                reference, single = outputs[0], rate
            decoding = width * TOKENS / (time.perf_counter() - prefilled)
            if width == 1:
                single_decoding = decoding
            same = all(out == reference for out in outputs)
            agree = all(out == outputs[0] for out in outputs)
            print(
                f"  {width} sequence(s): prefill {1000 * (prefilled - started):5.0f} ms; "
                f"{rate:4.0f} tokens/s with it ({rate / single:.2f}x one), "
                f"{decoding:4.0f} decoding ({decoding / single_decoding:.2f}x); "
                f"sequences agree: {agree}, as alone: {same}"
            )
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)


if __name__ == "__main__":
    main()
