"""Train the tiny memorising victim (or the retain-only oracle) on the built-in PII corpus.

python recipes/train_victim.py --output_dir runs/victim
python recipes/train_victim.py --output_dir runs/oracle --splits retain --tokenizer_from runs/victim
"""

import sys

from genforget.cli import train_victim_main

if __name__ == "__main__":
    sys.exit(train_victim_main())
