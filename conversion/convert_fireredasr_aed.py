"""Convert an original FireRedASR-AED release directory to a transformers folder.

    python conversion/convert_fireredasr_aed.py --input_dir FireRedASR-AED-L --output_dir fireredasr-aed-l

Same as `python -m transformers_fireredasr.conversion.aed`.
"""

from transformers_fireredasr.conversion.aed import main

if __name__ == "__main__":
    main()
