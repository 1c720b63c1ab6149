import torch

from edgeweave.models.config import PRESETS
from edgeweave.models.train import train


def test_training_is_reproducible() -> None:
    preset = PRESETS["weave-home-device"]
    a, report_a = train(preset, steps=4, show_progress=False)
    b, report_b = train(preset, steps=4, show_progress=False)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    assert report_a.final_loss == report_b.final_loss
    assert report_a.parameters == a.num_parameters()
