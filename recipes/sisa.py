"""SISA exact unlearning: train S LoRA shard adapters x R slices, or delete records exactly.

    python recipes/sisa.py --config recipes/configs/sisa_pii.yaml
    python recipes/sisa.py --config recipes/configs/sisa_pii.yaml --mode delete --delete pii:forget
    accelerate launch --num_processes 1 recipes/sisa.py --config ...   (one process: shards run in turn)

Every YAML key is a field of SisaScriptArgs or SisaConfig (genforget/sisa); any can be overridden
as --key value.
"""

import sys

from genforget.cli.sisa import main

if __name__ == "__main__":
    sys.exit(main())
