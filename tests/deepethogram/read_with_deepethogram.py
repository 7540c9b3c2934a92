"""Read our groups with DeepEthogram 0.5's own readers (run with ITS python, never imported by our code).

Usage::

    $DEG_PEER_VENV/bin/python tests/deepethogram/read_with_deepethogram.py PROJECT GROUP OUT.json

For every video of the project: the groups ``projects.import_outputfile`` lists (its GUI's predictions drop-down)
and the probabilities and thresholds it reads from ``GROUP`` when that one is picked; then its
``postprocess_and_save`` with ``sequence.output_name=GROUP``, which writes ``<video>_predictions.csv`` with its own
postprocessor (the project's ``postprocessor`` settings). Written to OUT.json for the parity test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    from deepethogram import projects
    from deepethogram.configuration import make_postprocessing_cfg
    from deepethogram.postprocessing import postprocess_and_save

    project, group, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    records = projects.get_records_from_datadir(str(project / "DATA"))
    result = {}
    for name, record in records.items():
        outputs = projects.import_outputfile(str(project), record["output"], latent_name=group)
        probabilities, thresholds, _, keys = outputs
        result[name] = {"keys": keys, "probabilities": probabilities.tolist(), "thresholds": thresholds.tolist()}
    cfg = make_postprocessing_cfg(str(project))
    cfg.sequence.output_name = group
    postprocess_and_save(cfg)
    # Its postprocessor on probabilities that switch often (bouts and gaps of 1-60 frames, around the minimum bout
    # lengths, plus noise): a harder comparison than the tiny model's nearly constant outputs.
    import numpy as np
    from deepethogram.postprocessing import get_postprocessor_from_cfg

    rng = np.random.default_rng(0)
    k = len(result[next(iter(result))]["thresholds"])
    columns = []
    for _ in range(k):
        levels = np.repeat(rng.uniform(0, 1, 200), rng.integers(1, 60, 200))[:3000]
        columns.append(np.clip(levels + rng.normal(scale=0.05, size=levels.shape), 0, 1))
    probabilities = np.stack(columns, axis=1).astype(np.float32)
    thresholds = np.asarray(result[next(iter(result))]["thresholds"], np.float32)
    decisions = get_postprocessor_from_cfg(cfg, thresholds)(probabilities)
    result["_random"] = {"probabilities": probabilities.tolist(), "decisions": decisions.astype(int).tolist()}
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
