"""Convert an original FireRedVAD folder (the VAD, Stream-VAD or AED variant, or the release holding all three) to a
transformers folder.

    python conversion/convert_fireredvad.py --input_dir FireRedVAD/VAD --output_dir fireredvad-vad

Same as `python -m transformers_fireredasr.conversion.vad`.
"""

from transformers_fireredasr.conversion.vad import main

if __name__ == "__main__":
    main()
