"""A diffusers AudioLDM pipeline from a local directory through SoundWeaver's cache: a tiny randomly
initialised pipeline (every part of the real one: CLAP text encoder, a RoBERTa tokenizer trained here,
UNet, VAE, HiFi-GAN vocoder) is saved, loaded by path, and serves a miss and then a warm start."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cloud.soundweaver.policy import SoundJob, SoundWeaver
from cloud.soundweaver.runtime import SoundRuntime
from edgeweave.audio.judges import Clap, Judges, SoundClassifier
from edgeweave.models.audioldm import AudioLdmSound
from edgeweave.models.sound import load_sound_model

WORDS = "a soft gentle two note chime for the front door bell rain wind loud alarm beep knock fan".split()


def tiny_pipeline(directory: Path) -> None:
    from diffusers import AudioLDMPipeline, AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        ClapTextConfig,
        ClapTextModelWithProjection,
        RobertaTokenizer,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=None, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(8, 16), class_embed_type="simple_projection", projection_class_embeddings_input_dim=16,
        class_embeddings_concat=True, norm_num_groups=4, attention_head_dim=4,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=[8, 16], in_channels=1, out_channels=1, latent_channels=4, norm_num_groups=4,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )  # fmt: skip
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([" ".join(WORDS)] * 4, vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    bpe.save_model(str(directory.parent))
    tokenizer = RobertaTokenizer(
        str(directory.parent / "vocab.json"), str(directory.parent / "merges.txt"), model_max_length=16
    )
    text = ClapTextModelWithProjection(
        ClapTextConfig(
            bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16, intermediate_size=32, num_attention_heads=2,
            num_hidden_layers=2, vocab_size=len(tokenizer), projection_dim=16, max_position_embeddings=40,
        )
    )  # fmt: skip
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[4, 4],
            upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
            normalize_before=False,
        )
    )  # fmt: skip
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)
    pipe = AudioLDMPipeline(
        vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler, vocoder=vocoder
    )
    pipe.save_pretrained(str(directory))


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audioldm") / "tiny-audioldm"
    tiny_pipeline(directory)
    return directory


def test_an_audioldm_directory_serves_a_miss_then_a_warm_start(pipeline_dir: Path) -> None:
    model = load_sound_model(pipeline_dir)
    assert isinstance(model, AudioLdmSound) and model.name == "tiny-audioldm"
    judges = Judges(SoundClassifier(), Clap())
    rt = SoundRuntime(model, judges, SoundWeaver(), clock=lambda: 0.0)
    emb = model.embed(["a soft two note chime", "a gentle two note chime"])
    first = rt.serve(SoundJob("a soft two note chime", emb[0], 1.0, 6, 1))
    assert not first.hit and first.steps_run == 6
    assert first.audio.shape == (16_000,)  # the vocoder's 16 kHz, cropped to the request
    second = rt.serve(SoundJob("a gentle two note chime", emb[1], 1.5, 6, 2))
    assert second.hit and second.steps_run < 6 and second.audio.shape == (24_000,)


def test_rows_are_the_latent_with_time_last_and_round_trip(pipeline_dir: Path) -> None:
    model = load_sound_model(pipeline_dir)
    latent = torch.randn(model.latent_shape(1.0))
    assert latent.shape == (1, 4, 500, 4)  # 16 samples per mel frame, the VAE halves both axes
    rows = model.to_rows(latent)
    assert rows.shape == (4 * 4, 500)  # channels x bins, frames
    assert torch.equal(model.from_rows(rows), latent)
