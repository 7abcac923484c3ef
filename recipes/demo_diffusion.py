"""Offline diffusion demo: train a digits DDPM (cached), erase one digit, judge before / after.

python recipes/demo_diffusion.py --config recipes/configs/demo_diffusion.yaml [--method esd] [--use_lora true]
(the same as ``genforget demo diffusion ...``)
"""

import sys

from genforget.cli.demos import demo_main

if __name__ == "__main__":
    sys.exit(demo_main(["diffusion", *sys.argv[1:]]))
