"""Convert an original FireRedLID release directory (FireRedASR2S's language identifier) to a transformers folder.

    python conversion/convert_fireredlid.py --input_dir FireRedLID --output_dir fireredlid

Same as `python -m transformers_fireredasr.conversion.lid`.
"""

from transformers_fireredasr.conversion.lid import main

if __name__ == "__main__":
    main()
