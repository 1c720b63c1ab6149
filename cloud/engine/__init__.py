"""The cloud LLM engine: iteration-level continuous batching over a paged KV
cache with prefix caching, chunked prefill and preemption; attention by
PackInfer's packed kernel on a GPU (torch SDPA on CPU)."""
