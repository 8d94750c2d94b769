#!/usr/bin/env python
"""Character error rate of a FireRedASR model on an audiofolder split, through the ASR pipeline.

    python examples/evaluate_cer.py --model src/transformers_fireredasr/demo --data_dir ./corpus --split test

Prints one JSON line: model, split, utterances, CER and the decoding settings used.
"""

from __future__ import annotations

import argparse
import json

import datasets
from transformers import pipeline

from transformers_fireredasr import resolve_model  # importing the package registers its classes with the pipeline
from transformers_fireredasr.training import character_error_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder or Hub id (converted or original)")
    parser.add_argument("--data_dir", required=True, help="audiofolder with the split")
    parser.add_argument("--split", default="test")
    parser.add_argument("--text_column", default="transcription")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_beams", type=int, default=None, help="default: the model's generation config")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    data = datasets.load_dataset("audiofolder", data_dir=args.data_dir, split=args.split)
    data = data.cast_column("audio", datasets.Audio(sampling_rate=16000))
    asr = pipeline("automatic-speech-recognition", model=resolve_model(args.model), device=args.device)
    generate_kwargs = {} if args.num_beams is None else {"num_beams": args.num_beams}
    audio = [{"raw": example["audio"]["array"], "sampling_rate": 16000} for example in data]
    results = asr(audio, batch_size=args.batch_size, generate_kwargs=generate_kwargs)
    cer = character_error_rate([r["text"] for r in results], data[args.text_column])
    num_beams = args.num_beams or asr.model.generation_config.num_beams
    print(json.dumps({"model": args.model, "split": args.split, "utterances": len(data), "cer": round(cer, 4),
                      "num_beams": num_beams}, ensure_ascii=False))  # fmt: skip


if __name__ == "__main__":
    main()
