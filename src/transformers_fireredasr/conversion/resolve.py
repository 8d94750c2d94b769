"""Original FireRedASR release folders wherever a model is named: `resolve_model` converts one once, into a cache.

The FireRedTeam repositories on the Hub hold the original release (`model.pth.tar`, `cmvn.ark`, `dict.txt`, ...),
which `from_pretrained` cannot read. `resolve_model(name_or_path)` returns what it can read: a transformers folder or
Hub id as it is, and for an original folder (local, or a Hub repository fetched with huggingface_hub) its conversion
by `convert_aed` / `convert_llm`, written once into a cache keyed by the source and its revision and reused after.
Every entry point that takes a model name (`fireredasr-transcribe`, archive runs, `fireredasr-serve`, the Ray recipe)
calls it where it loads the model.

Cache: `$FIREREDASR_CACHE`, else `~/.cache/transformers_fireredasr/converted`; one folder per source, one subfolder
per revision (a Hub commit, or a fingerprint of a local folder's file names, sizes and modification times, so that a
changed folder converts again and its outdated copy is removed). A conversion is written to a temporary folder and
renamed into place under a file lock: a killed conversion leaves no half copy, and processes converting the same
source at once convert it once.

Only the standard library is imported here at module level, so `import transformers_fireredasr` stays as fast.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

CACHE_VARIABLE = "FIREREDASR_CACHE"
# The published original releases: transformers finds no config.json there (see `original_format_error`).
ORIGINAL_HUB_REPOS = (
    "FireRedTeam/FireRedASR-AED-L",
    "FireRedTeam/FireRedASR-LLM-L",
    "FireRedTeam/FireRedASR2-AED",
    "FireRedTeam/FireRedASR2-LLM",
    "FireRedTeam/FireRedPunc",
    "FireRedTeam/FireRedLID",
    "FireRedTeam/FireRedVAD",
)
# The Hub's FireRedASR-LLM repositories leave out the language model, which the original code expects linked in.
BASE_LLM_REPO = "Qwen/Qwen2-7B-Instruct"
CONVERTERS = {
    "aed": "conversion/convert_fireredasr_aed.py",
    "llm": "conversion/convert_fireredasr_llm.py",
    "punc": "conversion/convert_fireredpunc.py",
    "lid": "conversion/convert_fireredlid.py",
    "vad": "conversion/convert_fireredvad.py",
}
_COMMIT = re.compile(r"[0-9a-f]{40}")


class OriginalFormatError(OSError):
    """Raised by transformers' loaders for an original FireRedASR release, which only a conversion makes loadable."""


def cache_root() -> Path:
    """Where converted copies go: `$FIREREDASR_CACHE`, else `~/.cache/transformers_fireredasr/converted`."""
    root = os.environ.get(CACHE_VARIABLE)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "transformers_fireredasr" / "converted"


def original_kind(folder: str | os.PathLike[str]) -> str | None:
    """`"llm"`, `"aed"` or `"punc"` when `folder` holds the files the LLM, AED or FireRedPunc converter reads, else
    None (a folder with `config.json` is a transformers folder). The FireRedASR2 variants are told apart later, by
    the converters."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / "config.json").is_file():
        return None
    from .aed import AED_FILES, check_input_dir
    from .llm import LLM_FILES
    from .punc import is_punc_folder

    if is_punc_folder(folder):
        return "punc"
    from .lid import is_lid_folder

    if is_lid_folder(folder):
        return "lid"
    from .vad import is_vad_folder, release_variant

    if is_vad_folder(folder) or release_variant(folder) is not None:
        return "vad"

    for kind, names in (("llm", LLM_FILES), ("aed", AED_FILES)):  # LLM first: its asr_encoder.pth.tar decides
        try:
            check_input_dir(folder, names)
        except FileNotFoundError:
            continue
        return kind
    return None


def folder_revision(folder: str | os.PathLike[str]) -> str:
    """A fingerprint of the file names, sizes and modification times under `folder` (linked folders followed, as
    the original's `Qwen2-7B-Instruct` link): cheap for multi-GB checkpoints, and changed by any edit."""
    entries = []
    for directory, _, files in os.walk(folder, followlinks=True):
        for name in files:
            path = Path(directory, name)
            stat = path.stat()
            entries.append(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n")
    return hashlib.sha256("".join(sorted(entries)).encode()).hexdigest()[:16]


def resolve_model(name_or_path: str | os.PathLike[str], revision: str | None = None) -> str:
    """What `from_pretrained` / `pipeline(model=...)` can load for a model folder or Hub id.

    A transformers folder or Hub repository (with `config.json`) comes back unchanged (a Hub repository asked for at
    a `revision` as its downloaded snapshot folder). An original FireRedASR release (v1 or v2, AED or LLM) is
    converted once into the cache (see the module doc), with one line on stderr, and the converted folder is returned;
    later calls return that folder without converting. `revision` (a branch, tag or commit) is for Hub ids only.
    """
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        if revision is not None:
            raise ValueError(f"revision={revision!r} is for Hub ids; {name} is a local folder")
        kind = original_kind(name)
        if kind is None:
            return name
        folder = Path(name).resolve()
        return str(_converted(kind, folder, f"local:{folder}", folder_revision(folder), folder.name, local=True))
    if not _is_hub_id(name):
        # transformers would call this a malformed repository id; what the user meant is a folder
        raise FileNotFoundError(f"no model folder {name} (and it is not a Hub id such as 'namespace/name')")
    folder = _download(name, revision)
    kind = original_kind(folder)
    if kind is None:
        return name if revision is None else str(folder)
    commit = folder.name if _COMMIT.fullmatch(folder.name) else folder_revision(folder)
    return str(_converted(kind, folder, f"hub:{name}", commit, name.replace("/", "--"), local=False))


def original_format_error(name_or_path: object) -> OriginalFormatError | None:
    """The error transformers' config loading should raise for `name_or_path` when it names an original release (a
    local folder, or one of the published FireRedTeam repositories), else None."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        return None
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        kind = original_kind(name)
        if kind is None:
            return None
        family = {"punc": "FireRedPunc", "vad": "FireRedVAD"}.get(kind, f"FireRedASR-{kind.upper()}")
        family = "FireRedLID" if kind == "lid" else family
        what = f"{name} is an original {family} release folder (no config.json)"
    elif name in ORIGINAL_HUB_REPOS:
        kind = "punc" if "Punc" in name else "vad" if "VAD" in name else "llm" if "LLM" in name else "aed"
        kind = "lid" if name.endswith("FireRedLID") else kind
        what = f"{name} holds the original FireRedASR release on the Hub (model.pth.tar, no config.json)"
    else:
        return None
    if kind == "vad":
        return OriginalFormatError(
            f"{what}, which transformers cannot load as it is. `transformers_fireredasr.vad.FireRedVadDetector."
            f"from_pretrained({name!r})` converts it once (cached and reused), as does "
            f"`transformers_fireredasr.resolve_model({name!r})`, which returns the converted folder, or "
            f"`python {CONVERTERS[kind]} --input_dir DIR --output_dir OUT`."
        )
    if kind == "lid":
        return OriginalFormatError(
            f"{what}, which transformers cannot load as it is. `transformers_fireredasr.resolve_model({name!r})` "
            "converts it once (cached and reused) and returns the converted folder to pass to from_pretrained or "
            f"pipeline('audio-classification', ...), as does `python {CONVERTERS[kind]} --input_dir DIR --output_dir "
            "OUT`; --lid-model takes the original folder or Hub id directly."
        )
    if kind == "punc":
        return OriginalFormatError(
            f"{what}, which transformers cannot load as it is. `transformers_fireredasr.punctuation.Punctuator."
            f"from_pretrained({name!r})` converts it once (cached and reused), as does "
            f"`transformers_fireredasr.resolve_model({name!r})`, which returns the converted folder, or "
            f"`python {CONVERTERS[kind]} --input_dir DIR --output_dir OUT`."
        )
    return OriginalFormatError(
        f"{what}, which transformers cannot load as it is. Convert it once with "
        f"`transformers_fireredasr.resolve_model({name!r})`, which returns a converted folder (cached and reused) to "
        f"pass to from_pretrained or pipeline, or with `python {CONVERTERS[kind]} --input_dir DIR --output_dir OUT` "
        f"({CONVERTERS['aed']} for FireRedASR-AED, {CONVERTERS['llm']} for FireRedASR-LLM). fireredasr-transcribe "
        "and fireredasr-serve take the original folder or Hub id as --model directly."
    )


def _is_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith(("~", ".")) or os.path.isabs(name):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _download(repo_id: str, revision: str | None) -> Path:
    """The repository's snapshot folder in the Hugging Face cache (downloaded unless it is there)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except Exception as error:
        raise OSError(
            f"{repo_id} is not a local folder, and downloading it from the Hub failed: {type(error).__name__}: {error}"
        ) from error


def _converted(kind: str, folder: Path, source: str, revision: str, label: str, local: bool) -> Path:
    """The cached conversion of `folder` (an original release of `kind`), converting it first if needed."""
    from filelock import FileLock

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label)
    entry = cache_root() / f"{slug}-{hashlib.sha256(source.encode()).hexdigest()[:12]}"
    target = entry / revision
    if (target / "config.json").is_file():
        print(f"using the converted copy of {folder} at {target}", file=sys.stderr)
        return target
    entry.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{entry}.lock"):
        if (target / "config.json").is_file():  # another process converted it while this one waited
            print(f"using the converted copy of {folder} at {target}", file=sys.stderr)
            return target
        for leftover in [*entry.glob(".tmp-*"), target]:  # killed conversions (the lock says none is running)
            shutil.rmtree(leftover, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry))
        try:
            source_dir = folder
            if kind == "llm" and not local and not (folder / "Qwen2-7B-Instruct").exists():
                source_dir = _with_base_llm(folder, scratch / "source")
            converted = _convert(kind, source_dir, scratch / "converted")
            os.rename(converted, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if local:  # the folder changed: copies of its earlier states are outdated
            for old in entry.iterdir():
                if old != target and not old.name.startswith("."):
                    shutil.rmtree(old, ignore_errors=True)
    print(
        f"converted the original {_family(target)} folder {folder} into {target} (done once; reused from now on)",
        file=sys.stderr,
    )
    return target


def _convert(kind: str, source: Path, output: Path) -> Path:
    if kind == "lid":
        from .lid import convert_lid

        return Path(convert_lid(source, output))
    if kind == "vad":
        from .vad import convert_vad

        return Path(convert_vad(source, output))
    if kind == "punc":
        from .punc import convert_punc

        return Path(convert_punc(source, output))
    if kind == "llm":
        from .llm import convert_llm

        return Path(convert_llm(source, output))
    from .aed import convert_aed

    return Path(convert_aed(source, output))


def _with_base_llm(folder: Path, staging: Path) -> Path:
    """`folder`'s files linked into `staging` beside `Qwen2-7B-Instruct`, downloaded from the Hub, as the original
    code's instructions link it in."""
    from .llm import LLM_DIR

    staging.mkdir()
    for item in folder.iterdir():
        (staging / item.name).symlink_to(item.resolve(), target_is_directory=item.is_dir())
    (staging / LLM_DIR).symlink_to(_download(BASE_LLM_REPO, None), target_is_directory=True)
    return staging


def _family(converted: Path) -> str:
    """The family the converter chose the model card by (it tells the versions apart): "FireRedASR2-AED", ..."""
    from .hub import MODEL_CARDS, model_card_text
    from .punc import PUNC_CARD, punc_card_text

    card = (converted / "README.md").read_text("utf-8") if (converted / "README.md").is_file() else ""
    if card == punc_card_text():
        return PUNC_CARD
    from .lid import LID_CARD, lid_card_text

    if card == lid_card_text():
        return LID_CARD
    from .vad import VAD_CARD, vad_card_text

    if card == vad_card_text():
        return VAD_CARD
    return next((name.removesuffix("-L") for name in MODEL_CARDS if model_card_text(name) == card), "FireRedASR")


__all__ = [
    "CACHE_VARIABLE",
    "OriginalFormatError",
    "cache_root",
    "folder_revision",
    "original_format_error",
    "original_kind",
    "resolve_model",
]
