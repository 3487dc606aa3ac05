"""Architecture detection from a config alone, and the refusals a user sees."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import (AutoModelForCausalLM, AutoModelForSeq2SeqLM, BartConfig, BertConfig, BertForMaskedLM,
                          DistilBertConfig, GPT2Config, LlamaConfig, RobertaConfig, T5Config, ViTConfig)

from models import (Kind, ModelCache, ModelSource, UnsupportedModelError, architecture_of, detect, load_model,
                    wrong_class_refusal)

CONFIGS = {
    "t5": (T5Config, Kind.SEQ2SEQ, "AutoModelForSeq2SeqLM", "T5ForConditionalGeneration"),
    "bart": (BartConfig, Kind.SEQ2SEQ, "AutoModelForSeq2SeqLM", "BartForConditionalGeneration"),
    "gpt2": (GPT2Config, Kind.CAUSAL, "AutoModelForCausalLM", "GPT2LMHeadModel"),
    "llama": (LlamaConfig, Kind.CAUSAL, "AutoModelForCausalLM", "LlamaForCausalLM"),
}


@pytest.mark.parametrize("model_type", list(CONFIGS))
def test_detect_from_config(model_type):
    config_cls, kind, auto, resolved = CONFIGS[model_type]
    arch = detect(config_cls())
    assert arch.kind is kind
    assert arch.model_type == model_type
    assert arch.auto_class == auto == kind.auto_class_name
    assert arch.resolved_class == resolved


@pytest.mark.parametrize("model_type", list(CONFIGS))
def test_detect_keeps_declared_architectures(model_type):
    config_cls, kind, _, resolved = CONFIGS[model_type]
    arch = detect(config_cls(architectures=[resolved]))
    assert arch.kind is kind and arch.declared == (resolved,)


@pytest.mark.parametrize("name,model_type", [("tiny-t5", "t5"), ("tiny-bart", "bart"),
                                             ("tiny-gpt2", "gpt2"), ("tiny-llama", "llama")])
def test_architecture_of_reads_config_json_only(tiny_dir, tmp_path, name, model_type):
    """A folder with nothing but config.json is enough to know the class (no weights, no tokenizer)."""
    shutil.copy(tiny_dir / name / "config.json", tmp_path / "config.json")
    arch = architecture_of(ModelSource(name, str(tmp_path), "test", local=True))
    _, kind, auto, resolved = CONFIGS[model_type]
    assert (arch.kind, arch.auto_class, arch.resolved_class) == (kind, auto, resolved)
    assert arch.declared == (resolved,)


@pytest.mark.parametrize("config_cls,kind,other", [(T5Config, Kind.SEQ2SEQ, "AutoModelForCausalLM"),
                                                   (GPT2Config, Kind.CAUSAL, "AutoModelForSeq2SeqLM"),
                                                   (LlamaConfig, Kind.CAUSAL, "AutoModelForSeq2SeqLM")])
def test_wrong_class_refusal_is_transformers_own_message(config_cls, kind, other):
    config = config_cls()
    message = wrong_class_refusal(config, kind)
    assert message.startswith("Unrecognized configuration class")
    assert config_cls.__name__ in message and other in message
    assert "\n" not in message
    # the very words transformers uses when the wrong Auto class is really tried
    other_cls = AutoModelForCausalLM if other == "AutoModelForCausalLM" else AutoModelForSeq2SeqLM
    with pytest.raises(ValueError) as info, torch.device("meta"):
        other_cls.from_config(config)
    assert str(info.value).split("\n")[0] == message


def test_wrong_class_refusal_when_both_classes_accept():
    """BART also has a decoder-only head: the 'wrong' class loads but uses only part of the model."""
    message = wrong_class_refusal(BartConfig(), Kind.SEQ2SEQ)
    assert "accepts this config too" in message and "BartForCausalLM" in message


def test_encoder_only_bert_is_refused():
    with pytest.raises(UnsupportedModelError) as info:
        detect(BertConfig(architectures=["BertForMaskedLM"]))
    message = str(info.value)
    assert "encoder-only" in message and "'bert'" in message and "BertForMaskedLM" in message


@pytest.mark.parametrize("config", [
    RobertaConfig(architectures=["RobertaForMaskedLM"]),
    BertConfig(architectures=["BertForSequenceClassification"]),
    BertConfig(architectures=["BertModel"]),
    DistilBertConfig(architectures=["DistilBertForMaskedLM"]),
    DistilBertConfig(),
], ids=["roberta-mlm", "bert-classifier", "bert-base-model", "distilbert-mlm", "distilbert-undeclared"])
def test_other_encoder_only_models_refused(config):
    with pytest.raises(UnsupportedModelError, match="encoder-only"):
        detect(config)


def test_bert_declared_as_decoder_is_causal():
    arch = detect(BertConfig(architectures=["BertLMHeadModel"], is_decoder=True))
    assert arch.kind is Kind.CAUSAL and arch.resolved_class == "BertLMHeadModel"


def test_non_language_model_refused():
    with pytest.raises(UnsupportedModelError, match="neither a seq2seq"):
        detect(ViTConfig(architectures=["ViTForImageClassification"]))


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A saved (random, tiny) BERT masked-LM checkpoint."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


def test_loading_saved_bert_raises_unsupported_not_traceback(tiny_bert_dir):
    source = ModelSource("tiny-bert", str(tiny_bert_dir), "test", local=True)
    with pytest.raises(UnsupportedModelError, match="encoder-only"):
        load_model(source)
    with pytest.raises(UnsupportedModelError, match="encoder-only"):
        architecture_of(source)


def test_cache_refuses_bert_without_caching_anything(tiny_bert_dir):
    cache = ModelCache(max_models=2)
    source = ModelSource("tiny-bert", str(tiny_bert_dir), "test", local=True)
    for _ in range(2):  # the second request is refused the same way (no stuck lock, no half entry)
        with pytest.raises(UnsupportedModelError):
            cache.get(source)
    assert len(cache) == 0 and cache.loads == 0
