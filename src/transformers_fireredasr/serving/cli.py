"""`fireredasr-serve`: an OpenAI-compatible transcription server for a FireRedASR model folder or Hub id.

Without `--model` it serves the bundled demo model (synthetic speech only). It binds to 127.0.0.1 unless told
otherwise (`--host 0.0.0.0` exposes it); with `--port 0` the system picks a free port, which the
"Uvicorn running on http://HOST:PORT" line names. The API key may also come from FIREREDASR_API_KEY.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..engine import Engine, OptionError
from ..flags import add_load_arguments, load_options

API_KEY_VARIABLE = "FIREREDASR_API_KEY"


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (`parse_args` parses and checks them; `build_parser().format_help()` is `--help`)."""
    parser = argparse.ArgumentParser(prog="fireredasr-serve", description=__doc__)
    parser.add_argument(
        "--model",
        help="model folder or Hub id, converted or the original release (default: the bundled demo model)",
    )
    parser.add_argument(
        "--served-model-name", help="the name clients pass as `model` (default: fireredasr-demo, or --model)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_VARIABLE),
        help=f"require `Authorization: Bearer KEY` ({API_KEY_VARIABLE})",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=8,
        help="segments per generate call; 1 turns batching off (float32 transcripts are the same batched or not; "
        "float16, bfloat16 and --quantize ones may differ)",
    )
    parser.add_argument(
        "--max-wait-ms", type=float, default=10.0, help="longest a segment waits for others to join it"
    )
    parser.add_argument("--max-queue", type=int, default=64, help="requests admitted at once; more get 429")
    parser.add_argument("--max-upload-mb", type=float, default=25.0, help="larger uploads get 413 (default: 25)")
    parser.add_argument("--max-audio-seconds", type=float, default=3600.0, help="longer audio gets 413")
    parser.add_argument("--request-timeout", type=float, default=600.0, help="seconds before a request gets 503")
    parser.add_argument(
        "--max-realtime-sessions",
        type=int,
        default=16,
        help="live transcription sessions (WS /v1/realtime) open at once; one more gets an error event and is closed",
    )
    parser.add_argument(
        "--realtime-idle-timeout",
        type=float,
        default=60.0,
        help="seconds a live session may send nothing (while no transcript is pending) before it gets an error "
        "event and is closed, freeing its place (default: 60)",
    )
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    add_load_arguments(parser)
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    options = parser.parse_args(argv)
    try:
        options.load = load_options(options)
    except OptionError as error:
        parser.error(str(error))
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        print(
            'error: fireredasr-serve needs the serve extra: pip install "transformers-fireredasr[serve]"',
            file=sys.stderr,
        )
        return 2

    from ..demo_model import demo_model_dir
    from .app import create_app
    from .settings import ServerSettings

    try:
        model = options.model or demo_model_dir()
    except FileNotFoundError as error:
        print(f"error: {error}; pass --model DIR_OR_HUB_ID", file=sys.stderr)
        return 2
    name = options.served_model_name or (options.model if options.model else "fireredasr-demo")
    try:
        settings = ServerSettings(
            served_model_name=name,
            api_key=options.api_key,
            max_batch_size=options.max_batch_size,
            max_wait_ms=options.max_wait_ms,
            max_queue=options.max_queue,
            max_upload_mb=options.max_upload_mb,
            max_audio_seconds=options.max_audio_seconds,
            request_timeout_s=options.request_timeout,
            max_realtime_sessions=options.max_realtime_sessions,
            realtime_idle_timeout_s=options.realtime_idle_timeout,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    try:
        engine = Engine.from_pretrained(str(model), options.load)
    except (OptionError, ValueError, OSError) as error:  # OSError: a model folder or Hub id that cannot be read
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = create_app(engine, settings)
    from .realtime.session import MAX_MESSAGE_BYTES

    uvicorn.run(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        access_log=not options.no_access_log,
        ws_max_size=MAX_MESSAGE_BYTES,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
