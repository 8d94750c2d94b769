"""An OpenAI-compatible transcription server for FireRedASR models (`fireredasr-serve`, the `serve` extra).

`POST /v1/audio/transcriptions` takes the same multipart form as OpenAI's API and answers in json, text, srt, vtt
or verbose_json, or streams server-sent events; segments of concurrent requests are decoded together in shared
`generate` calls (`batcher.py`). In float32 that changes no transcript: each is what its request gets decoded alone
(padding is masked). In float16, bfloat16 or an int8 mode a segment's products round differently beside others, so
a batched transcript may differ from the one decoded alone; `--max-batch-size 1` turns batching off. Files: `settings.py` (the knobs), `transcriber.py` (an upload and a form -> the engine's
prepared input and options), `batcher.py`, `admission.py` (the queue limit), `upload_limit.py` (the upload size),
`openai_schema.py` (request and response shapes, errors), `app.py` (routes), `cli.py` (the command), `launch.py`
(starting the command from Python), `static/index.html` (the page at `/`).
"""

from .settings import ServerSettings

__all__ = ["ServerSettings"]
