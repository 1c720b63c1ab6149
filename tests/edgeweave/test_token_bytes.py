"""``Tokenizer.token_bytes``: the bytes each token contributes, what logprobs report.

A Hugging Face byte-level BPE ``tokenizer.json`` (Llama 3's / Qwen2's kind, trained here): the pieces' bytes
join to the text's UTF-8 even where a token holds part of a character; specials and the embedding's padding
past the tokenizer contribute none, as in ``decode``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeweave.models.hf_tokenizer import HFTokenizer
from edgeweave.models.tokenizer import ByteTokenizer

TEXTS = ["lock the front door", "héllo wörld ✓", "emoji 🙂 and 中文", "  tabs\tand\nnewlines  "]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
PADDING = 7


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory) -> HFTokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory = tmp_path_factory.mktemp("byte-bpe")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXTS * 10, trainer)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    return HFTokenizer.from_dir(Path(directory), tok.get_vocab_size() + PADDING)


@pytest.mark.parametrize("text", TEXTS)
def test_hf_byte_level_token_bytes_join_to_the_text(hf: HFTokenizer, text: str) -> None:
    ids = hf.encode(text)
    pieces = [hf.token_bytes(i) for i in ids]
    assert b"".join(pieces) == text.encode()
    for i, piece in zip(ids, pieces, strict=True):
        try:
            assert hf.decode([i]) == piece.decode()
        except UnicodeDecodeError:
            pass  # part of a character: decoding the token alone gives U+FFFD


def test_hf_specials_and_padding_contribute_no_bytes(hf: HFTokenizer) -> None:
    special_ids = [hf._tok.token_to_id(s) for s in SPECIALS]  # the template-side tokenizer's ids
    assert [hf.token_bytes(i) for i in special_ids] == [b""] * len(SPECIALS)
    # user text spelling a special token is text, never the token (prompts cannot forge turn markers)
    typed = hf.encode(SPECIALS[0])
    assert not set(typed) & set(special_ids) and b"".join(map(hf.token_bytes, typed)) == SPECIALS[0].encode()
    assert hf.token_bytes(hf.vocab_size - 1) == b""


def test_byte_tokenizer_token_bytes() -> None:
    tok = ByteTokenizer()
    assert b"".join(tok.token_bytes(i) for i in tok.encode("✓ ok", add_bos=True)) == "✓ ok".encode()
    assert tok.token_bytes(tok.END) == b""
