"""The Llama-architecture model family: config, torch model, tokenizer, checkpoints,
training and evaluation of the weave-home models."""
