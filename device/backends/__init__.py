"""Device inference runtimes, one module each, implementing :class:`edgeweave.generation.backend.Backend`:
``torch_backend`` (the model definition itself), ``llamacpp_backend`` (GGUF through llama.cpp) and
``executorch_backend`` (a .pte program through ExecuTorch).  Each module's ``load`` is registered
as an ``edgeweave.backends`` entry point; :func:`edgeweave.generation.backends.load_backend` finds
them by name."""
