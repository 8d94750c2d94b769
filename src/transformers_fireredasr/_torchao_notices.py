"""Imported first by the package: torchao (when installed) is imported before transformers imports it, without
its harmless import-time notices (see `quantization.import_torchao_quietly`)."""

from .quantization import import_torchao_quietly

import_torchao_quietly()
