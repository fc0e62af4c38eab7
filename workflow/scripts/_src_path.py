"""Make this clone's src/ the first place Python imports mi_oracle from, for every script job.

Snakemake appends the clone's src/ to sys.path, and an environment with an editable install of
another checkout lists that checkout's src/ earlier: moving ours to the front makes the job run
the code of the workflow it belongs to, in --sdm conda environments too.
"""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
while SRC in sys.path:
    sys.path.remove(SRC)
sys.path.insert(0, SRC)
