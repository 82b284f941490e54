"""The ``pricer`` command: price products from their text, list the models, compare experiments.

    pricer predict "Title: Cordless drill, 20V ..."         # each argument is one product
    printf '%s\\n' "red lamp" "steel drill" | pricer predict  # stdin: one product per line
    pricer predict --input-format text < product.txt         # stdin: the whole input is one product
    pricer predict -i items.csv -o prices.csv                 # CSV / JSONL / JSON / parquet file
    pricer models                                             # what is in models/
    pricer compare half-lr                                    # an experiment against HEAD, with intervals

Modules: ``app`` (parser, logging, errors and exit status), one per command (``predict``,
``models``, ``compare``), ``readers`` and ``writers`` (the file formats of ``predict``).
"""

from __future__ import annotations

from pricer.cli.app import main

__all__ = ["main"]
