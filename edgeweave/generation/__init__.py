"""Generation: the ``Backend`` interface every runtime implements (torch, llama.cpp, ExecuTorch on
devices; the engine's sampler in the cloud), the shared sampler and stop conditions, chat helpers,
the held-out evaluation, and ``load_backend``, which finds a runtime by name through the
``edgeweave.backends`` entry points (the core names no side)."""
