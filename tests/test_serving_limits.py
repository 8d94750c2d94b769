"""The server's limits: 401 without the API key, 413 over the upload size or the duration, and a burst of 200
requests against a queue limit of 16 that gets 200 answers (results or 429) while the server stays up."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.audio import write_wav
from tests.serving_helpers import RATE, make_clips
from transformers_fireredasr.segmentation import vad_available

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
from transformers_fireredasr.serving.launch import ServerProcess  # noqa: E402

MODEL = "fireredasr-demo"
KEY = "test-key-123"
pytestmark = [
    pytest.mark.skipif(not vad_available(), reason="the server segments with silero-vad (the vad extra)"),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("limits"), count=4)


@pytest.fixture(scope="module")
def server():
    limits = ["--api-key", KEY, "--max-upload-mb", "1", "--max-audio-seconds", "20", "--max-queue", "16"]
    with ServerProcess([*limits, "--no-access-log"]) as process:
        yield process


def client_for(server, key: str = KEY):
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=120)


def transcribe(client, path):
    with open(path, "rb") as file:
        return client.audio.transcriptions.create(file=file, model=MODEL)


def test_api_key(server, clips):
    assert transcribe(client_for(server), clips.paths[0]).text
    with pytest.raises(openai.AuthenticationError) as raised:
        transcribe(client_for(server, "wrong-key"), clips.paths[0])
    assert raised.value.status_code == 401 and raised.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client_for(server, "wrong-key").models.list()
    # Without any key (the openai client always sends one).
    assert httpx.get(f"{server.base_url}/models").status_code == 401
    plain = httpx.post(f"{server.base_url}/audio/transcriptions", data={"model": MODEL}, files={"file": b"x"})
    assert plain.status_code == 401 and "Authorization: Bearer" in plain.json()["error"]["message"]
    assert server.health()["status"] == "ok"  # health and the page need no key
    assert httpx.get(server.url).status_code == 200


def test_upload_over_the_size_limit_is_413(server, tmp_path):
    big = tmp_path / "big.wav"
    write_wav(big, np.random.default_rng(0).normal(0, 0.1, 40 * RATE).astype(np.float32))  # 1.2 MB
    assert big.stat().st_size > 1024 * 1024
    with pytest.raises(openai.APIStatusError) as raised:
        transcribe(client_for(server), big)
    assert raised.value.status_code == 413
    assert raised.value.body["code"] == "file_too_large" and "1 MB" in raised.value.body["message"]


def test_a_chunked_upload_over_the_limit_is_413(server, tmp_path):
    """Without Content-Length the limit applies as the body arrives."""
    boundary = "serving-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{MODEL}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
    ).encode()
    body = head + bytes(1536 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    response = httpx.post(
        f"{server.base_url}/audio/transcriptions",
        content=(body[i : i + 65536] for i in range(0, len(body), 65536)),  # a generator: sent chunked
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    assert server.alive()


def test_audio_over_the_duration_limit_is_413(server, tmp_path):
    long = tmp_path / "long.flac"
    noise = np.random.default_rng(1).normal(0, 0.001, 25 * RATE).astype(np.float32)
    write_wav(tmp_path / "long.wav", noise)
    subprocess.run(["sox", str(tmp_path / "long.wav"), "-r", "8000", str(long)], check=True)
    assert long.stat().st_size < 1024 * 1024  # within the upload limit: the duration decides
    with pytest.raises(openai.APIStatusError) as raised:
        transcribe(client_for(server), long)
    assert raised.value.status_code == 413 and raised.value.body["code"] == "audio_too_long"
    assert "25.0 s of audio" in raised.value.body["message"] and "20 s" in raised.value.body["message"]


def test_a_burst_of_200_gets_200_answers(server, clips):
    """200 requests at once against a queue of 16: each is answered (a result or 429), none hangs."""
    data = [path.read_bytes() for path in clips.paths]
    expected = [transcribe(client_for(server), path).text for path in clips.paths]
    headers = {"Authorization": f"Bearer {KEY}"}

    def send(index: int) -> tuple[int, int, dict]:
        clip = index % len(data)
        with httpx.Client(timeout=120) as http:
            response = http.post(
                f"{server.base_url}/audio/transcriptions",
                data={"model": MODEL},
                files={"file": (f"clip{clip}.wav", data[clip])},
                headers=headers,
            )
        return clip, response.status_code, response.json()

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(send, range(200)))
    assert len(answers) == 200
    codes = [code for _, code, _ in answers]
    assert set(codes) <= {200, 429, 503}, codes
    assert 200 in codes and 429 in codes  # the queue limit was reached, and requests still went through
    for clip, code, body in answers:
        if code == 200:
            assert body["text"] == expected[clip]
        else:
            assert body["error"]["code"] == "queue_full" and "16 requests" in body["error"]["message"]
    assert server.alive()
    health = server.health()
    assert health["status"] == "ok" and health["admitted_requests"] == 0
    assert transcribe(client_for(server), clips.paths[0]).text == expected[0]
