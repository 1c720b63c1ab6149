"""weave-traffic-cnn: a small traffic-camera frame classifier, the vision model of Dora's
traffic-analytics scenario (camera edge boxes running a CNN over frames), and the synthetic
frames it is trained on.

A frame is a 64x64 RGB view of a road (noisy grey asphalt, lane marks) with at
most one road user drawn on it: a car, a bus, a bike, or none.  Sizes,
colours and positions are random, so the class has to be read from shape.
The network is a chain of blocks (conv + ReLU, then pooling and a linear
head), each block one layer Dora can cut after; there is no batch norm, so a
pipeline that splits a batch into micro-batches computes exactly what the
whole model computes.  Checkpoints are a directory with ``config.json``
(``model_type`` ``edgeweave-traffic-cnn``) and ``model.safetensors``, like
the language models, and are trained here (``edgeweave train
weave-traffic-cnn``), never downloaded.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from edgeweave.errors import ModelFileError
from edgeweave.fileio import atomic_output

NAME = "weave-traffic-cnn"
MODEL_TYPE = "edgeweave-traffic-cnn"
CLASSES = ("empty", "car", "bus", "bike")
DETECT_CLASSES = ("empty", "road-user")  # a detector's answer: is anyone on the road?
# (width, height) ranges in pixels of each road user, at 64x64
_SHAPES = {1: ((10, 17), (6, 10)), 2: ((24, 37), (9, 13)), 3: ((3, 6), (8, 13))}


@dataclass(frozen=True)
class VisionConfig:
    image_size: int = 64
    widths: tuple[int, ...] = (16, 32, 32, 64, 64, 128, 128)
    strides: tuple[int, ...] = (1, 2, 1, 2, 1, 2, 1)
    classes: tuple[str, ...] = CLASSES

    def labels(self, classes: torch.Tensor) -> torch.Tensor:
        """The frames' class ids as this model's targets (a detector: anyone there or not)."""
        return (classes > 0).long() if self.classes == DETECT_CLASSES else classes

    @property
    def n_layers(self) -> int:
        return len(self.widths) + 1  # the conv blocks and the head

    def to_json(self) -> str:
        return json.dumps({"model_type": MODEL_TYPE, "architectures": ["TrafficCNN"], **asdict(self)}, indent=2)

    @classmethod
    def from_dir(cls, directory: Path) -> VisionConfig:
        path = directory / "config.json"
        try:
            raw = json.loads(path.read_text())
            return cls(int(raw["image_size"]), tuple(raw["widths"]), tuple(raw["strides"]), tuple(raw["classes"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelFileError(str(path), f"not a traffic CNN config ({e})") from None


def variant(task: str, width: float, image_size: int) -> VisionConfig:
    """A smaller or cheaper sibling: channel widths scaled by ``width``, frames at ``image_size``."""
    base = VisionConfig()
    widths = tuple(max(4, round(w * width)) for w in base.widths)
    return VisionConfig(image_size, widths, base.strides, DETECT_CLASSES if task == "detect" else CLASSES)


# Circinus's operator variants (detectors and classifiers of several widths and resolutions); NAME is
# the full classifier
VARIANTS: dict[str, VisionConfig] = {
    "traffic-det-w25-r32": variant("detect", 0.25, 32),
    "traffic-det-w50-r64": variant("detect", 0.5, 64),
    "traffic-cls-w25-r32": variant("classify", 0.25, 32),
    "traffic-cls-w50-r64": variant("classify", 0.5, 64),
    NAME: VisionConfig(),
}
TRAIN_STEPS = {"traffic-cls-w25-r32": 1500}  # the narrowest classifier leaves chance level late; others 400


def is_vision_checkpoint(directory: Path) -> bool:
    try:
        return json.loads((directory / "config.json").read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


class TrafficCNN(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        c_in = 3
        for width, stride in zip(config.widths, config.strides, strict=True):
            blocks.append(nn.Sequential(nn.Conv2d(c_in, width, 3, stride=stride, padding=1), nn.ReLU()))
            c_in = width
        blocks.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, len(config.classes))))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def frames(n: int, seed: int, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` synthetic frames ``[n, 3, size, size]`` in [0, 1] and their class ids ``[n]``."""
    g = torch.Generator().manual_seed(seed)
    scale = size / 64
    images = 0.35 + 0.08 * torch.randn(n, 3, size, size, generator=g)
    images += 0.1 * torch.rand(n, 1, 1, 1, generator=g)  # lighting
    lane = size // 2
    images[:, :, lane - 1 : lane + 1, ::8] = 0.9  # dashed lane mark
    labels = torch.randint(0, len(CLASSES), (n,), generator=g)

    def draw(lo_hi: tuple[int, int]) -> int:
        lo, hi = lo_hi
        return max(1, int(torch.randint(round(lo * scale), round(hi * scale) + 1, (1,), generator=g)))

    for i, label in enumerate(labels.tolist()):
        if label == 0:
            continue
        wr, hr = _SHAPES[label]
        w, h = draw(wr), draw(hr)
        x0 = int(torch.randint(0, size - w + 1, (1,), generator=g))
        y0 = int(torch.randint(0, size - h + 1, (1,), generator=g))
        colour = torch.rand(3, 1, 1, generator=g) * 0.8 + 0.1
        images[i, :, y0 : y0 + h, x0 : x0 + w] = colour
    return images.clamp_(0, 1), labels


@dataclass(frozen=True)
class VisionReport:
    steps: int
    final_loss: float
    accuracy: float  # on held-out frames
    seconds: float
    parameters: int


def accuracy(model: TrafficCNN, n: int = 512, seed: int = 10_000) -> float:
    """Top-1 accuracy on ``n`` held-out frames (a validation set no training step draws)."""
    x, y = frames(n, seed, model.config.image_size)
    with torch.no_grad():
        return float((model.eval()(x).argmax(-1) == model.config.labels(y)).float().mean())


def train_cnn(
    steps: int = 400, batch: int = 64, lr: float = 1e-3, seed: int = 0, config: VisionConfig | None = None
) -> tuple[TrafficCNN, VisionReport]:
    """AdamW with cosine decay on fresh synthetic frames each step (fixed seeds)."""
    torch.manual_seed(seed)
    model = TrafficCNN(config or VisionConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()
    loss = torch.tensor(0.0)
    model.train()
    for step in range(steps):
        x, y = frames(batch, seed * 1_000_003 + step, model.config.image_size)
        loss = F.cross_entropy(model(x), model.config.labels(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    return model, VisionReport(steps, loss.item(), accuracy(model), seconds, params)


def save_cnn(model: TrafficCNN, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with atomic_output(directory / "config.json") as tmp:
        tmp.write_text(model.config.to_json() + "\n")
    return directory


def load_cnn(directory: str | Path) -> TrafficCNN:
    directory = Path(directory)
    model = TrafficCNN(VisionConfig.from_dir(directory))
    path = directory / "model.safetensors"
    try:
        state = load_file(str(path))
    except (OSError, ValueError, SafetensorError) as e:
        raise ModelFileError(str(path), f"cannot read the weights ({e})") from None
    expected = model.state_dict()
    if set(state) != set(expected) or any(state[k].shape != v.shape for k, v in expected.items()):
        raise ModelFileError(str(path), "weights do not match config.json")
    model.load_state_dict(state)
    return model.eval()
