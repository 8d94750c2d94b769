"""The pooled path's batches: cut by length within their budget, decoding batches up to POOL_BATCHES encoder
batches each encoded in sub-batches of `batch_seconds`, and the transcripts of the pipeline called file by file."""

from __future__ import annotations

from transformers import pipeline

import transformers_fireredasr
from tests.serving_helpers import make_clips
from transformers_fireredasr.batch.inputs import Item, wav_seconds
from transformers_fireredasr.batch.pooled import POOL_BATCHES, PooledTranscriber
from transformers_fireredasr.batch.sources import AudioReader, InputSpec
from transformers_fireredasr.engine import TranscribeOptions
from transformers_fireredasr.length_batches import plan_batches


def test_batches_are_cut_by_length_within_the_budget():
    lengths = [1.0, 5.0, 2.0, 4.5, 2.5, 9.0, 0.5]
    batches = plan_batches(lengths, 10.0)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert batches[0] == [5]  # 9 s: a second one would pad to 18 s
    for batch in batches:
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
        assert len(batch) == 1 or len(batch) * lengths[batch[0]] <= 10.0
    assert [i for batch in batches for i in batch] == sorted(range(len(lengths)), key=lambda i: -lengths[i])
    assert plan_batches([], 10.0) == []
    assert plan_batches([30.0], 10.0) == [[0]]  # longer than the budget: alone
    sized = plan_batches(lengths, None, max_size=3)  # at most 3 a batch, longest first, no length budget
    assert [len(batch) for batch in sized] == [3, 3, 1] and sized[0] == [5, 1, 3]


def test_decoding_batches_span_several_encoder_batches_and_keep_the_transcripts(tmp_path):
    clips = make_clips(tmp_path)
    pipe = pipeline("automatic-speech-recognition", model=str(transformers_fireredasr.demo_model_dir()), device="cpu")
    expected = {str(path): pipe(str(path))["text"] for path in clips.paths}
    items = [Item(str(p), str(p), wav_seconds(p)) for p in clips.paths]
    batch_seconds = 2 * max(item.duration for item in items) + 0.5  # about two clips per encoder batch

    pooled = PooledTranscriber(
        pipe.engine, AudioReader(InputSpec("files", "")), TranscribeOptions(), batch_seconds=batch_seconds
    )
    results, decoding_batches, encoder_calls = _transcribe_recording_batches(pipe, pooled, items)

    assert {key: result["text"] for key, (result, error) in results.items() if error is None} == expected
    assert sum(rows for rows, _ in decoding_batches) == len(items) == sum(rows for rows, _ in encoder_calls)
    for budget, batches in ((batch_seconds, encoder_calls), (POOL_BATCHES * batch_seconds, decoding_batches)):
        assert all(rows * frames <= budget * 100 or rows == 1 for rows, frames in batches)
    # One decoding batch spans several encoder batches.
    assert max(rows for rows, _ in decoding_batches) > max(rows for rows, _ in encoder_calls)


def test_the_llm_variant_decodes_in_batches_of_batch_seconds(converted_llm_dir, speech):
    """FireRedASR-LLM's generate encodes its batch whole and decodes with transformers' search, where finished
    utterances stay: larger decoding batches would only pad its encoder more and take more memory."""
    pipe = pipeline("automatic-speech-recognition", model=str(converted_llm_dir), device="cpu")
    items = [Item(str(u.path), str(u.path), wav_seconds(u.path)) for u in speech[:8]]
    batch_seconds = 2 * max(item.duration for item in items) + 0.5
    pooled = PooledTranscriber(
        pipe.engine, AudioReader(InputSpec("files", "")), TranscribeOptions(), batch_seconds=batch_seconds
    )
    results, decoding_batches, _ = _transcribe_recording_batches(pipe, pooled, items)
    assert [error for _, error in results.values() if error is not None] == []
    assert sum(rows for rows, _ in decoding_batches) == len(items) and len(decoding_batches) > 1
    assert all(rows * frames <= batch_seconds * 100 or rows == 1 for rows, frames in decoding_batches)


def _transcribe_recording_batches(pipe, pooled: PooledTranscriber, items: list[Item]):
    """`({id: (result, error)}, decoding batches, encoder calls)`, each batch as `(rows, fbank frames)`."""
    encoder_calls: list[tuple[int, int]] = []
    decoding_batches: list[tuple[int, int]] = []
    generate = pipe.model.generate

    def recording_generate(*args, **kwargs):
        features = kwargs.get(getattr(pipe.model, "main_input_name", "input_features"), args[0] if args else None)
        decoding_batches.append(tuple(features.shape[:2]))
        return generate(*args, **kwargs)

    encoder = pipe.model.get_encoder() if hasattr(pipe.model, "get_encoder") else pipe.model.encoder
    hook = encoder.register_forward_pre_hook(lambda m, args: encoder_calls.append(tuple(args[0].shape[:2])))
    pipe.model.generate = recording_generate
    try:
        results = {item.id: (result, error) for item, result, _, error in pooled.transcribe(items)}
    finally:
        hook.remove()
        del pipe.model.generate
    return results, decoding_batches, encoder_calls
