"""Run by wheel_check.sh inside a fresh venv holding the installed wheel, from a temp dir."""

import json
import subprocess
import sys
from pathlib import Path

import genforget
from genforget.data.packaged import shakespeare_text, tofu_split
from genforget.data.pii import build_pii_corpus
from genforget.lm.victim import VictimConfig, build_model, train_tokenizer

repo = Path(sys.argv[1]).resolve()
where = Path(genforget.__file__).resolve()
assert repo not in where.parents, f"genforget imported from the repository ({where}), not the wheel"

corpus = build_pii_corpus(n_people=20, n_passages=10, forget_frac=0.2, seed=0)
tok = train_tokenizer([p.bio()["text"] for p in corpus.people], 300)
model = build_model(VictimConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4), tok)
model.save_pretrained("tiny")
tok.save_pretrained("tiny")

# The packaged suite and data, found from a directory that holds no repository file.
cmd = [
    str(Path(sys.executable).parent / "genforget"),
    "eval",
    "--model",
    "tiny",
    "--suite",
    "pii",
    "--output_dir",
    "eval-out",
]
cmd += ["--set", "any_k=0", "audits=[]", "n_people=20", "n_passages=10", "forget_frac=0.2"]
subprocess.run(cmd, check=True)
report = json.loads(Path("eval-out/report.json").read_text())
assert "forget_pii_extraction" in report["models"]["tiny"], sorted(report["models"]["tiny"])
assert len(tofu_split("forget01")) == 40
assert shakespeare_text().startswith("First Citizen:")

before = [p.detach().clone() for p in model.parameters()]
out = genforget.unlearn(
    model,
    tok,
    corpus.unlearn_examples("forget"),
    corpus.full_text_examples("retain"),
    max_steps=2,
    learning_rate=1e-2,
    calibration=False,
)
assert any(not (a == b.detach()).all() for a, b in zip(before, out.parameters(), strict=True)), (
    "unlearn changed nothing"
)
print("wheel smoke: eval --suite pii, packaged data and genforget.unlearn ran from", where.parent)
