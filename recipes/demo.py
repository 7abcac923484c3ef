"""Offline demo: memorise the built-in fictitious-PII corpus, forget 10 % of it, verify.

python recipes/demo.py --config recipes/configs/demo.yaml [--method simnpo] [--use_lora true]
(the same as ``genforget demo pii ...``)
"""

import sys

from genforget.cli.demos import demo_main

if __name__ == "__main__":
    sys.exit(demo_main(["pii", *sys.argv[1:]]))
