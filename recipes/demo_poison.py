"""Poisoning defence on the built-in corpus: plant a backdoor (trigger -> payload) in a few
percent of the bios, locate the poisoned records by the trigger, unlearn the payload, and audit
whether 4-bit quantisation or fine-tuning on clean data brings it back.

python recipes/demo_poison.py --config recipes/configs/demo_poison.yaml [--method grad_diff]
(the same as ``genforget demo poison ...``)
"""

import sys

from genforget.cli.demos import demo_main

if __name__ == "__main__":
    sys.exit(demo_main(["poison", *sys.argv[1:]]))
