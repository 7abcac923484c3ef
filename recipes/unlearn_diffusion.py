"""Erase a class (class-conditional UNet2DModel) or a concept prompt (Stable Diffusion) from a
diffusers model.

    python recipes/unlearn_diffusion.py --config recipes/configs/salun_digits.yaml \
        --model_name_or_path runs/demo-diffusion/victim --output_dir runs/salun-digits
    accelerate launch --config_file recipes/accelerate/cpu.yaml --num_cpu_threads_per_process 1 \
        recipes/unlearn_diffusion.py --config recipes/configs/esd_concept.yaml \
        --model_name_or_path <sd pipeline dir> --concept "Van Gogh style" --output_dir runs/esd

Every YAML key is a field of DiffusionScriptArgs, UnlearnConfig or DiffusionConfig.
"""

from genforget.cli.launch import exit_process
from genforget.cli.unlearn_diffusion import unlearn_diffusion_main

if __name__ == "__main__":
    exit_process(unlearn_diffusion_main())  # one of several processes: no abort at exit
