"""Decoding speed-ups keep transcripts identical: static cache, compiled steps, fewer host-device syncs, finished
utterances leaving the batch, and the encoder run over length-sorted sub-batches."""

from __future__ import annotations

import pytest
import torch
from transformers import CompileConfig

from tests.test_aed_parity import PUBLISHED, load, token_ids, transcribe
from transformers_fireredasr import FireRedAedForConditionalGeneration, apply_speed_paths
from transformers_fireredasr.generation_fireredasr import original_beam_search
from transformers_fireredasr.modeling_conformer import encode_in_length_batches, encoder_frame_mask
from transformers_fireredasr.transformers_compat import (
    cached_compiled_call,
    compile_on_every_device,
    drop_compiled_call,
)


def accelerated(folder):
    """The model as every entry point runs it, with the speed paths: exact equality of scores across batch
    compositions needs products whose rows do not depend on the other rows of the batch, which the prepacked oneDNN
    product gives and the BLAS sgemm (its kernel chosen by row count) does not."""
    model, processor = load(folder, attn_implementation="sdpa")
    return apply_speed_paths(model), processor


@pytest.fixture(scope="module")
def trained(converted_aed_dir):
    return accelerated(converted_aed_dir)


@pytest.fixture(scope="module")
def untrained(converted_odd_dir):
    """A random model: its hypotheses run into the per-utterance length limits instead of ending on `<eos>`."""
    return accelerated(converted_odd_dir)


def test_static_cache_matches_reference(trained, reference_aed, speech):
    """`cache_implementation="static"` with the published settings gives the reference's token ids, batched."""
    model, processor = trained
    expected = reference_aed.transcribe([u.path for u in speech], **PUBLISHED)
    sequences, texts = transcribe(model, processor, speech, cache_implementation="static")
    for row, text, (ids, reference_text) in zip(sequences, texts, expected, strict=True):
        assert token_ids(row, model.config) == ids
        assert text == reference_text


@pytest.mark.parametrize("fixture", ["trained", "untrained"])
def test_static_cache_in_transformers_searches(fixture, request, speech):
    """transformers' own searches (its beam search, sampling) also run on a static cache, with the same output."""
    model, processor = request.getfixturevalue(fixture)
    batch = [speech[0], speech[-1], speech[4]]
    for kwargs in (dict(original_beam_search=False, num_beams=3), dict(do_sample=True, top_k=1)):
        dynamic, _ = transcribe(model, processor, batch, max_new_tokens=12, **kwargs)
        static, _ = transcribe(model, processor, batch, max_new_tokens=12, cache_implementation="static", **kwargs)
        assert torch.equal(dynamic, static)


def test_compiled_steps_match_eager_steps(untrained, speech):
    """With a static cache every step after the first runs through `get_compiled_call` (fullgraph: no graph
    break), and the transcripts are those of uncompiled decoding. On CPU compiling needs `compile_on_every_device`;
    on an accelerator it is automatic, as in transformers' `generate`."""
    model, processor = untrained
    batch = [speech[1], speech[-1], speech[6]]
    compile_config = CompileConfig(fullgraph=True, mode="default")
    compile_on_every_device(compile_config)
    expected, _ = transcribe(model, processor, batch)
    drop_compiled_call(model)
    compiled, _ = transcribe(model, processor, batch, cache_implementation="static", compile_config=compile_config)
    assert cached_compiled_call(model) is not None, "the compiled forward was not used"
    assert torch.equal(expected, compiled)
    again, _ = transcribe(model, processor, batch, cache_implementation="static", compile_config=compile_config)
    assert torch.equal(expected, again)


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("cache_implementation", ["dynamic", "static"])
def test_asking_less_often_whether_all_finished_changes_nothing(trained, cache_implementation, num_beams, speech):
    """On an accelerator the beam loop checks for the end every few steps (each check is a host-device sync);
    the steps it takes after every row has finished must leave sequences and scores exactly as they were.

    The case that shows it: the last row to stop is cut by its own length limit while the others ended on
    `<eos>` earlier. The original stops there, so that row gets no `<eos>`; a further step would append one.
    With greedy decoding that case is built exactly; with beams the other hypotheses may run longer.
    """
    model, processor = trained
    batch = [speech[14], speech[8], speech[-1], speech[5]]  # 8, 5, 0 and 6 tokens
    inputs = processor([u.audio for u in batch], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(inputs["input_features"], attention_mask=inputs["attention_mask"])
    frame_mask = encoder_frame_mask(encoder_outputs, inputs["attention_mask"])

    def decode(limits: torch.Tensor, check_every: int):
        cache, _ = model._decoding_cache(
            model.generation_config.__class__(cache_implementation=cache_implementation),
            rows=num_beams * len(batch),
            max_steps=int(limits.max()),
            frames=frame_mask.shape[1],
        )
        return original_beam_search(
            model, encoder_outputs[0], frame_mask, limits, num_beams=num_beams, num_return_sequences=1,
            softmax_smoothing=1.25, eos_penalty=1.0, gnmt_length_penalty=0.6, decoder_start_token_id=3,
            eos_token_id=4, pad_token_id=2, cache=cache, check_every=check_every,
        )  # fmt: skip

    frame_limits = frame_mask.sum(-1)
    natural, _ = decode(frame_limits, check_every=1)
    lengths = torch.tensor([len(token_ids(row, model.config)) for row in natural])
    longest = int(lengths.argmax())
    cut = int(lengths.sort().values[-2]) + 1  # after every other utterance has ended
    assert cut < lengths[longest] < frame_limits.min(), "the fixture no longer gives the case this test needs"
    limits = frame_limits.clone()
    limits[longest] = cut

    sequences, scores = decode(limits, check_every=1)
    if num_beams == 1:
        assert not sequences[longest].eq(model.config.eos_token_id).any()  # cut without <eos>, as the original
    for check_every in (4, 7):
        other_sequences, other_scores = decode(limits, check_every)
        assert torch.equal(sequences, other_sequences)
        assert torch.equal(scores, other_scores)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_beams_share_their_utterance_encoder_row(converted_odd_dir, attn_implementation, speech):
    """The beam search passes one encoder row per utterance and lets its `beams` consecutive decoder rows share
    it: the decoder's logits, cached cross-attention keys and attention weights are those it gives on the encoder
    output repeated per beam (ragged frames, two tokens per row, so padding and several queries are covered)."""
    model, processor = load(converted_odd_dir, attn_implementation=attn_implementation)
    beams = 3
    inputs = processor([u.audio for u in (speech[0], speech[-1])], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(inputs["input_features"], attention_mask=inputs["attention_mask"])
        frame_mask = encoder_frame_mask(encoder_outputs, inputs["attention_mask"])
        assert not frame_mask.all(), "the batch must be ragged"
        tokens = torch.randint(5, model.config.vocab_size, (2 * beams, 2), generator=torch.Generator().manual_seed(0))

        def decode(hidden, mask):
            return model.model.decoder(
                input_ids=tokens,
                encoder_hidden_states=hidden,
                encoder_attention_mask=mask,
                use_cache=True,
                output_attentions=True,
            )

        shared = decode(encoder_outputs[0], frame_mask)
        repeated = decode(encoder_outputs[0].repeat_interleave(beams, 0), frame_mask.repeat_interleave(beams, 0))
    torch.testing.assert_close(shared.last_hidden_state, repeated.last_hidden_state, rtol=1e-5, atol=1e-5)
    cross = shared.past_key_values.cross_attention_cache.layers[0].keys
    assert cross.shape[0] == 2 and repeated.past_key_values.cross_attention_cache.layers[0].keys.shape[0] == 6
    if attn_implementation == "eager":  # sdpa returns no weights
        for ours, theirs in zip(shared.cross_attentions, repeated.cross_attentions, strict=True):
            assert ours.shape == theirs.shape == (2 * beams, model.config.decoder_attention_heads, 2, cross.shape[2])
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # and generate's beam search caches one cross-attention row per utterance
        model.generate(**inputs, num_beams=beams, max_new_tokens=3, cache_implementation="static")
    (cache,) = model._fireredasr_static_caches.values()
    assert cache.cross_attention_cache.layers[0].keys.shape[0] == 2


def test_unsupported_cache_implementation_is_refused(trained, speech):
    model, processor = trained
    with pytest.raises(ValueError, match="cache_implementation='offloaded'.*'dynamic'.*'static'"):
        transcribe(model, processor, speech[:1], cache_implementation="offloaded")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_transcribes_like_float32(converted_aed_dir, trained, dtype, speech):
    """A half-precision model takes the processor's float32 features as they are (no manual cast) and, on this
    model, gives the float32 transcripts; log-probs are taken in float32 either way."""
    model, processor = trained
    half = FireRedAedForConditionalGeneration.from_pretrained(converted_aed_dir, dtype=dtype).eval()
    batch = speech[:6]
    expected, _ = transcribe(model, processor, batch)
    actual, _ = transcribe(half, processor, batch)
    assert half.get_encoder().subsampling.out.weight.dtype == dtype
    assert torch.equal(expected, actual)


def test_compiled_steps_compile_once(untrained, speech):
    """Every step after the first has the same input shapes and strides, so the step compiles into one graph, also
    with `dynamic=False` (where a changing stride would recompile at every step), and a second call of the same
    shapes reuses it (under CUDA graphs each new graph would be recorded again)."""
    model, processor = untrained
    batch = [speech[1], speech[-1], speech[6]]
    graphs = []

    def recording_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    compile_config = CompileConfig(fullgraph=True, dynamic=False, backend=recording_backend, mode=None)
    compile_on_every_device(compile_config)
    drop_compiled_call(model)
    expected, _ = transcribe(model, processor, batch)
    first, _ = transcribe(model, processor, batch, cache_implementation="static", compile_config=compile_config)
    assert len(graphs) == 1
    (kept,) = model._fireredasr_static_caches.values()
    second, _ = transcribe(model, processor, batch, cache_implementation="static", compile_config=compile_config)
    assert len(graphs) == 1
    (again,) = model._fireredasr_static_caches.values()
    assert again is kept  # same buffers: a CUDA graph would be replayed, not re-recorded
    assert torch.equal(expected, first) and torch.equal(expected, second)


def test_quantized_models_take_float32_features(converted_aed_dir, trained, speech):
    """Casting the features to the model's dtype must look at the first convolution, not at a Linear layer that a
    quantizer replaces (bitsandbytes int8 weights, torchao's int8 weights and activations)."""
    pytest.importorskip("bitsandbytes")
    pytest.importorskip("torchao")
    from transformers import BitsAndBytesConfig

    from transformers_fireredasr.quantization import quantization_config

    _, processor = trained
    int8 = FireRedAedForConditionalGeneration.from_pretrained(
        converted_aed_dir, quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="cpu"
    ).eval()
    assert int8.get_encoder().subsampling.out.weight.dtype == torch.int8
    # torchao's int8 (torch.ao.quantization, which this test used before, is deprecated)
    dynamic = FireRedAedForConditionalGeneration.from_pretrained(
        converted_aed_dir, quantization_config=quantization_config("int8-dynamic"), device_map="cpu"
    ).eval()
    for model in (int8, dynamic):
        _, texts = transcribe(model, processor, speech[:2], num_beams=1)
        assert all(texts)


def _decoder_rows_per_step(model):
    """Records the decoder rows of every forward call of `model` (a forward pre-hook); returns (rows, handle)."""
    rows: list[int] = []
    handle = model.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(kwargs["decoder_input_ids"].shape[0]), with_kwargs=True
    )
    return rows, handle


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("fixture", ["trained", "untrained"])
def test_finished_utterances_leave_the_batch_without_changing_results(fixture, num_beams, request, speech):
    """Once every row of an utterance is frozen, it leaves the decoding batch; sequences are those of decoding the
    whole batch to the end, scores and token scores equal up to float rounding (batch size changes the GEMMs).

    The untrained model's hypotheses run into their length limits, and those limits differ per utterance here: an
    utterance cut by its limit while others decode on gets `<eos>` from the original's next step, which a retired
    utterance must get too."""
    model, processor = request.getfixturevalue(fixture)
    batch = [speech[0], speech[5], speech[-1], speech[9], speech[14], speech[8]]
    inputs = processor([u.audio for u in batch], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(inputs["input_features"], attention_mask=inputs["attention_mask"])
    frame_mask = encoder_frame_mask(encoder_outputs, inputs["attention_mask"])
    limits = frame_mask.sum(-1)
    if fixture == "untrained":
        limits = torch.minimum(limits, torch.tensor([3, 9, 5, 12, 7, 4]))

    def decode(retire_finished: bool):
        rows, handle = _decoder_rows_per_step(model)
        try:
            outputs = original_beam_search(
                model, encoder_outputs[0], frame_mask, limits, num_beams=num_beams, num_return_sequences=1,
                softmax_smoothing=1.25, eos_penalty=1.0, gnmt_length_penalty=0.6, decoder_start_token_id=3,
                eos_token_id=4, pad_token_id=2, return_token_scores=True, retire_finished=retire_finished,
            )  # fmt: skip
        finally:
            handle.remove()
        return outputs, rows

    (sequences, scores, token_scores), rows = decode(retire_finished=True)
    (whole_sequences, whole_scores, whole_token_scores), whole_rows = decode(retire_finished=False)
    assert set(whole_rows) == {num_beams * len(batch)}
    assert rows[0] == num_beams * len(batch) and rows[-1] < rows[0], "no utterance left the batch"
    assert torch.equal(sequences, whole_sequences)
    torch.testing.assert_close(scores, whole_scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(token_scores, whole_token_scores, atol=1e-5, rtol=0)
    if fixture == "untrained":  # cut at 3 tokens while the others went on: <eos> appended, as the original does
        assert token_ids(sequences[0], model.config) == sequences[0, 1:4].tolist()
        assert sequences[0, 4] == model.config.eos_token_id


def test_retiring_is_off_where_rows_must_keep_their_places(trained, speech):
    """Logits processors (hotwords) keep per-utterance state by row position, and a static cache (compiled steps)
    keeps its shape: with either, every step decodes the whole batch."""
    model, processor = trained
    batch = [speech[0], speech[5], speech[-1], speech[9]]
    inputs = processor([u.audio for u in batch], sampling_rate=16000, return_tensors="pt")
    for kwargs in (dict(hotwords=["今天"]), dict(cache_implementation="static")):
        rows, handle = _decoder_rows_per_step(model)
        try:
            with torch.no_grad():
                model.generate(**inputs, **kwargs)
        finally:
            handle.remove()
        assert set(rows) == {3 * len(batch)}, kwargs


def test_encoding_in_length_batches_gives_each_row_its_whole_batch_output(trained, speech):
    """`encoder_batch_frames` runs the encoder over length-sorted sub-batches, each cut to its longest row: every
    real frame is what the whole batch gives (up to float rounding), the rest is masked, and the transcripts are
    the same."""
    model, processor = trained
    inputs = processor([u.audio for u in speech], sampling_rate=16000, return_tensors="pt")
    features, mask = inputs["input_features"], inputs["attention_mask"]
    budget = 2 * int(mask.sum(-1).max())  # about two utterances per sub-batch
    calls: list[tuple[int, int]] = []
    handle = model.get_encoder().register_forward_pre_hook(lambda module, args: calls.append(tuple(args[0].shape[:2])))
    try:
        with torch.no_grad():
            whole = model.get_encoder()(features, attention_mask=mask)
            parts = encode_in_length_batches(model.get_encoder(), features, mask, budget)
    finally:
        handle.remove()
    sub_batches = calls[1:]
    assert len(sub_batches) > 2 and sum(rows for rows, _ in sub_batches) == len(speech)
    assert all(rows * frames <= budget or rows == 1 for rows, frames in sub_batches)
    real = parts.attention_mask
    assert (
        torch.equal(real, whole.attention_mask[:, : real.shape[1]])
        and not whole.attention_mask[:, real.shape[1] :].any()
    )
    torch.testing.assert_close(parts.last_hidden_state[real], whole.last_hidden_state[:, : real.shape[1]][real])

    expected, _ = transcribe(model, processor, speech)
    in_parts, _ = transcribe(model, processor, speech, encoder_batch_frames=budget)
    assert torch.equal(expected, in_parts)


@pytest.mark.parametrize("value", [0, -5, 1.5, "800", True])
def test_a_bad_encoder_batch_frames_is_refused(trained, speech, value):
    model, processor = trained
    with pytest.raises(ValueError, match="encoder_batch_frames must be a positive number of frames"):
        transcribe(model, processor, speech[:2], encoder_batch_frames=value)
