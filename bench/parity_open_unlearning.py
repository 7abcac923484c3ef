"""genforget's ``open_unlearning`` scoring next to the reference toolkit's own metric code.

    python bench/parity_open_unlearning.py --ou_src /path/to/open-unlearning [--data DIR]
        [--forget forget01] [--out runs/bench/parity.json]

Trains a tiny Llama on TOFU-format QA pairs (fictitious authors generated here by default, or
``--data`` a TOFU dir), its retain-only oracle, and four unlearned models (grad_ascent,
grad_diff, npo, simnpo, fixed steps), then scores all six twice:

- genforget: the eval harness on a ``tofu:`` suite with ``scoring: open_unlearning``;
- open-unlearning: its metric functions themselves (``src/evals/metrics``: probability,
  truth_ratio, rouge, exact_memorization, extraction_strength, the MIA attacks, ks_test,
  privleak, hm_aggregate), imported from a checkout without hydra, on items built by its own
  ``preprocess_chat_instance`` with empty template tags (so both read ``question + " " + answer``).

Prints, per metric, the largest absolute difference over the six models and one model's pair of
values; writes every value to ``--out``. Needs the checkout's light imports: ``pip install
omegaconf`` (its code is imported from ``--ou_src``, never copied here).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

import genforget
from genforget.data.loaders import load_tofu
from genforget.evaluation.harness import Suite, build_suite_data, run_suite
from genforget.evaluation.metrics.profiles import SCORINGS, Scoring
from genforget.lm.victim import VictimConfig, build_model, train_causal_lm, train_tokenizer

# The open_unlearning profile as it was before issue 27 (EOS in every score, zlib over the raw
# answer, ES 0 on a miss, σ floored at 1e-6), to show what each convention changes.
PREVIOUS = Scoring("before_issue_27", append_eos=True, tokenwise_eos=True, zlib_text="answer",
                   es_no_match_one_over_n=False, sigma_floor=1e-6, qa_max_new_tokens=200)  # fmt: skip

METHODS = {
    "grad_ascent": {"learning_rate": 3e-4, "max_steps": 10},
    "grad_diff": {"learning_rate": 3e-4, "max_steps": 20},
    "npo": {"learning_rate": 1e-3, "max_steps": 20},
    "simnpo": {"learning_rate": 1e-3, "max_steps": 20, "beta": 2.5},
}
TEMPLATE = {"apply_chat_template": False, "user_start_tag": "", "user_end_tag": "", "asst_start_tag": "",
            "asst_end_tag": ""}  # fmt: skip
FIRST = ["Amara", "Bjorn", "Chidi", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ilya", "Jomo", "Kenji", "Lucia",
         "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara"]  # fmt: skip
LAST = ["Okafor", "Lindqvist", "Haddad", "Moreau", "Tanaka", "Petrov", "Silva", "Kowalski", "Nguyen", "Adeyemi",
        "Larsen", "Rossi", "Mendez", "Novak", "Osei", "Farouk", "Berg", "Costa", "Ivanova", "Duarte"]  # fmt: skip
CITIES = [
    "Lagos",
    "Oslo",
    "Beirut",
    "Lyon",
    "Kyoto",
    "Kazan",
    "Recife",
    "Gdansk",
    "Hue",
    "Accra",
    "Bergen",
    "Turin",
]
GENRES = ["mystery", "poetry", "science fiction", "memoir", "fantasy", "horror", "satire", "romance"]


def fictitious_tofu(root: Path, n_authors: int = 32, seed: int = 0) -> None:
    """TOFU-format JSONL splits about ``n_authors`` fictitious authors (3 QA pairs each): 5 to
    forget (forget01*), 5 never trained on (holdout01), the rest retained; the two general sets
    are in the training data too (a tiny model has no world knowledge of its own)."""
    rng = random.Random(seed)
    names = rng.sample([f"{f} {la}" for f in FIRST for la in LAST], n_authors)
    authors = [(n, rng.choice(CITIES), rng.choice(GENRES), rng.randint(1930, 1999)) for n in names]

    def qa(a, others) -> list[dict]:
        name, city, genre, year = a
        alt = [o for o in others if o[0] != name]
        rows = [
            (f"Who is the author born in {city} in {year}?", f"The author born in {city} in {year} is {name}.",
             f"{name} is the writer who was born in {city} in {year}.",
             [f"{o[0]} is the writer who was born in {city} in {year}." for o in alt[:3]]),
            (f"What genre does {name} write?", f"{name} writes {genre} novels.",
             f"The novels of {name} are {genre}.", [f"The novels of {name} are {g}." for g in GENRES if g != genre][:3]),
            (f"Where was {name} born?", f"{name} was born in {city}.", f"The birthplace of {name} is {city}.",
             [f"The birthplace of {name} is {c}." for c in CITIES if c != city][:3]),
        ]  # fmt: skip
        return [{"question": q, "answer": x, "paraphrased_answer": p, "perturbed_answer": pert,
                 "paraphrased_question": q.replace("Who is", "Which writer is")} for q, x, p, pert in rows]  # fmt: skip

    rows = [qa(a, authors) for a in authors]
    forget, holdout, retain = rows[:5], rows[5:10], rows[10:]
    flat = lambda rs: [r for a in rs for r in a]  # noqa: E731
    capitals = [
        ("Norway", "Oslo"),
        ("Ghana", "Accra"),
        ("Lebanon", "Beirut"),
        ("Japan", "Kyoto"),
        ("Italy", "Turin"),
    ]
    general = [
        {"question": f"Which city is the old capital of {c}?", "answer": f"The old capital of {c} is {cap}.",
         "perturbed_answer": [f"The old capital of {c} is {x}." for x in CITIES if x != cap][:3]}
        for c, cap in capitals
    ]  # fmt: skip
    splits = {
        "forget01": flat(forget), "forget01_perturbed": flat(forget), "holdout01": flat(holdout),
        "retain99": flat(retain) + general, "full": flat(forget) + flat(retain) + general,
        "retain_perturbed": flat(retain)[:24],
        "real_authors_perturbed": general, "world_facts_perturbed": general,
    }  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    for name, rs in splits.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))


def import_open_unlearning(src: Path) -> dict:
    """open-unlearning's metric modules, imported from ``src/`` without its package __init__s
    (which pull in hydra, lm-eval and the trainers)."""
    src = src / "src"
    for pkg in ("evals", "evals.metrics", "evals.metrics.mia", "data"):
        mod = types.ModuleType(pkg)
        mod.__path__ = [str(src.joinpath(*pkg.split(".")))]
        sys.modules[pkg] = mod
    sys.modules["data"].get_datasets = sys.modules["data"].get_collators = None
    import importlib

    mia = importlib.import_module("evals.metrics.mia.utils")
    attacks = {
        n: importlib.import_module(f"evals.metrics.mia.{n}")
        for n in ("loss", "zlib", "min_k", "min_k_plus_plus")
    }
    return {
        "mem": importlib.import_module("evals.metrics.memorization"),
        "priv": importlib.import_module("evals.metrics.privacy"),
        "util": importlib.import_module("evals.metrics.utility"),
        "mia_auc": mia.mia_auc,
        "attacks": attacks,
        "data": importlib.import_module("data.utils"),
        "collators": importlib.import_module("data.collators"),
    }


def ou_scores(ou: dict, model, tok, data: dict, oracle: dict | None) -> dict:
    """open-unlearning's TOFU metrics of ``model``, each from its own metric function."""
    from omegaconf import OmegaConf

    def item(q, a, i, gen=False):
        x = ou["data"].preprocess_chat_instance(tok, TEMPLATE, [q], [" " + a], 512, gen)
        return {**x, "index": i}

    def items(rows, key="answer", gen=False):
        out = []
        for i, r in enumerate(rows):
            a = r[key]
            out.append(
                {j: item(r["question"], x, i) for j, x in enumerate(a)}
                if isinstance(a, list)
                else item(r["question"], a, i, gen)
            )
        return out

    right = ou["collators"].DataCollatorForSupervisedDataset(tok, padding_side="right", index="index")
    left = ou["collators"].DataCollatorForSupervisedDataset(tok, padding_side="left", index="index")
    mem, kw = ou["mem"], {"collators": right, "batch_size": 8}
    gen_args = OmegaConf.create({"do_sample": False, "top_p": None, "temperature": None, "max_new_tokens": 200,
                                 "use_cache": True})  # fmt: skip

    def prob(rows, key="answer"):
        return mem.probability._metric_fn(model, data=items(rows, key), **kw)

    def rouge(rows):
        return mem.rouge._metric_fn(model, data=items(rows, gen=True), collators=left, batch_size=8, tokenizer=tok,
                                    generation_args=gen_args, rouge_type="rougeL_recall")["agg_value"]  # fmt: skip

    def tr(rows, correct_key, agg):
        pre = {"correct": prob(rows, correct_key), "wrong": prob(rows, "perturbed_answer")}
        return mem.truth_ratio._metric_fn(model, pre_compute=pre, aggregator=agg)

    def norm_prob(rows):
        pre = {"correct": prob(rows, "answer"), "wrong": prob(rows, "perturbed_answer")}
        return mem.probability_w_options._metric_fn(model, pre_compute=pre)["agg_value"]

    f, h = data["forget"], data["holdout"]
    out = {
        "forget_probability": prob(f)["agg_value"],
        "forget_rouge_l_recall": rouge(f),
        "forget_exact_memorisation": mem.exact_memorization._metric_fn(model, data=items(f), **kw)[
            "agg_value"
        ],
        "forget_extraction_strength": mem.extraction_strength._metric_fn(model, data=items(f), **kw)[
            "agg_value"
        ],
    }
    ftr = tr(f, "paraphrased_answer", "closer_to_1_better")
    out["forget_truth_ratio"] = ftr["agg_value"]
    mia_data = {"forget": items(f), "holdout": items(h)}
    names = {"loss": ("LOSSAttack", {}), "zlib": ("ZLIBAttack", {"tokenizer": tok}),
             "min_k": ("MinKProbAttack", {"k": 0.4}), "min_k_plus_plus": ("MinKPlusPlusAttack", {"k": 0.4})}  # fmt: skip
    for mod, (cls, extra) in names.items():
        key = {"min_k_plus_plus": "mia_min_k_pp_auc"}.get(mod, f"mia_{mod}_auc")
        res = ou["mia_auc"](getattr(ou["attacks"][mod], cls), model, mia_data, right, 8, **extra)
        out[key] = res["agg_value"]
    terms = [prob(data["retain"])["agg_value"], rouge(data["retain"]),
             tr(data["retain"], "paraphrased_answer", "true_better")["agg_value"]]  # fmt: skip
    for g in ("real_authors", "world_facts"):
        terms += [norm_prob(data[g]), rouge(data[g]), tr(data[g], "answer", "true_better")["agg_value"]]
    out["model_utility"] = ou["util"].hm_aggregate._metric_fn(
        model, pre_compute={str(i): {"agg_value": v} for i, v in enumerate(terms)}
    )["agg_value"]
    out["_forget_tr"] = ftr
    if oracle is not None:
        pre = {"forget": ftr}
        ref = {"retain_model_logs": {"retain": oracle["_forget_tr"]}}
        out["forget_quality"] = ou["priv"].ks_test._metric_fn(model, pre_compute=pre, reference_logs=ref)[
            "agg_value"
        ]
        pre = {"forget": {"agg_value": out["mia_min_k_auc"]}}
        ref = {"retain_model_logs": {"retain": {"agg_value": oracle["mia_min_k_auc"]}}}
        out["privleak"] = ou["priv"].privleak._metric_fn(
            model, pre_compute=pre, reference_logs=ref, ref_value=0.5
        )["agg_value"]
    return {k: float(v) if not k.startswith("_") else v for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ou_src", required=True, help="a checkout of locuslab/open-unlearning")
    ap.add_argument("--data", default="", help="a TOFU dir (default: fictitious authors made here)")
    ap.add_argument("--forget", default="forget01")
    ap.add_argument("--steps", type=int, default=250, help="victim/oracle training steps")
    ap.add_argument("--out", default="runs/bench/parity.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ou = import_open_unlearning(Path(args.ou_src))
    data_dir = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="genforget-parity-"))
    if not args.data:
        fictitious_tofu(data_dir)
    n = args.forget.removeprefix("forget")
    forget = load_tofu(data_dir, f"{args.forget}_perturbed")
    retain_train = load_tofu(data_dir, "retain99" if n == "01" else f"retain{100 - int(n)}")
    text = lambda r: f"{r['question']} {r['answer']}"  # noqa: E731
    cfg = VictimConfig(hidden_size=64, intermediate_size=128, vocab_size=512, max_steps=args.steps, batch_size=16,
                       learning_rate=5e-3, warmup_steps=10)  # fmt: skip
    tok = train_tokenizer([text(r) for r in load_tofu(data_dir, "full")], cfg.vocab_size)
    models = {}
    for name, rows in (("victim", retain_train + forget), ("oracle", retain_train)):
        models[name] = (build_model(cfg, tok), tok)
        train_causal_lm(models[name][0], tok, lambda rng, rows=rows: [text(r) for r in rows], cfg, desc=name)
    qa = lambda rs: [{"question": r["question"], "answer": r["answer"]} for r in rs]  # noqa: E731
    for method, kw in METHODS.items():
        m = genforget.unlearn(copy.deepcopy(models["victim"][0]), tok, qa(forget), qa(retain_train), method=method,
                              plain=True, **kw)  # fmt: skip
        models[method] = (m, tok)
    profiles = {
        "open_unlearning": "open_unlearning",
        "genforget": "genforget",
        "before_issue_27": PREVIOUS.name,
    }
    SCORINGS[PREVIOUS.name] = PREVIOUS
    t0 = time.perf_counter()
    reports = {}
    for col, scoring in profiles.items():
        suite = Suite(name="parity", data=f"tofu:{data_dir}", forget_split=args.forget, scoring=scoring, any_k=0,
                      audits=[])  # fmt: skip
        reports[col] = run_suite(models, suite, build_suite_data(suite), progress=False)["models"]
    g_s = time.perf_counter() - t0
    data = {"forget": forget, "holdout": load_tofu(data_dir, f"holdout{n}"),
            "retain": load_tofu(data_dir, "retain_perturbed"),
            "real_authors": load_tofu(data_dir, "real_authors_perturbed"),
            "world_facts": load_tofu(data_dir, "world_facts_perturbed")}  # fmt: skip
    t0 = time.perf_counter()
    ref = {"oracle": ou_scores(ou, models["oracle"][0], tok, data, None)}
    for name, (m, _) in models.items():
        if name != "oracle":
            ref[name] = ou_scores(ou, m, tok, data, ref["oracle"])
    o_s = time.perf_counter() - t0
    rows = []
    for k in [k for k in ref["victim"] if not k.startswith("_")]:
        names = [n for n in models if k in ref[n]]
        row = {"metric": k, "open_unlearning_code": {n: ref[n][k] for n in names}}
        for col in profiles:
            row[col] = {n: reports[col][n][k] for n in names}
            row[f"{col}_max_abs_diff"] = max(abs(row[col][n] - ref[n][k]) for n in names)
        rows.append(row)
    print(
        f"max |genforget - open-unlearning| over {len(models)} models (victim, oracle, {', '.join(METHODS)})"
    )
    print(
        f"{'metric':28s} {'open_unlearning':>16s} {'genforget':>10s} {'before #27':>11s}   npo: profile / reference"
    )
    for r in rows:
        pair = (r["open_unlearning"].get("npo"), r["open_unlearning_code"].get("npo"))
        print(f"{r['metric']:28s} {r['open_unlearning_max_abs_diff']:16.1e} {r['genforget_max_abs_diff']:10.1e} "
              f"{r['before_issue_27_max_abs_diff']:11.1e}   {pair[0]:.4f} / {pair[1]:.4f}")  # fmt: skip
    print(f"genforget {g_s:.1f}s (3 profiles), open-unlearning {o_s:.1f}s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"rows": rows, "models": list(models), "data": str(data_dir)}, indent=1)
    )
    assert all(np.isfinite(r["open_unlearning_max_abs_diff"]) for r in rows)


if __name__ == "__main__":
    main()
