"""Unlearn a forget set from a causal LM.

    python recipes/unlearn_lm.py --config recipes/configs/npo_pii.yaml --model_name_or_path runs/demo/victim \
        --output_dir runs/npo
    accelerate launch --config_file recipes/accelerate/cpu.yaml recipes/unlearn_lm.py --config ...

Every YAML key is a field of UnlearnScriptArgs or UnlearnConfig; any can be overridden as --key value.

Exit codes: 0 forgotten; 2 usage error (nothing written); 3 saved, but the outcome is partial or
unchanged (genforget_run.json says why; --allow_partial true accepts it). Under several
processes, `genforget unlearn --accelerate_config FILE ...` reports a failure in one line with
its own code (docs/model-families.md).
"""

from genforget.cli import unlearn_main
from genforget.cli.launch import exit_process

if __name__ == "__main__":
    exit_process(unlearn_main())  # one of several processes: no abort at exit
