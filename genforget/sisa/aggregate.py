"""The S shard adapters as one causal LM that ``genforget.evaluation.evaluate`` and the harness accept.

``mixture`` (SISA's aggregation): the next-token distribution is the average of the shards'
distributions, ``p(x) = (1/S) sum_k p_k(x)``; the returned ``logits`` are ``log p`` (a valid
input to softmax/cross-entropy, which renormalise to the same ``p``). It costs S forwards of the
adapted model per call. ``merged``: one forward through the average of the shards' weight deltas
``(1/S) sum_k B_k A_k`` (peft ``add_weighted_adapter(..., "cat")``, a rank-S*r adapter): the
cost of one model, but an average of weights is not an average of predictions.
"""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace

import torch


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding, as ``transformers``' ``generate`` computes them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class ShardMixtureLM(torch.nn.Module):
    """A HF-causal-LM-shaped view of a ``PeftModel`` holding the shard adapters ``adapters``.

    ``__call__(input_ids, attention_mask)`` returns an object with ``.logits`` (log of the
    averaged probabilities); ``generate`` does greedy or temperature-1 sampling with one KV cache
    per adapter. Only what genforget's metrics call is implemented.
    """

    def __init__(self, peft_model: torch.nn.Module, adapters: list[str]) -> None:
        super().__init__()
        if not adapters:
            raise ValueError("no shard has any record left: nothing to aggregate")
        self.peft_model = peft_model
        self.adapters = list(adapters)
        # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name still warns).
        params = inspect.signature(type(peft_model.get_base_model()).forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @property
    def device(self) -> torch.device:
        return next(self.peft_model.parameters()).device

    @property
    def config(self):
        return self.peft_model.config

    def _one(self, adapter: str, **kwargs):
        self.peft_model.set_adapter(adapter, inference_mode=True)
        return self.peft_model(**kwargs)

    def _mix(self, logits: list[torch.Tensor]) -> torch.Tensor:
        if len(logits) == 1:
            return torch.log_softmax(logits[0].float(), -1)
        logp = torch.stack([torch.log_softmax(x.float(), -1) for x in logits])
        return torch.logsumexp(logp, 0) - math.log(len(logits))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: object
    ) -> SimpleNamespace:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pos = positions(attention_mask)
        outs = [
            self._one(a, input_ids=input_ids, attention_mask=attention_mask, position_ids=pos).logits
            for a in self.adapters
        ]
        return SimpleNamespace(logits=self._mix(outs))

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        num_return_sequences: int = 1,
        pad_token_id: int | None = None,
        eos_token_id: int | list[int] | None = None,
        **_: object,
    ) -> torch.Tensor:
        """Prompt + continuation ids, like ``transformers``' ``generate``: finished rows are
        padded with ``pad_token_id``; sampling is temperature 1 over the whole vocabulary."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if num_return_sequences > 1:
            input_ids = input_ids.repeat_interleave(num_return_sequences, 0)
            attention_mask = attention_mask.repeat_interleave(num_return_sequences, 0)
        eos = torch.tensor(
            [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else eos_token_id,
            device=input_ids.device,
        )
        pad = pad_token_id if pad_token_id is not None else (int(eos[0]) if len(eos) else 0)
        ids, mask, cur = input_ids, attention_mask, input_ids
        caches: list = [None] * len(self.adapters)
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _step in range(max_new_tokens):
            pos = positions(mask)[:, -cur.shape[1] :]
            logits = []
            for i, a in enumerate(self.adapters):
                out = self._one(
                    a,
                    input_ids=cur,
                    attention_mask=mask,
                    position_ids=pos,
                    use_cache=True,
                    **{self._cache_kw: caches[i]},
                )
                caches[i] = getattr(out, self._cache_kw)
                logits.append(out.logits[:, -1])
            logp = self._mix(logits)
            nxt = torch.multinomial(logp.exp(), 1)[:, 0] if do_sample else logp.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            done |= torch.isin(nxt, eos)
            ids = torch.cat([ids, nxt[:, None]], 1)
            mask = torch.cat([mask, torch.ones_like(nxt)[:, None]], 1)
            cur = nxt[:, None]
            if done.all():
                break
        return ids
