"""Transcribe a NeMo-style manifest on a Ray cluster with Ray Data, resumably (`pip install transformers-fireredasr[ray]`).

    python examples/ray_transcribe.py manifest.jsonl out/ --model DIR_OR_HUB_ID --actors 8          # on a cluster
    python examples/ray_transcribe.py manifest.jsonl out/ --local-cpus 4 --local-gpus 2 --actors 2  # local Ray

One actor per GPU loads the model once and transcribes batches of rows (the same pooled path as
`fireredasr-transcribe --manifest`, so the same texts); rows are decoded by CPU tasks before. Output: JSON lines
under out/transcripts/ (`id`, `audio_filepath`, `duration`, `text`, `segments`, `status`, `error`; with
`--punctuation`, also `sentences` and `sentence_timing`; with `--lid-model`, `language` and `language_confidence`).
Run the same command again after a crash: Ray Data's checkpoint (out/checkpoint/) skips the rows already written.
`--local-gpus` on a machine without CUDA makes logical GPUs: the actors are placed one per GPU and run on the CPU.
"""

from __future__ import annotations

import argparse
import sys

from transformers_fireredasr import demo_model_dir
from transformers_fireredasr.batch.run import RunConfig
from transformers_fireredasr.ray_data import read_transcripts, transcribe_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("output_dir")
    parser.add_argument(
        "--model",
        help="model folder or Hub id, converted or the original release (each node's actors convert it once, "
        "into their node's cache; default: the bundled demo model)",
    )
    parser.add_argument("--actors", type=int, default=1, help="model replicas (one GPU each unless --gpus-per-actor)")
    parser.add_argument("--gpus-per-actor", type=float, default=1.0, help="0: actors on CPUs")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per map_batches call")
    parser.add_argument("--batch-seconds", type=float, default=120.0, help="audio seconds per model batch")
    parser.add_argument("--num-beams", type=int, default=None)
    parser.add_argument(
        "--punctuation",
        metavar="MODEL",
        help="a punctuation model (FireRedPunc folder or Hub id): rows carry punctuated text and timed sentences",
    )
    parser.add_argument(
        "--lid-model",
        metavar="MODEL",
        help="a language model (FireRedLID folder or Hub id): rows, segments and sentences carry their language",
    )
    parser.add_argument(
        "--vad-model",
        metavar="MODEL",
        help="the segmenter: silero (default) or a FireRedVAD folder or Hub id (the AED variant adds events)",
    )
    parser.add_argument("--address", help="an existing cluster (default: start a local Ray)")
    parser.add_argument(
        "--local-cpus", type=int, default=4, help="local Ray: logical CPUs (>= 4: see docs/archives.md)"
    )
    parser.add_argument("--local-gpus", type=int, default=None, help="local Ray: logical GPUs")
    options = parser.parse_args(argv)
    if options.actors < 1 or options.batch_size < 1 or not options.batch_seconds > 0:
        parser.error("--actors, --batch-size and --batch-seconds must be positive")
    try:
        model = options.model or demo_model_dir()
    except FileNotFoundError as error:  # a build without the demo model
        parser.error(f"{error}; pass --model DIR_OR_HUB_ID")
    import ray

    if options.address:
        ray.init(address=options.address)
    else:
        ray.init(num_cpus=options.local_cpus, num_gpus=options.local_gpus, include_dashboard=False)
    try:
        config = RunConfig(
            str(model),
            device="auto",
            num_beams=options.num_beams,
            punctuation=options.punctuation,
            lid_model=options.lid_model,
            vad_model=options.vad_model,
            batch_seconds=options.batch_seconds,
            progress=False,
        )
        folder = transcribe_manifest(
            options.manifest, options.output_dir, config, options.actors, options.gpus_per_actor, options.batch_size
        )
        rows = read_transcripts(folder)
        failed = sum(row["status"] != "ok" for row in rows)
        print(f"{len(rows)} rows in {folder} ({failed} failed)")
        return 1 if failed else 0
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
