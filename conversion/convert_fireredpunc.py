"""Convert an original FireRedPunc release directory (FireRedASR2S's punctuation model) to a transformers folder.

    python conversion/convert_fireredpunc.py --input_dir FireRedPunc --output_dir fireredpunc

Same as `python -m transformers_fireredasr.conversion.punc`.
"""

from transformers_fireredasr.conversion.punc import main

if __name__ == "__main__":
    main()
