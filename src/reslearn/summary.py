"""``reslearn summary`` and ``reslearn table1``: the complexity audit as text tables."""

from __future__ import annotations

from . import paper
from .models import complexity, create_model, get_model_spec, stage_complexity


def format_summary(name: str, shortcut: str | None = None, variant: str | None = None) -> str:
    model = create_model(name, shortcut=shortcut, variant=variant)
    size = get_model_spec(name).input_size
    rows = stage_complexity(model, size)
    kind = "plain" if not model.residual else f"residual, shortcut {model.shortcut}"
    lines = [
        f"{name}: {kind}, variant {model.variant}, input {size[0]}x{size[1]}",
        f"{'stage':<9}{'output':>9}{'blocks':>8}{'params':>14}{'mult-adds':>16}",
    ]
    for r in rows:
        out = f"{r.output_size[0]}x{r.output_size[1]}"
        lines.append(f"{r.stage:<9}{out:>9}{r.blocks:>8}{r.params:>14,}{r.macs:>16,}")
    total = complexity(model, size)
    lines.append(f"{'total':<9}{'':>9}{'':>8}{total.params:>14,}{total.macs:>16,}")
    lines.append(f"= {total.params / 1e6:.2f}M params, {total.macs / 1e9:.3f}e9 multiply-adds")
    return "\n".join(lines)


def format_table1() -> str:
    lines = [
        "ImageNet (224x224, option B, v1): multiply-adds (paper Table 1) and parameters",
        f"{'net':<10}{'paper FLOPs':>13}{'ours':>10}{'diff':>8}{'paper params':>15}{'ours':>13}{'match':>7}",
    ]
    for depth, ref in paper.TABLE1_MACS.items():
        c = complexity(create_model(f"resnet{depth}"), (224, 224))
        pref = paper.IMAGENET_PARAMS[depth]
        lines.append(
            f"resnet{depth:<4}{ref / 1e9:>12.1f}e9{c.macs / 1e9:>8.2f}e9"
            f"{100 * (c.macs - ref) / ref:>+7.1f}%{pref:>15,}{c.params:>13,}"
            f"{'yes' if c.params == pref else 'NO':>7}"
        )
    v15 = complexity(create_model("resnet50", variant="v1.5"), (224, 224))
    lines.append(f"(resnet50 v1.5, stride on the 3x3: {v15.macs / 1e9:.2f}e9 multiply-adds)")
    lines += [
        "",
        "CIFAR-10 (32x32, option A): parameters (paper Table 6)",
        f"{'net':<12}{'paper':>8}{'exact':>13}{'ours':>13}{'match':>7}{'mult-adds':>13}",
    ]
    for depth, pref in paper.CIFAR_PARAMS.items():
        c = complexity(create_model(f"cifar_resnet{depth}"), (32, 32))
        lines.append(
            f"resnet{depth:<6}{paper.CIFAR_PARAMS_PRINTED[depth]:>8}{pref:>13,}{c.params:>13,}"
            f"{'yes' if c.params == pref else 'NO':>7}{c.macs / 1e6:>11.1f}M"
        )
    return "\n".join(lines)
