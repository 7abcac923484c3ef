"""The works victim and its retrain oracle share a first training phase in which no work appears:
the oracle stays the victim's procedure on the data without the taken-down work."""

from __future__ import annotations

import torch

from genforget.diffusion import works_victim as wv
from genforget.diffusion.works import WORKS


def test_shared_phase_holds_no_work_and_is_trained_once(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    calls: list[tuple[list[str], int]] = []
    real = wv.train_text_to_image

    def spy(model, captions, cfg, images=None, latents=None):  # noqa: ANN001, ANN202
        calls.append((list(captions), cfg.steps))
        return real(model, captions, cfg, images=images, latents=latents)

    monkeypatch.setattr(wv, "train_text_to_image", spy)
    cfg = wv.WorksVictimConfig(copies=2, images_per_concept=2, image_size=16, vae_steps=1,
                               background_steps=2, train_steps=3, train_batch_size=4)  # fmt: skip
    work_caps = {WORKS[w].caption for w in cfg.works}
    victim, vinfo = wv.works_victim(cfg, tmp_path / "victim", log=lambda _: None)
    oracle, oinfo = wv.works_oracle(cfg, ["astronaut"], tmp_path / "oracle", log=lambda _: None)

    # background phase once (2 steps, no work caption), then victim and oracle (3 steps each)
    assert [steps for _, steps in calls] == [2, 3, 3]
    background, victim_caps, oracle_caps = (set(c) for c, _ in calls)
    assert background == set(cfg.concepts) and not background & work_caps
    assert work_caps <= victim_caps
    assert (
        WORKS["astronaut"].caption not in oracle_caps
        and work_caps - {WORKS["astronaut"].caption} <= oracle_caps
    )
    assert vinfo["background_cached"] is False and oinfo["background_cached"] is True
    # both continue from the same shared checkpoint and then diverge
    base, _ = wv.works_background(cfg, tmp_path / "background")
    assert len(calls) == 3  # loaded from the cache, not retrained
    b, v, o = (dict(m.unet.named_parameters())["conv_in.weight"] for m in (base, victim, oracle))
    assert not torch.equal(b, v) and not torch.equal(b, o) and not torch.equal(v, o)
    assert torch.equal(
        victim.vae.state_dict()["encoder.conv_in.weight"], oracle.vae.state_dict()["encoder.conv_in.weight"]
    )
