"""Train the partial-face head on a synthetic occluded-identity task, on the CPU, in minutes.

Each identity is four random parts at fixed places of a 32x32 image (the quadrants: think eyes,
nose, mouth); every image adds noise and, half of the time, a random rectangular occluder. A
small CNN extracts an 8x8x64 feature map, PartialFaceHead (K = 4 attention maps, the fused
pooling, four FC layers to a 64-d embedding) attends and aggregates, and PartialFaceLoss trains
it: importance-weighted cross-entropy plus the weighted diversity loss.

    python examples/train_partial_face.py                  # ~10 s, writes attention_maps.png
    python examples/train_partial_face.py --compare        # fused and reference, same seed

It prints the loss curve, checks that the diversity loss falls and that occluding the region a
map attends lowers that map's importance, and saves the learned attention maps over an input.
tests/test_example.py runs a shortened version and asserts all of it.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fusedattn.nn as fnn  # noqa: E402

IMAGE = 32
PART = IMAGE // 2
QUADRANTS = [(0, 0), (0, PART), (PART, 0), (PART, PART)]  # (row, col) of each part


@dataclass
class Task:
    parts: torch.Tensor  # (identities, 4, 3, PART, PART)
    noise: float = 0.2
    occlusion_rate: float = 0.5

    @classmethod
    def make(cls, identities: int = 24, seed: int = 0, part_contrast: float = 3.0) -> "Task":
        """Part q of every face = a texture shared by all faces (what makes an eye an eye:
        stripes of a different orientation and color per part) + a smooth pattern of the
        identity (what makes it this person's eye)."""
        g = torch.Generator().manual_seed(seed)
        coarse = torch.randn(identities, 4, 3, 4, 4, generator=g)
        identity = nn.functional.interpolate(coarse.flatten(0, 1), size=(PART, PART),
                                             mode="bilinear", align_corners=False)
        y, x = torch.meshgrid(torch.arange(PART), torch.arange(PART), indexing="ij")
        waves = [y, x, x + y, x - y]  # horizontal, vertical and the two diagonal stripes
        texture = torch.zeros(4, 3, PART, PART)
        for q, wave in enumerate(waves):
            texture[q, q % 3] = torch.sin(wave * 1.6)
        parts = identity.view(identities, 4, 3, PART, PART) + part_contrast * texture
        return cls(parts)

    @property
    def identities(self) -> int:
        return self.parts.shape[0]

    def faces(self, labels: torch.Tensor) -> torch.Tensor:
        img = torch.zeros(len(labels), 3, IMAGE, IMAGE)
        for q, (r, c) in enumerate(QUADRANTS):
            img[:, :, r:r + PART, c:c + PART] = self.parts[labels, q]
        return img

    def batch(self, size: int, g: torch.Generator):
        labels = torch.randint(self.identities, (size,), generator=g)
        img = self.faces(labels) + self.noise * torch.randn(size, 3, IMAGE, IMAGE, generator=g)
        for i in range(size):
            if torch.rand((), generator=g) < self.occlusion_rate:  # a random black rectangle
                h, w = torch.randint(10, 22, (2,), generator=g).tolist()
                r, c = torch.randint(0, IMAGE - h + 1, (1,), generator=g).item(), \
                    torch.randint(0, IMAGE - w + 1, (1,), generator=g).item()
                img[i, :, r:r + h, c:c + w] = 0
        return img, labels


class Model(nn.Module):
    """Extract (a small CNN, 32x32 -> 8x8x64), then Attend / Aggregate (PartialFaceHead)."""

    def __init__(self, backend: str, maps: int = 4, embed: int = 64):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU())
        head_cls = fnn.ReferencePartialFaceHead if backend == "reference" else fnn.PartialFaceHead
        kwargs = {} if backend == "reference" else {"backend": backend}
        self.head = head_cls(64, maps, embed, **kwargs)

    def forward(self, x):
        return self.head(self.backbone(x))


@dataclass
class History:
    total: list = field(default_factory=list)
    cross_entropy: list = field(default_factory=list)
    diversity: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)


def train(backend: str = "auto", steps: int = 300, batch: int = 64, seed: int = 0,
          diversity_weight: float = 1.0, l2_weight: float = 1e-5, log_every: int = 0):
    """Returns (model, criterion, task, history): the same seed gives the same data and the same
    initial weights whatever the backend."""
    task = Task.make(seed=seed)
    torch.manual_seed(seed)
    model = Model(backend)
    criterion = fnn.PartialFaceLoss(64, task.identities, diversity_weight=diversity_weight,
                                    l2_weight=l2_weight)
    opt = torch.optim.Adam(list(model.parameters()) + list(criterion.parameters()), lr=2e-3)
    g = torch.Generator().manual_seed(seed + 1)
    hist = History()
    for step in range(steps):
        x, y = task.batch(batch, g)
        out = model(x)
        loss = criterion(out, y, model.parameters())
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        with torch.no_grad():
            acc = (criterion.cross_entropy.classifier(out.embedding).argmax(1) == y).float().mean()
        for name in ("total", "cross_entropy", "diversity"):
            getattr(hist, name).append(getattr(loss, name).item())
        hist.accuracy.append(acc.item())
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:4d}  loss {loss.total.item():.4f}  ce {loss.cross_entropy.item():.4f}"
                  f"  diversity {loss.diversity.item():.4f}  accuracy {acc.item():.2f}")
    return model, criterion, task, hist


@torch.no_grad()
def occlusion_effect(model: Model, task: Task, n: int = 256, seed: int = 123):
    """For each quadrant: the map whose attention is most concentrated on it (clean faces, by
    the share of the map's mass in the quadrant), and that map's mean importance on clean faces
    and with the quadrant blacked out."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(task.identities, (n,), generator=g)
    clean = task.faces(labels) + task.noise * torch.randn(n, 3, IMAGE, IMAGE, generator=g)
    out = model(clean)
    # What g_k (hence s_k) counts of a map: its sigmoid above the 1/2 that a zero logit gives.
    excess = torch.sigmoid(out.attention) - 0.5  # (n, K, 8, 8); a quadrant is a 4x4 block
    block = excess.shape[-1] // 2
    total = excess.sum(dim=(0, 2, 3))
    rows = []
    for q, (r, c) in enumerate(QUADRANTS):
        rb, cb = r * block // PART, c * block // PART
        share = excess[:, :, rb:rb + block, cb:cb + block].sum(dim=(0, 2, 3)) / total
        share = torch.nan_to_num(share, nan=-1.0)  # a dead map (all logits 0) attends nothing
        k = int(share.argmax())  # the map that attends this quadrant most, relative to its mass
        occluded = clean.clone()
        occluded[:, :, r:r + PART, c:c + PART] = 0
        s_occ = model(occluded).importance[:, k].mean().item()
        rows.append(dict(quadrant=q, map=k, share=share[k].item(),
                         importance_clean=out.importance[:, k].mean().item(),
                         importance_occluded=s_occ))
    return rows


def occlusion_summary(rows) -> dict:
    """The mean change of importance over the quadrants, and the change for the most
    specialized map (the largest share of its attention in one quadrant)."""
    deltas = [r["importance_occluded"] - r["importance_clean"] for r in rows]
    top = max(rows, key=lambda r: r["share"])
    return dict(mean_change=sum(deltas) / len(deltas),
                most_specialized_change=top["importance_occluded"] - top["importance_clean"],
                most_specialized=(top["map"], top["quadrant"], top["share"]))


def compare_curves(a, b, first: int = 15, window: int = 10) -> dict:
    """How far two loss curves from the same seed are apart: exactly over the first steps
    (before rounding differences, amplified by training, can grow), and as moving averages
    over the whole run, relative to the initial loss."""
    smooth = lambda xs: [sum(xs[i:i + window]) / window for i in range(len(xs) - window + 1)]  # noqa: E731
    return dict(first_steps_max_abs=max(abs(x - y) for x, y in zip(a[:first], b[:first])),
                smoothed_max_rel=max(abs(x - y) for x, y in zip(smooth(a), smooth(b))) / abs(b[0]))


@torch.no_grad()
def save_attention_png(model: Model, task: Task, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(7)
    x, _ = task.batch(2, g)
    x[1, :, PART:, :PART] = 0  # the second face: its lower-left part occluded
    out = model(x)
    K = out.attention.shape[1]
    fig, axes = plt.subplots(2, K + 1, figsize=(2.2 * (K + 1), 4.6))
    for row in range(2):
        img = x[row].permute(1, 2, 0)
        img = ((img - img.min()) / (img.max() - img.min())).numpy()
        axes[row, 0].imshow(img)
        axes[row, 0].set_title("input" + (" (occluded)" if row else ""), fontsize=8)
        for k in range(K):
            amap = torch.sigmoid(out.attention[row, k])
            up = nn.functional.interpolate(amap[None, None], size=(IMAGE, IMAGE), mode="nearest")
            axes[row, k + 1].imshow(img.mean(-1), cmap="gray")
            axes[row, k + 1].imshow(up[0, 0].numpy(), cmap="jet", alpha=0.5, vmin=0.5, vmax=1)
            axes[row, k + 1].set_title(f"map {k}: s={out.importance[row, k]:.2f}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Learned attention maps (sigmoid) and their importance s_k")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--backend", default="auto")
    p.add_argument("--compare", action="store_true",
                   help="also train with the reference backend and compare the loss curves")
    p.add_argument("--png", default="attention_maps.png")
    args = p.parse_args(argv)
    t0 = time.time()
    model, _, task, hist = train(args.backend, args.steps, log_every=25)
    print(f"trained {args.steps} steps in {time.time() - t0:.0f} s")
    first, last = sum(hist.diversity[:20]) / 20, sum(hist.diversity[-20:]) / 20
    print(f"diversity loss: first 20 steps {first:.4f}, last 20 steps {last:.4f}")
    rows = occlusion_effect(model, task)
    for row in rows:
        print(f"quadrant {row['quadrant']} blacked out: map {row['map']} ({100 * row['share']:.0f}% "
              f"of its attention there) importance {row['importance_clean']:.4f} -> "
              f"{row['importance_occluded']:.4f}")
    summary = occlusion_summary(rows)
    print(f"mean importance change of the attending map: {summary['mean_change']:+.4f}")
    if args.compare:
        _, _, _, ref = train("reference", args.steps)
        cmp = compare_curves(hist.total, ref.total)
        print(f"fused vs reference loss curves: max |difference| over the first 15 steps "
              f"{cmp['first_steps_max_abs']:.1e}; 10-step averages within "
              f"{100 * cmp['smoothed_max_rel']:.2f}% of the initial loss over {args.steps} steps")
    save_attention_png(model, task, args.png)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
