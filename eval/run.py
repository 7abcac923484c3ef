"""Evaluate saved models on a suite and write report.json / report.md / report.png.

    python eval/run.py --model runs/demo/unlearned --suite pii --oracle runs/demo/oracle --victim runs/demo/victim
    make eval MODEL=runs/demo/unlearned SUITE=pii ORACLE=runs/demo/oracle VICTIM=runs/demo/victim

Several --model dirs are compared side by side (and on a forget-vs-utility scatter).
"""

import sys

from genforget.cli import eval_main

if __name__ == "__main__":
    sys.exit(eval_main())
