"""Development tooling, kept out of the installed package (the wheel): run it from a checkout.

- `synthetic_corpus` (with `corpus_data/`): the espeak-ng Mandarin corpus the demo model was trained on and the tests
  and benchmarks speak; `python -m tools.synthetic_corpus OUT_DIR ...` (formerly `fireredasr-make-corpus`).
- `pinyin_units`: pinyin units (initial, final, tone) as the auxiliary CTC targets of a new Mandarin model.
- `new_model`: what a model trained from nothing needs first: its character vocabulary and CMVN statistics.

Fine-tuning an existing model on your own data needs none of this: the collators, the CER metric and the CTC loss
are in `transformers_fireredasr.training`.
"""
