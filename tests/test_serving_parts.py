"""The server's parts without a server: the dynamic batcher, the queue limit, the subtitle writers, the request
form, and batched decoding of segments against the pipeline."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from transformers_fireredasr import formats
from transformers_fireredasr.serving.admission import AdmissionGate, QueueFull
from transformers_fireredasr.serving.batcher import BatcherStopped, DynamicBatcher


class Recorder:
    """A batch function that records its calls; items named 'poison' make the whole call fail."""

    def __init__(self, delay: float = 0.0):
        self.calls: list[tuple[list, object]] = []
        self.delay = delay

    def __call__(self, items, key):
        self.calls.append((list(items), key))
        time.sleep(self.delay)
        if "poison" in items:
            raise ValueError("cannot process poison")
        return [f"{item}:{key}" for item in items]


def started(run, **options) -> DynamicBatcher:
    batcher = DynamicBatcher(run, **options)
    batcher.start()
    return batcher


def test_items_submitted_together_share_a_call_up_to_the_maximum():
    run = Recorder()
    batcher = started(run, max_batch_size=4, max_wait_ms=200)
    futures = [batcher.submit(i, "k") for i in range(10)]
    assert [future.result(5) for future in futures] == [f"{i}:k" for i in range(10)]
    batcher.stop()
    assert [len(items) for items, _ in run.calls] == [4, 4, 2]
    assert batcher.stats.batches == 3 and batcher.stats.largest == 4 and batcher.stats.mean_batch_size == 10 / 3


def test_a_lone_item_waits_at_most_max_wait():
    run = Recorder()
    batcher = started(run, max_batch_size=8, max_wait_ms=50)
    begin = time.monotonic()
    assert batcher.submit("a").result(5) == "a:None"
    assert 0.04 <= time.monotonic() - begin < 1.0
    batcher.stop()
    unbatched = started(Recorder(), max_batch_size=1, max_wait_ms=1000)
    begin = time.monotonic()
    assert unbatched.submit("b").result(5) == "b:None"
    assert time.monotonic() - begin < 0.5  # a full batch of one never waits
    unbatched.stop()


def test_different_keys_never_share_a_call():
    run = Recorder()
    batcher = started(run, max_batch_size=8, max_wait_ms=100)
    futures = [batcher.submit(i, "beam" if i % 2 else "sample") for i in range(6)]
    assert [future.result(5) for future in futures] == [f"{i}:{'beam' if i % 2 else 'sample'}" for i in range(6)]
    batcher.stop()
    assert all(len({key}) == 1 for _, key in run.calls)
    assert sorted(len(items) for items, _ in run.calls) == [3, 3]


def test_a_failing_item_fails_alone():
    """With the engine's `decode_each` as its function (as the server runs it), a segment that breaks its batch
    fails alone: the others of the shared call get their results."""
    from transformers_fireredasr.engine.batches import each_or_error

    run = Recorder()
    batcher = started(lambda items, key: each_or_error(lambda batch: run(batch, key), items), max_wait_ms=100)
    futures = {item: batcher.submit(item) for item in ["a", "poison", "b", "c"]}
    assert futures["a"].result(5) == "a:None" and futures["c"].result(5) == "c:None"
    with pytest.raises(ValueError, match="cannot process poison"):
        futures["poison"].result(5)
    batcher.stop()
    assert len(run.calls[0][0]) == 4  # one shared call first, then each item alone
    assert sorted(items[0] for items, _ in run.calls[1:]) == ["a", "b", "c", "poison"]


def test_a_failing_call_fails_its_items_and_the_batcher_goes_on():
    run = Recorder()
    batcher = started(run, max_batch_size=2, max_wait_ms=100)
    futures = [batcher.submit(item) for item in ["poison", "a"]]
    for future in futures:
        with pytest.raises(ValueError, match="cannot process poison"):
            future.result(5)
    assert batcher.submit("b").result(5) == "b:None" and batcher.alive
    batcher.stop()


def test_cancelled_items_are_skipped_and_stop_fails_the_waiting():
    run = Recorder(delay=0.3)
    batcher = started(run, max_batch_size=1, max_wait_ms=0)
    first = batcher.submit("first")
    time.sleep(0.1)  # "first" is running
    cancelled, waiting = batcher.submit("cancelled"), batcher.submit("waiting")
    assert cancelled.cancel()
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    assert first.result(5) == "first:None"
    stopper.join(5)
    with pytest.raises(BatcherStopped):
        waiting.result(5)
    with pytest.raises(CancelledError):
        cancelled.result(0)
    assert [items for items, _ in run.calls] == [["first"]]
    with pytest.raises(BatcherStopped):
        batcher.submit("late")
    assert not batcher.alive


def test_admission_gate():
    gate = AdmissionGate(2)
    first, second = gate.enter(), gate.enter()
    with pytest.raises(QueueFull, match="2 requests are already queued"):
        gate.enter()
    first.release()
    first.release()  # a ticket frees its place once
    assert gate.admitted == 1
    gate.enter()
    second.release()
    assert gate.admitted == 1
    with pytest.raises(ValueError):
        AdmissionGate(0)


def test_subtitle_writers():
    chunks = [
        {"text": "今天天气很好", "timestamp": (0.0, 1.5)},
        {"text": "", "timestamp": (1.5, 2.0)},
        {"text": "HELLO\nWORLD", "timestamp": (3725.5, 3726.25)},
    ]
    assert formats.to_srt(chunks) == (
        "1\n00:00:00,000 --> 00:00:01,500\n今天天气很好\n\n2\n01:02:05,500 --> 01:02:06,250\nHELLO WORLD\n"
    )
    assert formats.to_vtt(chunks) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n今天天气很好\n\n01:02:05.500 --> 01:02:06.250\nHELLO WORLD\n"
    )
    assert formats.to_vtt([]) == "WEBVTT\n" and formats.to_srt([]) == ""
    assert formats.to_text("你好") == "你好\n" and formats.srt_timestamp(59.9996) == "00:01:00,000"


def test_the_form_forbids_unknown_fields():
    pytest.importorskip("fastapi")
    from pydantic import ValidationError

    from transformers_fireredasr.serving.openai_schema import TranscriptionForm, validation_message

    with pytest.raises(ValidationError) as raised:
        TranscriptionForm.model_validate({"file": None, "model": "m", "respons_format": "srt", "language": "de"})
    message, param = validation_message(raised.value.errors())
    assert param == "file" and "respons_format: unknown field" in message and "language 'de'" in message


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("fastapi")
    from transformers_fireredasr import demo_model_dir
    from transformers_fireredasr.engine import Engine

    return Engine.from_pretrained(str(demo_model_dir()), {"device": "cpu"})


def test_batched_segments_equal_the_pipeline_one_upload_at_a_time(speech, engine):
    """Segments of several uploads decoded in one call give what the pipeline gives for each upload alone."""
    from transformers import pipeline

    from transformers_fireredasr.engine import join_segment_texts
    from transformers_fireredasr.engine.assemble import pieces
    from transformers_fireredasr.serving.transcriber import prepare_upload, request_options

    utterances, options = speech[:6], request_options()
    prepared = [
        prepare_upload(engine, u.path.read_bytes(), f"upload {i}", 60.0, options) for i, u in enumerate(utterances)
    ]
    results = engine.decode([segment for audio in prepared for segment in audio.segments], options)
    assert all(0 < result.confidence <= 1 for result in results)  # the model's own, from its beam search
    asr = pipeline("automatic-speech-recognition", model=engine.model.name_or_path)
    position = 0
    for utterance, audio in zip(utterances, prepared, strict=True):
        mine = results[position : position + len(audio.segments)]
        position += len(audio.segments)
        expected = asr(str(utterance.path), return_timestamps=True)
        assert join_segment_texts([r.text for r in mine]) == expected["text"]
        assert pieces(audio, mine) == expected["chunks"]
    assert position == len(results) > len(utterances) - 1


def test_sampling_reports_a_confidence(speech, engine):
    import torch

    from transformers_fireredasr.serving.transcriber import prepare_upload, request_options

    options = request_options(temperature=0.7)
    prepared = prepare_upload(engine, speech[0].path.read_bytes(), "upload", 60.0, options)
    torch.manual_seed(0)
    results = engine.decode(prepared.segments, options)
    assert results and all(0 < result.confidence <= 1 for result in results)


def test_prepare_names_the_problem(engine):
    from transformers_fireredasr.serving.transcriber import AudioTooLong, prepare_upload, request_options

    options = request_options()
    with pytest.raises(ValueError, match="file 'a.mp3': not readable as audio"):
        prepare_upload(engine, b"not audio at all", "file 'a.mp3'", 60.0, options)
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(1), file.setsampwidth(2), file.setframerate(16000)
        file.writeframes(b"\x10\x00" * 16000 * 3)
    with pytest.raises(AudioTooLong, match="3.0 s of audio, more than this server's limit of 2 s"):
        prepare_upload(engine, buffer.getvalue(), "upload", 2.0, options)
    assert prepare_upload(engine, buffer.getvalue(), "upload", 5.0, options).segments == []  # near-silence
    with pytest.raises(ValueError, match="upload: 10 samples, shorter than one 25 ms frame"):
        prepare_upload(engine, np_wav(10), "upload", 5.0, options)


def np_wav(samples: int) -> bytes:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(1), file.setsampwidth(2), file.setframerate(16000)
        file.writeframes(b"\x00\x10" * samples)
    return buffer.getvalue()
