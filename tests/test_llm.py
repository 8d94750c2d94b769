"""FireRedASR-LLM against the reference package on the same weights, plus batching, LoRA, quantization, sharding."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, BitsAndBytesConfig, pipeline

import transformers_fireredasr  # noqa: F401 - registers the Auto classes
from transformers_fireredasr import FireRedLlmForSpeechSeq2Seq, FireRedLlmProcessor

GREEDY = dict(beam_size=1, repetition_penalty=1.0)
PUBLISHED = dict(beam_size=3, repetition_penalty=3.0)
COMMON = dict(decode_max_len=0, decode_min_len=0, llm_length_penalty=1.0, temperature=1.0)


def load(folder, **kwargs):
    return FireRedLlmForSpeechSeq2Seq.from_pretrained(folder, **kwargs).eval(), FireRedLlmProcessor.from_pretrained(
        folder
    )


def ids_of(row: torch.Tensor, pad: int) -> list[int]:
    ids = row.tolist()
    while ids and ids[-1] == pad:
        ids.pop()
    return ids


@pytest.fixture(scope="module")
def merged(converted_llm_dir):
    return load(converted_llm_dir)


@torch.no_grad()
def generate(model, processor, utterances, **kwargs):
    inputs = processor([u.audio for u in utterances], sampling_rate=16000)
    return model.generate(**inputs, **kwargs)


@pytest.mark.parametrize("decoding", ["greedy", "published"])
def test_generated_ids_match_reference(merged, reference_llm, speech, decoding):
    """Batch size 1: token ids and text identical to FireRedAsrLlm.transcribe, greedy and beam 3 + penalty 3.0."""
    model, processor = merged
    pad = model.generation_config.pad_token_id
    settings = GREEDY if decoding == "greedy" else PUBLISHED
    kwargs = {"num_beams": 1, "repetition_penalty": 1.0} if decoding == "greedy" else {}
    outputs = []
    for utterance in speech[::3]:
        expected_ids, expected_text = reference_llm.transcribe(utterance.path, **settings, **COMMON)
        sequences = generate(model, processor, [utterance], **kwargs)
        assert ids_of(sequences[0], pad) == expected_ids
        assert processor.batch_decode(sequences, skip_special_tokens=True)[0] == expected_text
        outputs.append(expected_text)
    assert all(outputs) and len(set(outputs)) == len(outputs)  # the oracle's outputs depend on the audio


def test_generation_config_holds_published_settings(merged):
    config = merged[0].generation_config
    assert (config.num_beams, config.repetition_penalty, config.length_penalty) == (3, 3.0, 1.0)
    # A ceiling above any utterance's own limit, so the ASR pipeline's 256-token default is not used.
    assert config.max_new_tokens == 4096


@pytest.mark.parametrize("kwargs", [{"num_beams": 1, "repetition_penalty": 1.0}, {}], ids=["greedy", "published"])
def test_batched_equals_one_by_one(merged, speech, kwargs):
    """Mixed lengths: padded frames are never attended and each utterance keeps its own length limit."""
    model, processor = merged
    pad = model.generation_config.pad_token_id
    batch = [speech[0], speech[3], speech[-1], speech[8]]
    batched = generate(model, processor, batch, **kwargs)
    for row, utterance in zip(batched, batch, strict=True):
        assert ids_of(row, pad) == ids_of(generate(model, processor, [utterance], **kwargs)[0], pad)


def test_static_cache_gives_the_same_ids(merged, speech, monkeypatch):
    """`cache_implementation="static"` reaches the language model's generate (transformers' static cache, compiled
    on a GPU by its auto-compile rule) and changes nothing in the output."""
    from transformers.cache_utils import StaticLayer

    model, processor = merged
    batch = [speech[0], speech[3], speech[-1]]
    dynamic = generate(model, processor, batch)
    updates = []
    update = StaticLayer.update
    monkeypatch.setattr(StaticLayer, "update", lambda self, *a, **k: updates.append(1) or update(self, *a, **k))
    static = generate(model, processor, batch, cache_implementation="static")
    assert updates, "no static cache was used"
    assert torch.equal(dynamic, static)


def test_prompt_matches_the_original_template(merged, reference_llm, speech):
    """The processor's prompt is the reference's chat prompt with `<speech>` repeated once per speech vector."""
    model, processor = merged
    inputs = processor(speech[0].audio, sampling_rate=16000)
    reference_ids, _, _, _ = reference_llm.wrapper.preprocess_texts(
        origin_texts=[""], tokenizer=reference_llm.tokenizer, max_len=128, decode=True
    )
    speech_id = model.config.speech_token_id
    ours = inputs["input_ids"][0].tolist()
    count = ours.count(speech_id)
    expanded = []
    for token in reference_ids[0].tolist():
        expanded.extend([speech_id] * count if token == speech_id else [token])
    assert ours == expanded
    built, _ = model.build_prompt(torch.tensor([count]))
    assert built[0].tolist() == ours


def test_merged_and_keep_lora_logits_match(merged, converted_llm_lora_dir, speech):
    """The merged conversion and the base + peft adapter conversion compute the same logits (float32, 1e-4)."""
    model, processor = merged
    lora_model, _ = load(converted_llm_lora_dir)
    assert lora_model.config.lora_adapter_subfolder == "lora_adapter"
    assert any("lora_A" in name for name, _ in lora_model.named_parameters())
    inputs = processor([speech[1].audio, speech[6].audio], sampling_rate=16000, text=["今天天气很好", "请把门关上"])
    with torch.no_grad():
        expected = model(**inputs).logits
        actual = lora_model(**inputs).logits
    assert (expected - actual).abs().max().item() < 1e-4
    assert generate(lora_model, processor, [speech[1]]).tolist() == generate(model, processor, [speech[1]]).tolist()


def test_labels_cover_the_transcript_only(merged, speech):
    model, processor = merged
    inputs = processor(speech[0].audio, sampling_rate=16000, text="今天，天气很好。")
    labels = inputs["labels"][0]
    target = processor.tokenizer.encode("今天天气很好<|im_end|>", add_special_tokens=False)
    assert labels[labels != -100].tolist() == target
    assert inputs["input_ids"][0, -len(target) :].tolist() == target
    loss = model(**inputs).loss
    assert torch.isfinite(loss) and loss.item() > 0


def test_pipeline_returns_the_transcript_only(converted_llm_dir, merged, speech):
    model, processor = merged
    asr = pipeline("automatic-speech-recognition", model=str(converted_llm_dir), device="cpu")
    batch = [speech[0], speech[5], speech[-1]]
    outputs = asr([u.audio for u in batch], batch_size=3)
    expected = [processor.batch_decode(generate(model, processor, [u]), skip_special_tokens=True)[0] for u in batch]
    assert [o["text"] for o in outputs] == expected
    assert all(set(o) == {"text"} for o in outputs)
    assert all("请转写" not in o["text"] and "assistant" not in o["text"] for o in outputs)


def test_auto_classes(converted_llm_dir):
    assert isinstance(AutoModelForSpeechSeq2Seq.from_pretrained(converted_llm_dir), FireRedLlmForSpeechSeq2Seq)
    assert isinstance(AutoProcessor.from_pretrained(converted_llm_dir), FireRedLlmProcessor)


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_loading_transcribes(converted_llm_dir, merged, speech, bits):
    """bitsandbytes 4/8-bit on the LLM; the encoder and adapter stay unquantized."""
    pytest.importorskip("bitsandbytes")
    quantization = BitsAndBytesConfig(load_in_4bit=True) if bits == 4 else BitsAndBytesConfig(load_in_8bit=True)
    model, processor = load(converted_llm_dir, quantization_config=quantization, device_map="cpu")
    layer = model.language_model.model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == ("Linear4bit" if bits == 4 else "Linear8bitLt")
    assert type(model.projector.linear1) is torch.nn.Linear
    assert type(model.encoder.layers[0].self_attn.q_proj) is torch.nn.Linear
    sequences = generate(model, processor, [speech[0]], num_beams=1, repetition_penalty=1.0)
    assert sequences.shape[1] > 0
    assert processor.batch_decode(sequences, skip_special_tokens=True)[0]


def test_device_map_auto_with_offload_matches_plain_load(converted_llm_dir, merged, speech, tmp_path):
    model, processor = merged
    sharded, _ = load(
        converted_llm_dir, device_map="auto", max_memory={"cpu": "12MiB"}, offload_folder=str(tmp_path / "offload")
    )
    assert "disk" in set(sharded.hf_device_map.values())
    expected = generate(model, processor, [speech[2]], num_beams=1, repetition_penalty=1.0)
    actual = generate(sharded, processor, [speech[2]], num_beams=1, repetition_penalty=1.0)
    assert actual.tolist() == expected.tolist()


def test_generate_rejects_bad_features(merged):
    model, _ = merged
    with pytest.raises(ValueError, match="shape"):
        model.generate(input_features=torch.zeros(50, 80))
    with pytest.raises(ValueError, match="NaN"):
        model.generate(input_features=torch.full((1, 50, 80), float("nan")))
    with pytest.raises(ValueError, match="placeholder"):
        model.generate(input_ids=torch.tensor([[1, 2, 3]]), input_features=torch.zeros(1, 50, 80))


def test_conversion_streams_into_shards_and_prefers_model_pth_encoder(llm_dir, converted_llm_dir):
    """Bounded shards with an index; the encoder in model.pth.tar wins over asr_encoder.pth.tar; LoRA is merged."""
    import json

    from safetensors import safe_open

    from transformers_fireredasr.conversion.checkpoint import load_original_package

    index = json.loads((converted_llm_dir / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1
    for shard in shards:  # the fixture's cap is 8 MiB; only a single larger tensor may exceed it
        names = [name for name, file in index["weight_map"].items() if file == shard]
        assert len(names) == 1 or (converted_llm_dir / shard).stat().st_size <= 8 * 1024**2 + 64 * 1024

    _, package = load_original_package(llm_dir / "model.pth.tar")
    _, asr_encoder = load_original_package(llm_dir / "asr_encoder.pth.tar")
    key = "encoder.layer_stack.0.mhsa.layer_norm_q.weight"
    assert not torch.equal(package[key], asr_encoder[key])  # the fixture made them differ
    name = "encoder.layers.0.self_attn.q_norm.weight"
    with safe_open(str(converted_llm_dir / index["weight_map"][name]), framework="pt") as shard:
        assert torch.equal(shard.get_tensor(name), package[key])

    base_name = "model.layers.0.self_attn.q_proj.weight"
    with safe_open(str(llm_dir / "Qwen2-7B-Instruct" / "model.safetensors"), framework="pt") as shard:
        base = shard.get_tensor(base_name)
    lora_a = package["llm.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"]
    lora_b = package["llm.base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"]
    name = "language_model." + base_name
    with safe_open(str(converted_llm_dir / index["weight_map"][name]), framework="pt") as shard:
        merged_weight = shard.get_tensor(name)
    assert torch.allclose(merged_weight, base + (16 / lora_a.shape[0]) * lora_b @ lora_a, atol=1e-6)


def test_conversion_cli_and_errors(llm_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from transformers_fireredasr.conversion.llm import convert_llm

    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "conversion/convert_fireredasr_llm.py", "--input_dir", str(llm_dir), "--output_dir",
         str(tmp_path / "out"), "--keep_lora", "--dtype", "bfloat16"],
        cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "lora_adapter" / "adapter_config.json").is_file()
    model = FireRedLlmForSpeechSeq2Seq.from_pretrained(tmp_path / "out")
    assert model.language_model.model.layers[0].mlp.down_proj.base_layer.weight.dtype == torch.bfloat16
    with pytest.raises(FileNotFoundError, match="asr_encoder.pth.tar"):
        broken = tmp_path / "broken"
        broken.mkdir()
        for name in ("model.pth.tar", "cmvn.ark"):
            (broken / name).symlink_to(llm_dir / name)
        convert_llm(broken, tmp_path / "never")


def test_half_precision_loading(converted_llm_dir, speech):
    """bf16 loads everything in bf16; fp16 keeps the encoder and adapter in fp32 (`_keep_in_fp32_modules`)."""
    for dtype, encoder_dtype in ((torch.bfloat16, torch.bfloat16), (torch.float16, torch.float32)):
        model, processor = load(converted_llm_dir, dtype=dtype)
        assert model.language_model.lm_head.weight.dtype == dtype
        assert model.encoder.subsampling.out.weight.dtype == encoder_dtype
        assert model.projector.linear1.weight.dtype == encoder_dtype
        sequences = generate(model, processor, [speech[0]], num_beams=1, repetition_penalty=1.0)
        assert sequences.shape[0] == 1 and sequences.shape[1] > 0
