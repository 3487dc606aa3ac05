"""Tiny, untrained models built from configs, for tests, benchmarks and offline demos.

They run the real code paths (tokenizers, Auto classes, generate, streaming, 8-bit)
in milliseconds, but their weights are random: their text is gibberish. Anything
that shows them to a person must say so.

Example:
    >>> path = build_tiny("t5", "/tmp/tiny-t5")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (BartConfig, BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration)

from .sources import UNTRAINED_MARKER

ARCHITECTURES = ("t5", "bart", "gpt2", "llama")
UNTRAINED_NOTE = "untrained demo model: random weights, produces random text"

_WORDS = ("the a an one two small large red blue green quick slow happy sad cat dog bird fish tree river mountain city "
          "house road book story song model answer question language text word sentence summary translate summarize "
          "explain continue follow instruction capital france paris germany berlin water fire earth wind light night "
          "day morning evening walks runs jumps reads writes sings sees finds makes takes gives thinks knows says "
          "is was are were has had will would can could and or but because so then when where why how what who").split()

LLAMA_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Simple English-like sentences for training the tokenizers."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice([".", "?", "!", ","]))
    return lines


def _sentencepiece_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A T5-style Unigram tokenizer with the ``▁`` word marker and a closing ``</s>``."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512)


def _bytelevel_tokenizer(vocab_size: int, specials: list[str], template: str | None,
                         eos: str, bos: str | None = None, pad: str | None = None) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    if template:
        names = [t for t in specials if t in template]
        tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=[(t, tok.token_to_id(t)) for t in names])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    kwargs = {"eos_token": eos, "unk_token": None, "model_max_length": 1024}
    if bos:
        kwargs["bos_token"] = bos
    if pad:
        kwargs["pad_token"] = pad
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def build_tiny(arch: str, folder: str | Path, *, seed: int = 0, never_stop: bool = False, vocab_size: int = 1000) -> Path:
    """Build and save a tiny random model of ``arch`` (t5, bart, gpt2, llama) with its tokenizer.

    Args:
        arch: one of :data:`ARCHITECTURES`.
        folder: where to save (created).
        seed: weight seed (same seed, same model).
        never_stop: suppress the end-of-sequence token so generation always runs to
            ``max_new_tokens`` (long, predictable streams for tests).
        vocab_size: tokenizer vocabulary size.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if arch == "t5":
        tokenizer = _sentencepiece_tokenizer(vocab_size)
        config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                          num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, relative_attention_num_buckets=8)
        model = T5ForConditionalGeneration(config)
    elif arch == "bart":
        tokenizer = _bytelevel_tokenizer(vocab_size, ["<s>", "<pad>", "</s>", "<unk>"], "<s> $A </s>", "</s>", "<s>", "<pad>")
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>")}
        config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=256,
                            bos_token_id=ids["<s>"], pad_token_id=ids["<pad>"], eos_token_id=ids["</s>"],
                            decoder_start_token_id=ids["</s>"], forced_bos_token_id=None, forced_eos_token_id=None)
        model = BartForConditionalGeneration(config)
    elif arch == "gpt2":
        tokenizer = _bytelevel_tokenizer(vocab_size, ["<|endoftext|>"], None, "<|endoftext|>", "<|endoftext|>")
        eos = tokenizer.eos_token_id
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=256, bos_token_id=eos, eos_token_id=eos)
        model = GPT2LMHeadModel(config)
    elif arch == "llama":
        tokenizer = _bytelevel_tokenizer(vocab_size, ["<s>", "</s>", "<|im_start|>", "<|im_end|>"], "<s> $A", "<|im_end|>", "<s>", "</s>")
        tokenizer.chat_template = LLAMA_CHAT_TEMPLATE
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<s>", "</s>", "<|im_end|>")}
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=256, bos_token_id=ids["<s>"], eos_token_id=ids["<|im_end|>"],
                             pad_token_id=ids["</s>"], tie_word_embeddings=False)
        model = LlamaForCausalLM(config)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; expected one of {ARCHITECTURES}")
    with torch.no_grad():  # default init collapses to one repeated token; larger weights give varied words
        for param in model.parameters():
            param.mul_(6.0)
    model.generation_config.num_beams = 1
    # Let the model emit whole words only (tokens starting with the word marker), so its
    # random text has spaces and streams in visible steps like a real model's.
    marker = "▁" if arch == "t5" else "Ġ"
    words = {i for t, i in tokenizer.get_vocab().items() if t.startswith(marker) and len(t) > 2 and t[1:].isalpha()}
    keep = set() if never_stop else {config.eos_token_id}
    model.generation_config.suppress_tokens = sorted(set(range(config.vocab_size)) - words - keep)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / UNTRAINED_MARKER).write_text(json.dumps({"note": UNTRAINED_NOTE, "arch": arch, "seed": seed}))
    return folder
