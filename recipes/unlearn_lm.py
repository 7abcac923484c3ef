"""Unlearn a forget set from a causal LM.

    python recipes/unlearn_lm.py --config recipes/configs/npo_pii.yaml --model_name_or_path runs/demo/victim \
        --output_dir runs/npo
    accelerate launch --config_file recipes/accelerate/cpu.yaml recipes/unlearn_lm.py --config ...

Every YAML key is a field of UnlearnScriptArgs or UnlearnConfig; any can be overridden as --key value.
"""

import sys

from genforget.cli import unlearn_main

if __name__ == "__main__":
    sys.exit(unlearn_main())
