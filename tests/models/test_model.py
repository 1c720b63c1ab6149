from pathlib import Path

import pytest
import torch

from edgeweave.errors import ModelFileError
from edgeweave.models.checkpoint import load_checkpoint, save_checkpoint
from edgeweave.models.config import ModelConfig
from edgeweave.models.llama import Transformer

TINY = ModelConfig(vocab_size=97, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, max_seq_len=64)


def _tiny(cfg: ModelConfig = TINY, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(cfg).eval()
    for name, p in model.named_parameters():  # non-trivial norms and biases
        if name.endswith("layernorm.weight") or name.endswith("norm.weight") or name.endswith("bias"):
            torch.nn.init.normal_(p, mean=1.0 if "norm" in name else 0.0, std=0.2)
    return model


@pytest.mark.parametrize("cfg", [TINY, TINY.with_(arch="qwen2", qkv_bias=True), TINY.with_(tie_embeddings=True)])
def test_cached_decoding_matches_full_forward(cfg: ModelConfig) -> None:
    model = _tiny(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (1, 20))
    with torch.no_grad():
        full = model(tokens)
        model.setup_cache()
        chunks = [model(tokens[:, :12], torch.arange(12))]
        chunks += [model(tokens[:, i : i + 1], torch.tensor([i])) for i in range(12, 20)]
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=1e-5)


def test_gqa_shapes_and_parameter_count() -> None:
    model = _tiny()
    attn = model.model.layers[0].self_attn
    assert attn.k_proj.out_features == TINY.n_kv_heads * TINY.head_dim
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cfg", [TINY, TINY.with_(arch="qwen2", qkv_bias=True), TINY.with_(tie_embeddings=True)])
def test_checkpoint_round_trip_is_a_hugging_face_directory(tmp_path: Path, cfg: ModelConfig) -> None:
    import json

    model = _tiny(cfg)
    save_checkpoint(model, tmp_path, dtype=torch.float32)
    hf = json.loads((tmp_path / "config.json").read_text())
    assert hf["model_type"] == cfg.arch and hf["hidden_size"] == cfg.dim
    loaded = load_checkpoint(tmp_path)
    tokens = torch.randint(0, cfg.vocab_size, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), model(tokens))


def test_sharded_checkpoint_loads(tmp_path: Path) -> None:
    import json

    from safetensors.torch import save_file

    model = _tiny()
    save_checkpoint(model, tmp_path, dtype=torch.float32)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    names = sorted(state)
    half = len(names) // 2
    (tmp_path / "model.safetensors").unlink()
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(tmp_path / shard))
    index = {"weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    tokens = torch.randint(0, TINY.vocab_size, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(tmp_path)(tokens), model(tokens))


def test_bad_checkpoints_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="config.json is missing"):
        load_checkpoint(tmp_path)
    save_checkpoint(_tiny(), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="model.safetensors: corrupt safetensors"):
        load_checkpoint(tmp_path)
    save_checkpoint(_tiny(TINY.with_(n_layers=1)), tmp_path)
    cfg = (tmp_path / "config.json").read_text().replace('"num_hidden_layers": 1', '"num_hidden_layers": 2')
    (tmp_path / "config.json").write_text(cfg)
    with pytest.raises(ModelFileError, match="missing"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ModelFileError, match="unsupported model_type 'gpt2'"):
        load_checkpoint(tmp_path)


def test_committed_models_have_the_promised_sizes(device_checkpoint: Path, cloud_checkpoint: Path) -> None:
    device, cloud = load_checkpoint(device_checkpoint), load_checkpoint(cloud_checkpoint)
    assert 1_000_000 <= device.num_parameters() <= 3_000_000
    assert 5_000_000 <= cloud.num_parameters() <= 15_000_000
    total = sum(f.stat().st_size for d in (device_checkpoint, cloud_checkpoint) for f in d.iterdir())
    assert total < 25 * 2**20
