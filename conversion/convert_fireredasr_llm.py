"""Convert an original FireRedASR-LLM release directory to a transformers folder.

    python conversion/convert_fireredasr_llm.py --input_dir FireRedASR-LLM-L --output_dir fireredasr-llm-l [--keep_lora]

Same as `python -m transformers_fireredasr.conversion.llm`.
"""

from transformers_fireredasr.conversion.llm import main

if __name__ == "__main__":
    main()
