SHELL := /bin/bash
# genforget: every target that runs code first makes .venv and installs into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tiny models run fastest on one thread; two processes with two threads each crawl on 2 cores.
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo demo-diffusion demo-diffusion-sd demo-diffusion-copyright demo-image-copyright demo-request demo-copyright demo-poison demo-bias \
	test test-slow lint clean-demo clean-demo-diffusion clean-demo-diffusion-sd clean-demo-diffusion-copyright clean-demo-image-copyright clean-demo-request \
	clean-demo-poison clean-demo-bias eval bench bench-locate bench-robust docs config-docs wheel-check

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first and pinned: the CPU wheel of this exact version lies on disk; a looser pin pulls a
# multi-GB CUDA build. pyproject.toml itself only asks for a range.
# DeepSpeed (extra `distributed`, for the ZeRO tests) ships as an sdist whose build imports torch:
# built against the pinned one, no ops compiled ahead (on the CPU it builds its one op on first use).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	DS_BUILD_OPS=0 $(BIN)/pip install -q --no-build-isolation "deepspeed>=0.16"
	$(BIN)/pip install -q -e ".[dev,docs,quant,diffusion,image,scale,ray,distributed,tracking,lmeval]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python recipes/demo.py --config recipes/configs/demo.yaml

# Digits DDPM (trained once, cached in runs/demo-diffusion/victim) -> erase digit 0 -> judge.
demo-diffusion: $(STAMP)
	$(BIN)/python recipes/demo_diffusion.py --config recipes/configs/demo_diffusion.yaml

# Tiny latent Stable Diffusion pipeline on shapes captions (victim + retrain oracle cached in
# runs/demo-diffusion-sd) -> erase one caption with the shipped concept config, keep the others ->
# reload the saved pipeline and generate -> judge before / after.
demo-diffusion-sd: $(STAMP)
	$(BIN)/genforget demo diffusion-sd --config recipes/configs/esd_concept.yaml

# Image copyright takedown: a tiny text-to-image model memorises four photographs shipped in
# scikit-image / scikit-learn (victim + retrain oracle cached in runs/demo-diffusion-copyright) ->
# locate the rights-holder's JPEG among the training images -> unlearn its caption -> extraction
# vs the oracle, attacks (paraphrase, optimised condition, relearning) -> certificate + ledger.
demo-diffusion-copyright: $(STAMP)
	$(BIN)/genforget demo diffusion-copyright --config recipes/configs/demo_diffusion_copyright.yaml

# The same demo under its first name.
demo-image-copyright: demo-diffusion-copyright

# Tiny Shakespeare: memorise 9 plays, take The Tempest down with every LM method, vs the retrained oracle.
demo-copyright: $(STAMP)
	$(BIN)/python recipes/demo_copyright.py --config recipes/configs/demo_copyright.yaml

# Poisoning defence: a backdoor in 4 % of the built-in bios -> victim (cached in
# runs/demo-poison/victim) -> locate by the trigger -> unlearn the payload -> 4-bit / relearn audits.
demo-poison: $(STAMP)
	$(BIN)/python recipes/demo_poison.py --config recipes/configs/demo_poison.yaml

# Bias mitigation: loan decisions, a fifth decided by nationality -> victim and oracle (cached in
# runs/demo-bias) -> a kind: association request locates the slice by the fair rule -> unlearn ->
# certificate -> counterfactual flips, parity, accuracy on held-out applicants + relearn audit.
demo-bias: $(STAMP)
	$(BIN)/genforget demo bias --config recipes/configs/demo_bias.yaml

# A deletion request end to end: data -> victim (cached in runs/demo-request/victim) -> request for
# one person -> located records -> unlearning -> verification -> certificate + ledger.
demo-request: $(STAMP)
	$(BIN)/genforget demo request

# make eval MODEL=runs/demo/unlearned SUITE=pii [ORACLE=runs/demo/oracle] [VICTIM=runs/demo/victim] [OUT=dir]
#           [FORGET=forget05] [SCORING=open_unlearning] [SET="any_k=0 audits=[]"] [FORCE=true] [DUMP=true]
SUITE ?= pii
# eval/run.py is named by absolute path so `make -C <repo> eval ...` works from any directory.
eval: $(STAMP)
	@test -n "$(MODEL)" || { echo "usage: make eval MODEL=<dir> [SUITE=pii|tofu|quick|bias_pairs] [ORACLE=<dir>] [VICTIM=<dir>] [FORGET=forget05] [SET=\"key=value ...\"]"; exit 2; }
	$(BIN)/python $(CURDIR)/eval/run.py --model $(MODEL) --suite $(SUITE) \
		$(if $(ORACLE),--oracle $(ORACLE)) $(if $(VICTIM),--victim $(VICTIM)) $(if $(OUT),--output_dir $(OUT)) \
		$(if $(or $(FORGET),$(SCORING),$(SET)),--set $(if $(FORGET),forget_split=$(FORGET)) $(if $(SCORING),scoring=$(SCORING)) $(SET)) \
		$(if $(FORCE),--force $(FORCE)) $(if $(DUMP),--dump_examples $(DUMP))

# Tables (LM quality vs cost, growth, step cost; diffusion methods), JSON in runs/bench/.
# Each table is also kept in runs/bench/<name>.md, headed by the commit it was measured at.
BENCHES = quality_cost robust sisa locate growth step_cost diffusion_methods
bench: $(STAMP)
	set -o pipefail; for b in $(BENCHES); do $(BIN)/python bench/$$b.py | $(BIN)/python bench/stamp.py runs/bench/$$b.md || exit 1; done

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The documentation site (docs/ + mkdocs.yml) into runs/site; --strict: a broken link, an anchor
# that does not exist or a page missing from the nav fails the build.
config-docs: $(STAMP)
	$(BIN)/python -m genforget.cli.config_docs > docs/configuration.md

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# Build the wheel, install it (not editable) into a fresh venv and use it from another directory,
# so a packaging slip (a data file or suite left out of the wheel) fails.
wheel-check: $(STAMP)
	bash .ci/wheel_check.sh $(BIN)/python

lint: $(STAMP)
	$(BIN)/ruff check genforget recipes tests bench eval .ci
	$(BIN)/ruff format --check genforget recipes tests bench eval .ci

clean-demo:
	rm -rf runs/demo

clean-demo-diffusion:
	rm -rf runs/demo-diffusion

clean-demo-diffusion-sd:
	rm -rf runs/demo-diffusion-sd

clean-demo-diffusion-copyright:
	rm -rf runs/demo-diffusion-copyright

clean-demo-image-copyright: clean-demo-diffusion-copyright

clean-demo-request:
	rm -rf runs/demo-request runs/demo-request-data

clean-demo-poison:
	rm -rf runs/demo-poison runs/demo-poison-data

clean-demo-bias:
	rm -rf runs/demo-bias runs/demo-bias-data

# Forgetting that holds: NPO vs its remedies (SAM, NF4-aware, UNDO), relearn curves + 4-bit (~12 min).
# SIZE=large: the same on a 4.2M-parameter victim (trains victim and retrain once, ~30 min; cached).
SIZE ?= demo
bench-robust: $(STAMP)
	$(BIN)/python bench/robust.py --size $(SIZE)

# Locate benchmark: 10-identifier request over 2 M generated records (~450 MB) in parquet and JSONL.gz
# shards (generated once into runs/bench/), 1 and 2 workers, next to a grep byte-scan floor.
bench-locate: $(STAMP)
	$(BIN)/python bench/locate.py
