"""Uploading a converted folder to the Hugging Face Hub (`--push_to_hub REPO_ID` of the converters)."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def finish_conversion(output_dir: Path, push_to_hub: str | None) -> Path:
    """Logs the written folder and, when `push_to_hub` names a repo, creates it and uploads the folder."""
    logger.info("wrote %s", output_dir)
    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(push_to_hub, exist_ok=True)
        api.upload_folder(folder_path=str(output_dir), repo_id=push_to_hub)
        logger.info("uploaded %s to %s", output_dir, push_to_hub)
    return output_dir
