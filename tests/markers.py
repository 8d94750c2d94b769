"""Which tests are slow and which are version-sensitive: the one rule, applied by tests/conftest.py at collection.

- `slow`: tests that take long because of what they run (training, published-size smoke runs, a browser, a Ray
  instance, torchrun ranks, notebooks, benchmark scripts, minutes of audio). Plain `pytest` leaves them out (the fast
  default suite); `pytest --slow` or `bash tests/run.sh` runs everything, and naming a file or test runs it.
- `version_sensitive`: tests whose outcome depends on transformers' or torch's internals, not only on our code: the
  transformers interfaces we rely on (cache names, generation, attention implementations, the pipeline's chunking,
  tokenizer and audio utilities), every decoding mode's token ids, the CPU speed paths (oneDNN operators, the int8
  kernel), quantization (torchao) and compiled decoding (Inductor). CI runs them again at the other end of each
  supported range (`bash tests/run.sh --subset --transformers lowest`, `--torch floor`).

Patterns are fnmatch patterns over pytest node ids relative to tests/ (`test_file.py::test_name[param]`).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

SLOW = {
    "test_notebooks.py::*": "both notebooks end to end in a Jupyter kernel",
    "test_finetune_example.py::*": "fine-tuning runs of the example script, one under torchrun",
    "test_training.py::*": "Seq2SeqTrainer runs",
    "test_llm_lora.py::*": "LoRA and QLoRA training runs",
    "test_ray_data.py::*": "a local Ray instance",
    "test_serving_page.py::*": "headless Chromium",
    "test_realtime.py::test_live_captions_in_the_browser*": "headless Chromium",
    "test_gpu_check.py::*": "every step of the GPU script in its CPU dry run",
    "test_bench_*.py::*": "benchmark scripts at a tiny size",
    "test_batch_bench.py::*": "the archive-run benchmark with local ranks",
    "test_serving_bench.py::*": "the serving benchmark against real servers",
    "test_long_audio.py::test_long_recording_*": "a five-minute recording",
    "test_demo_model.py::test_long_recording_*": "a four-minute recording",
    "test_demo_model.py::test_held_out_accuracy_on_fresh_voices*": "synthesizes and transcribes a held-out set",
    "test_batch_run.py::test_two_shards_and_two_torchrun_ranks_*": "torchrun ranks",
    "test_batch_run.py::test_a_killed_rank_resumes_*": "torchrun ranks, killed and resumed",
    "test_compiled_decoding.py::test_the_command_line_takes_compile*": "compiles the steps of several shapes",
    "test_docs.py::test_code_block_runs*": "every code block of README, the docs and the cards",
    "test_original_format.py::*server*": "a real server per original-format model",
    "test_wheel_contents.py::test_installed_wheel_*": "a fresh virtualenv with the wheel runs the demo transcription",
}

VERSION_SENSITIVE = {
    "test_transformers_range.py::*": "the cache rename, every decoding mode's ids across releases, deprecations",
    "test_aed_parity.py::*": "log-probs and ids against the reference under each attention implementation",
    "test_decoding_speedups.py::*": "static cache, compiled steps, retiring: ids unchanged",
    "test_compiled_decoding.py::*": "Inductor's freezing and templates",
    "test_cpu_linear.py::*": "oneDNN's prepacked linear and torch's int8 kernel",
    "test_quantization.py::*": "torchao's int8 modes through TorchAoConfig",
    "test_speed_fallbacks.py::*": "what the installed torch offers each speed path",
    "test_feature_extraction.py::*": "transformers' audio_utils fbank against kaldi's",
    "test_tokenization.py::*": "transformers' tokenizer base classes",
    "test_serving_transformers_serve.py::*": "transformers serve's model loading",
    "test_llm.py::test_generated_ids_match_reference*": "Qwen2 and transformers' beam search with peft's LoRA",
    "test_llm.py::test_batched_equals_one_by_one*": "left padding through Qwen2's attention masks",
    "test_llm.py::test_quantized_loading_transcribes*": "bitsandbytes through transformers' quantizers",
    "test_hotwords.py::test_a_listed_phrase_fixes_the_transcript_in_every_mode*": "logits processors in every search",
    "test_word_timestamps.py::test_word_chunks_follow_the_tokens*": "the pipeline's chunk format",
    "test_fireredasr2.py::test_ctc_log_probs_match_the_reference_encoder*": "the CTC head against the reference",
    "test_punctuation.py::test_tag_logits_equal_the_upstream_structure*": "transformers' BERT against upstream's",
    "test_punctuation.py::test_differing_vocabularies*": "transformers' BERT tokenizer and embeddings",
    "test_lid.py::test_labels_and_confidences_match_the_oracle*": "the original search on transformers' caches",
    "test_lid.py::test_audio_classification_pipeline*": "transformers' audio-classification pipeline and batching",
}


def markers_for(nodeid: str) -> list[str]:
    """The marker names the rule gives the test `nodeid` (relative to tests/)."""
    return [
        name
        for name, patterns in (("slow", SLOW), ("version_sensitive", VERSION_SENSITIVE))
        if any(fnmatchcase(nodeid, pattern) for pattern in patterns)
    ]
