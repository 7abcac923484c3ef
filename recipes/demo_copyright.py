"""Copyright takedown demo on tiny Shakespeare: memorise nine plays, take one down with every LM
method, compare with the retrained oracle (VerbMem / KnowMem / MIA / utility / time).

python recipes/demo_copyright.py --config recipes/configs/demo_copyright.yaml [--takedown "Richard II"]
(the same as ``genforget demo copyright ...``)
"""

import sys

from genforget.cli.demos import demo_main

if __name__ == "__main__":
    sys.exit(demo_main(["copyright", *sys.argv[1:]]))
