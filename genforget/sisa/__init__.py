"""SISA exact unlearning over LoRA shards (Bourtoule et al. 2021, "Machine Unlearning", IEEE S&P).

The fine-tune is split into S shard adapters over one frozen base, each trained on its shard's
records in R cumulative, checkpointed slices; deleting a record retrains only its shard from the
checkpoint before the record's slice, which gives exactly the model that training without the
record would have given::

    from genforget import sisa
    ens = sisa.train(model, tokenizer, records, n_shards=4, n_slices=2, output_dir="runs/sisa")
    stats = ens.delete(["id-17", "id-42"])
    genforget.evaluate(ens.model(), ens.tokenizer, forget, retain)

``peft`` is imported only when an ensemble is trained or loaded.
"""

from genforget.sisa.aggregate import ShardMixtureLM
from genforget.sisa.ensemble import SisaEnsemble, load, train
from genforget.sisa.shards import Manifest, SisaConfig, corpus_records, id_hash

__all__ = [
    "Manifest",
    "ShardMixtureLM",
    "SisaConfig",
    "SisaEnsemble",
    "corpus_records",
    "id_hash",
    "load",
    "train",
]
