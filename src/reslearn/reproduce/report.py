"""``reslearn report DIR``: Figure 6, Table 6 and Figure 7 of the paper from the runs in DIR,
with verdicts computed from the numbers and the provenance of every number."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .. import paper
from ..models import ModelSpec, create_model, get_model_spec
from ..recipes import get_recipe
from ..rundir import METRICS, held_out_err, read_metrics


@dataclass
class Run:
    dir: Path
    model: str
    seed: int
    config: dict
    metrics: list[dict]
    final: dict | None = None
    responses: dict | None = None

    @property
    def arm(self) -> str:
        """A study's arm (``DIR/<model>-<arm>-s<seed>/``, reslearn.reproduce.study), or ""."""
        head, tail = f"{self.model}-", f"-s{self.seed}"
        name = self.dir.name
        ok = name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail)
        return name[len(head) : -len(tail)] if ok else ""

    @property
    def label(self) -> str:
        return f"{self.model} [{self.arm}]" if self.arm else self.model

    @property
    def spec(self) -> ModelSpec:
        return get_model_spec(self.model)

    @property
    def plain(self) -> bool:
        return not self.spec.residual


@dataclass
class ModelSummary:
    model: str
    params: int
    label: str = ""  # the model, with its arm in a study of arms
    seeds: list[int] = field(default_factory=list)
    test_errs: list[float] = field(default_factory=list)  # finished runs only
    train_errs: list[float] = field(default_factory=list)  # last interval of finished runs

    @property
    def mean(self) -> float:
        return statistics.fmean(self.test_errs)

    @property
    def std(self) -> float:  # sample std over seeds (0 for one seed)
        return statistics.stdev(self.test_errs) if len(self.test_errs) > 1 else 0.0

    @property
    def best(self) -> float:
        return min(self.test_errs)

    @property
    def train_mean(self) -> float:
        return statistics.fmean(self.train_errs)

    @property
    def paper_err(self) -> float | None:
        """Table 6 (CIFAR-10 test) or Table 2 (ImageNet val top-1, 10-crop)."""
        spec = get_model_spec(self.model)
        if spec.family == "imagenet":
            return paper.TABLE2_TOP1.get(self.model)
        return paper.TABLE6_TEST_ERR.get(spec.depth) if spec.residual else None

    @property
    def reproduction_err(self) -> float | None:
        """akamaster/pytorch_resnet_cifar10's published error (CIFAR ResNets; paper.py)."""
        spec = get_model_spec(self.model)
        ok = spec.family == "cifar" and spec.residual
        return paper.AKAMASTER_TEST_ERR.get(spec.depth) if ok else None


FAMILY_TEXT = {
    "cifar": {
        "title": "CIFAR-10 reproduction report",
        "recipe": "the paper: 64000 of batch 128",
        "table": "## Table 6: test error (%)",
        "paper_col": "paper",
        "figure": ("fig6_training_curves.png", "Figure 6: training (dashed) and test (bold) error"),
    },
    "imagenet": {
        "title": "ImageNet reproduction report (Figure 4)",
        "recipe": "the paper: up to 60e4 of batch 256, lr /10 on plateaus",
        "table": "## Table 2: top-1 error (%) on val/ (ours: single centre crop at the end of training)",
        "paper_col": "paper (Table 2, ImageNet, 10-crop)",
        "figure": ("fig4_training_curves.png", "Figure 4: training (dashed) and validation (bold) error"),
    },
}


def study_family(runs: list[Run]) -> str:
    families = {r.spec.family for r in runs}
    if len(families) != 1:
        raise ValueError(f"a study holds nets of one family; these runs mix {sorted(families)}")
    return families.pop()


def _read_json(p: Path) -> dict | None:
    return json.loads(p.read_text()) if p.is_file() else None


def _read_run(d: Path, cfg: dict) -> Run:
    """One run's files; a damaged or foreign one is an error naming the run, not a traceback."""
    try:
        rows = read_metrics(d)
        final = _read_json(d / "final.json")
        if final is not None and ("train_err" not in final or held_out_err(final) is None):
            raise ValueError("final.json has no train_err and test_err (or val_err)")
        run = Run(
            d, cfg["model"]["name"], cfg["run"]["seed"], cfg, rows, final, _read_json(d / "responses.json")
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(
            f"{str(d)!r} is not a run reslearn can report on ({type(e).__name__}: {e})"
        ) from None
    return run


def collect_runs(out: str | Path) -> list[Run]:
    runs = []
    for d in sorted(Path(out).iterdir()):
        try:
            cfg = _read_json(d / "config.json") if d.is_dir() else None
        except ValueError as e:
            raise ValueError(f"{str(d / 'config.json')!r} is damaged ({e})") from None
        if cfg is None or not (d / METRICS).exists():
            continue
        runs.append(_read_run(d, cfg))
    return runs


def _order(name: str) -> tuple[int, int]:
    """Plain nets first, then ResNets; each by depth."""
    spec = get_model_spec(name)
    return (1 if spec.residual else 0, spec.depth)


def counterpart(name: str) -> str | None:
    """The ResNet of the same family and depth as a plain net (by spec, not by string)."""
    spec = get_model_spec(name)
    for cand in (name.replace("plain", "resnet", 1), f"cifar_resnet{spec.depth}"):
        try:
            other = get_model_spec(cand)
        except ValueError:
            continue
        if other.residual and (other.family, other.depth) == (spec.family, spec.depth):
            return cand
    return None


def summarize(runs: list[Run]) -> dict[str, ModelSummary]:
    out: dict[str, ModelSummary] = {}
    for r in sorted(runs, key=lambda r: (_order(r.model), r.seed)):
        if r.label not in out:
            params = sum(p.numel() for p in create_model(r.model).parameters())
            out[r.label] = ModelSummary(r.model, params, r.label)
        if r.final is not None:
            s = out[r.label]
            s.seeds.append(r.seed)
            s.test_errs.append(held_out_err(r.final))
            s.train_errs.append(r.final["train_err"])
    return out


def mean_response(runs: list[Run], model: str) -> float | None:
    vals = [statistics.fmean(r.responses["std"]) for r in runs if r.model == model and r.responses]
    return statistics.fmean(vals) if vals else None


def _seed_note(a: ModelSummary, b: ModelSummary, which: str) -> str:
    """Whether the seeds separate two nets on one error (``which``: train or test).

    A gap between two means says nothing when one net's own seeds differ by more: then
    the note says so. With one seed on either side the noise is unmeasured and there is
    no note. The range (max - min) is used, not a std, because two or three seeds are
    all a CPU study has."""
    ea, eb = (a.train_errs, b.train_errs) if which == "train" else (a.test_errs, b.test_errs)
    if len(ea) < 2 or len(eb) < 2:
        return ""
    gap = abs(statistics.fmean(eb) - statistics.fmean(ea))
    spread = max(max(ea) - min(ea), max(eb) - min(eb))
    if gap > spread:
        return f"{which} gap {gap:.2f} points > seed range {spread:.2f}"
    return (
        f"{which} gap {gap:.2f} points within the seed range {spread:.2f}: these seeds do not separate them"
    )


def arm_verdicts(summary: dict[str, ModelSummary]) -> list[str]:
    """A study of arms: each arm against the reference arm ("paper" if there is one, else
    the first by name) for each net, over the seeds finished in both (paired: a seed gives
    both arms the same initial weights and, on the same images, the same batches; a seed
    finished in one arm only would set one seed's luck against another's), each seed's
    difference, the seed range."""
    lines = []
    for model in dict.fromkeys(s.model for s in summary.values()):
        arms = {s.label: s for s in summary.values() if s.model == model and s.test_errs}
        if len(arms) < 2:
            lines.append(f"{model}: arms not compared yet (need two finished arms)")
            continue
        ref = arms[_reference_arm(model, arms)]
        lines += [_arm_line(s, ref) for s in arms.values() if s is not ref]
    return lines


def _reference_arm(model: str, labels) -> str:
    """The arm the others are set against: "paper" where the study has it, else the first by name."""
    return f"{model} [paper]" if f"{model} [paper]" in labels else min(labels)


def _arm_line(arm: ModelSummary, ref: ModelSummary) -> str:
    """``arm`` - ``ref`` over the seeds both finished."""
    seeds = [k for k in arm.seeds if k in ref.seeds]
    if not seeds:
        return f"{arm.label} - {ref.label}: not compared yet (no seed finished in both)"
    a, r = (ModelSummary(s.model, s.params, s.label) for s in (arm, ref))
    for src, dst in ((arm, a), (ref, r)):
        dst.seeds = seeds
        dst.test_errs = [src.test_errs[src.seeds.index(k)] for k in seeds]
    diffs = [x - y for x, y in zip(a.test_errs, r.test_errs)]
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean of seeds {', '.join(map(str, seeds))}"
    notes = [f"{which}: {a.mean:.2f}% vs {r.mean:.2f}%"]
    if len(seeds) > 1:
        same = all(d < 0 for d in diffs) or all(d > 0 for d in diffs)
        each = ", ".join(f"{d:+.2f}" for d in diffs)
        sign = "the same sign in every seed" if same else "the signs differ"
        notes.append(f"each seed: {each}, {sign}")
        notes.append(_seed_note(r, a, "test"))
    left = sorted(set(arm.seeds) ^ set(ref.seeds))
    if left:
        notes.append(f"seed {', '.join(map(str, left))} finished in one arm only, left out")
    diff = statistics.fmean(diffs)
    return f"{arm.label} - {ref.label}: {diff:+.2f} points of held-out error ({'; '.join(notes)})"


def verdicts(runs: list[Run], summary: dict[str, ModelSummary]) -> list[str]:
    """The paper's claims, each answered from the measured numbers."""
    if any(r.arm for r in runs):
        return arm_verdicts(summary)
    done = {m: s for m, s in summary.items() if s.test_errs}
    lines = []
    plains = sorted((m for m in done if not get_model_spec(m).residual), key=_order)
    resnets = sorted((m for m in done if get_model_spec(m).residual), key=_order)
    if len(plains) >= 2:
        a, b = done[plains[0]], done[plains[-1]]
        yes = b.train_mean > a.train_mean
        note = _seed_note(a, b, "train")
        lines.append(
            f"deeper plain net has higher training error: {'yes' if yes else 'no'} "
            f"({b.model} {b.train_mean:.2f}% vs {a.model} {a.train_mean:.2f}%"
            + (f"; {note})" if note else ")")
        )
    else:
        lines.append("deeper plain net has higher training error: not measured (need two plain depths)")
    if len(resnets) >= 2:
        a, b = done[resnets[0]], done[resnets[-1]]
        yes = b.train_mean < a.train_mean and b.mean < a.mean
        lines.append(
            f"deeper ResNet has lower training/test error: {'yes' if yes else 'no'} "
            f"({b.model} train {b.train_mean:.2f}% / test {b.mean:.2f}% vs "
            f"{a.model} train {a.train_mean:.2f}% / test {a.mean:.2f}%"
            + "".join(f"; {n}" for n in (_seed_note(a, b, "train"), _seed_note(a, b, "test")) if n)
            + ")"
        )
    else:
        lines.append("deeper ResNet has lower training/test error: not measured (need two ResNet depths)")
    if study_family(runs) == "imagenet":
        return lines  # Figure 7 (layer responses) is a CIFAR-10 study
    pairs = []
    for m in sorted({r.model for r in runs if r.plain}, key=_order):
        rm = counterpart(m)
        p, q = mean_response(runs, m), mean_response(runs, rm) if rm else None
        if p is not None and q is not None:
            pairs.append((m, p, rm, q))
    if pairs:
        yes = all(q < p for _, p, _, q in pairs)
        detail = "; ".join(f"{rm} {q:.3f} vs {m} {p:.3f}" for m, p, rm, q in pairs)
        lines.append(
            f"ResNet responses smaller than plain: {'yes' if yes else 'no'} (mean std per layer: {detail})"
        )
    else:
        lines.append("ResNet responses smaller than plain: not measured (need plain/ResNet pairs)")
    return lines


@dataclass
class Trend:
    """Mean held-out error of a reference (the shallowest ResNet, or a study's reference arm)
    and another net at each evaluation all their runs share: where the curves cross, if they
    do. rows: (iteration, lr, ref %, other %)."""

    ref: str
    other: str
    rows: list[tuple[int, float | None, float, float]]

    def ahead_from(self) -> int | None:
        """The first evaluation from which the other net stays ahead to the end, or None."""
        first = None
        for it, _, a, b in self.rows:
            first = (first or it) if b < a else None
        return first

    def summary(self) -> str:
        it0, _, a0, b0 = self.rows[0]
        end, _, a1, b1 = self.rows[-1]
        since = self.ahead_from()
        if since is not None:
            return (
                f"{self.other} ahead of {self.ref} from iteration {since} on "
                f"(gap {b0 - a0:+.2f} points at {it0}, {b1 - a1:+.2f} at {end})"
            )
        ahead = [it for it, _, a, b in self.rows if b < a]
        where = (
            f"ahead at {len(ahead)} of {len(self.rows)} evaluations (first at {ahead[0]}), "
            "behind again at the end"
            if ahead
            else "behind at every evaluation: the curves do not cross"
        )
        narrow = min(self.rows, key=lambda r: r[3] - r[2])
        return (
            f"{self.other} against {self.ref}: {where} (gap {b0 - a0:+.2f} points at {it0}, "
            f"narrowest {narrow[3] - narrow[2]:+.2f} at {narrow[0]}, {b1 - a1:+.2f} at the end, {end})"
        )


def _trend(runs: list[Run], ref: str, other: str, key) -> Trend | None:
    """The runs whose ``key`` is ``ref`` against those whose key is ``other``, each side the
    mean over its runs, at the evaluations every one of those runs has on one split (an arm
    with a validation split measures the test set only at its end: its other evaluations
    are not set against another arm's test errors)."""
    curves: dict[str, dict[int, list[float]]] = {}  # key -> iteration -> [errors of each run]
    splits: dict[int, set[str]] = {}  # iteration -> the splits measured there
    lrs = {}
    for r in runs:
        if key(r) in (ref, other):
            for m in r.metrics:
                if (err := held_out_err(m)) is not None:
                    curves.setdefault(key(r), {}).setdefault(m["iteration"], []).append(err)
                    splits.setdefault(m["iteration"], set()).add(
                        "test" if m.get("test_err") is not None else "val"
                    )
                    lrs[m["iteration"]] = m.get("lr")
    n = {k: sum(key(r) == k for r in runs) for k in (ref, other)}
    shared = [
        it
        for it in sorted(curves.get(ref, {}))
        if len(curves[ref][it]) == n[ref]
        and len(curves.get(other, {}).get(it, [])) == n[other]
        and len(splits[it]) == 1
    ]
    if not shared:
        return None
    mean = statistics.fmean
    return Trend(ref, other, [(it, lrs[it], mean(curves[ref][it]), mean(curves[other][it])) for it in shared])


def depth_trend(runs: list[Run], deep: str | None = None) -> Trend | None:
    """The shallowest ResNet against ``deep`` (default: the deepest) over training (mean
    over seeds)."""
    resnets = sorted({r.model for r in runs if not r.plain}, key=_order)
    if len(resnets) < 2:
        return None
    return _trend(runs, resnets[0], deep or resnets[-1], key=lambda r: r.model)


def arm_trends(runs: list[Run]) -> list[Trend]:
    """A study of arms over training: each arm against the reference arm, seed by seed (one
    seed gives both the same initial weights), finished or not."""
    out = []
    for model in dict.fromkeys(r.model for r in runs):
        labels = sorted({r.label for r in runs if r.model == model})
        ref = _reference_arm(model, labels)
        for label in labels:
            seeds = {r.seed for r in runs if r.label == label} & {r.seed for r in runs if r.label == ref}
            for seed in sorted(seeds) if label != ref else ():
                t = _trend([r for r in runs if r.seed == seed], ref, label, key=lambda r: r.label)
                if t is not None:
                    out.append(Trend(f"{ref} seed {seed}", f"{label} seed {seed}", t.rows))
    return out


def _trend_section(trends: list[Trend]) -> list[str]:
    """Each deeper ResNet against the shallowest (a line each), and the deepest's table."""
    trend = trends[-1]
    a, b = trend.ref, trend.other
    md = [
        f"## Depth over training: {b if len(trends) == 1 else 'each deeper ResNet'} against {a} "
        "(held-out error, mean over seeds, %)",
        "",
        *(f"- {t.summary()}" for t in trends),
        "",
        f"| iteration | lr | {a} | {b} | {b} - {a} |",
        "|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {it} | {f'{lr:g}' if lr is not None else '-'} | {x:.2f} | {y:.2f} | {y - x:+.2f} |"
        for it, lr, x, y in trend.rows
    ]
    return md


def _colors(names: list[str], runs: list[Run] = ()) -> dict[str, str]:
    """A colour per net, by depth (the paper's figures); per arm in a study of arms."""
    import matplotlib

    labels = sorted({r.label for r in runs if r.arm})
    if labels:
        return {r.label: matplotlib.colormaps["tab10"](labels.index(r.label) % 10) for r in runs}
    cmap = matplotlib.colormaps["viridis"]
    depths = sorted({get_model_spec(n).depth for n in names})
    by_depth = {d: cmap(i / max(1, len(depths) - 1) * 0.9) for i, d in enumerate(depths)}
    return {n: by_depth[get_model_spec(n).depth] for n in names}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def plot_training_curves(runs: list[Run], path: Path) -> list[str]:
    """Figure 6: training error (dashed) and test error (bold) vs iterations.

    One panel per kind of net the runs hold (plain left, ResNets right, as the paper draws
    them); a study of one kind gets one panel, not an empty one beside it. Returns the
    panels' titles, in order.
    """
    plt = _pyplot()
    colors = _colors([r.model for r in runs], runs)
    kinds = [plain for plain in (True, False) if any(r.plain == plain for r in runs)] or [False]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 4.8), sharey=True, squeeze=False)
    axes = axes[0]
    titles = ["plain networks" if plain else "ResNets" for plain in kinds]
    dots = False
    for ax, plain, title in zip(axes, kinds, titles):
        seen = set()
        for r in sorted((r for r in runs if r.plain == plain), key=lambda r: _order(r.model)):
            it = [m["iteration"] for m in r.metrics]
            c = colors.get(r.label) or colors[r.model]
            label = None if r.label in seen else r.label
            seen.add(r.label)
            ax.plot(it, [m["train_err"] for m in r.metrics], "--", color=c, lw=1.2)
            te = [(m["iteration"], m["test_err"]) for m in r.metrics if m.get("test_err") is not None]
            va = [(m["iteration"], m["val_err"]) for m in r.metrics if m.get("val_err") is not None]
            if len(te) < 2 and va:  # a validation split: its curve stands in, the test error at the end a dot
                ax.plot(*zip(*va), "-", color=c, lw=2.2, label=label)
                if te:
                    ax.plot(*zip(*te), "o", color=c, ms=5)
                    dots = True
            elif te:
                ax.plot(*zip(*te), "-", color=c, lw=2.2, label=label)
        ax.set_title(title)
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        if seen:
            ax.legend(title="dashed: training, bold: held-out" + (", dot: test" if dots else ""))
    axes[0].set_ylabel("error (%)")
    _save(fig, path)
    return titles


def plot_responses(runs: list[Run], path: Path) -> None:
    """Figure 7: std of each 3x3 layer's response, in layer order (top) and sorted (bottom)."""
    plt = _pyplot()
    with_resp = sorted((r for r in runs if r.responses), key=lambda r: (_order(r.model), r.seed))
    colors = _colors([r.model for r in with_resp])
    fig, axes = plt.subplots(2, 1, figsize=(10, 7.5))
    seen = set()
    for r in with_resp:
        if r.model in seen:
            continue  # one seed per model, as the paper draws it
        seen.add(r.model)
        std = r.responses["std"]
        style = "--" if r.plain else "-"
        x = range(1, len(std) + 1)
        axes[0].plot(x, std, style, color=colors[r.model], label=r.model)
        axes[1].plot(x, sorted(std, reverse=True), style, color=colors[r.model], label=r.model)
    axes[0].set_xlabel("layer index (original)")
    axes[1].set_xlabel("layer index (sorted by magnitude)")
    for ax in axes:
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        if seen:
            ax.legend(ncol=2)
    _save(fig, path)


def stretches(run: Run) -> list[tuple[int, int, str]]:
    """Where a run trained: (first iteration, last iteration, its metrics rows' ``ran_on``)
    for each stretch of consecutive rows that agree ("not recorded" before reslearn wrote it).
    A run continued in another session may have gone on on another machine."""
    out: list[tuple[int, int, str]] = []
    last = 0
    for row in run.metrics:
        where = row.get("ran_on", "not recorded")
        if out and out[-1][2] == where:
            out[-1] = (out[-1][0], row["iteration"], where)
        else:
            out.append((last + 1, row["iteration"], where))
        last = row["iteration"]
    return out


def _where_trained(runs: list[Run]) -> list[str]:
    """The provenance lines on the machines the runs trained on (none where no row says)."""
    each = {f"{r.model}-s{r.seed}": stretches(r) for r in runs}
    places = {w for st in each.values() for _, _, w in st}
    if places <= {"not recorded"}:
        return []
    if len(places) == 1:
        return [f"- trained on (every run, from start to end): {places.pop()}"]
    lines = ["- trained on (each metrics row names the process that wrote it):"]
    for name, st in each.items():
        lines.append(f"  - {name}: " + "; ".join(f"iterations {a:,}-{b:,}: {w}" for a, b, w in st))
    return lines


def _provenance(runs: list[Run]) -> list[str]:
    def uniq(vals) -> str:
        return ", ".join(sorted({str(v) for v in vals if v is not None})) or "unknown"

    finals = [r.final for r in runs if r.final]
    sources = {f.get("data_source") for f in finals}
    # An unfinished run knows only its folder (the source is recorded when it finishes): the
    # folder is listed unless a finished run's source already names it (one data set, once).
    named = [Path(str(s).partition(":")[2]) for s in sources]  # "FORMAT:PATH" -> PATH
    dirs = {r.config["data"]["data_dir"] for r in runs if not r.final}
    sources |= {d for d in dirs if not any(Path(d) == p or Path(d) in p.parents for p in named)}
    lines = [
        f"- runs: {len(runs)} ({len(finals)} finished), models: "
        f"{', '.join(sorted({r.model for r in runs}, key=_order))}",
        f"- iterations: {uniq(r.config['optim']['iterations'] for r in runs)} "
        f"(batch {uniq(r.config['optim']['batch_size'] for r in runs)}; "
        f"{FAMILY_TEXT[study_family(runs)]['recipe']})",
        f"- seeds: {uniq(r.seed for r in runs)}",
        f"- device: {uniq(f.get('device') for f in finals)}; "
        f"precision: {uniq(f.get('speed') for f in finals)} (the process that finished each run)"
        if finals
        else "- device, precision: recorded when a run finishes (none has yet)",
        *_where_trained(runs),
        f"- data: {uniq(sources)}",
        f"- reslearn version: {uniq(f.get('version') for f in finals)}, "
        f"git commit: {uniq(f.get('git_commit') for f in finals)}"
        if finals
        else "- reslearn version, git commit: recorded when a run finishes",
    ]
    if study_family(runs) == "imagenet":
        sizes = uniq(r.config["data"].get("image_size") for r in runs)
        lines.append(
            f"- **data caveat**: training crop {sizes} px (the paper: 224) on the data above; errors on "
            "a subset of ImageNet (e.g. Imagenette's 10 classes) or at a lower resolution are not "
            "comparable with the paper's 1000-class numbers, only the plain-vs-ResNet comparison is."
        )
    elif any("jpeg" in str(s).lower() or "imagefolder" in str(s) for s in sources):
        lines.append(
            "- **data caveat**: these runs used an image-folder copy of CIFAR-10 (the shared "
            "JPEG q75 re-encoding, not the original pixels): errors are not directly "
            "comparable with the paper's numbers."
        )
    return lines


def _table_rows(summary: dict[str, ModelSummary], paper_col: str) -> list[str]:
    """Table 6 (or 2): each net's held-out error over its seeds, beside the paper's and, for
    the CIFAR ResNets, beside the best-known public reproduction's (paper.AKAMASTER_TEST_ERR)."""
    aka = any(s.reproduction_err is not None for s in summary.values())
    md = [
        "| model | params | seeds | ours: mean +- std | ours: best | each seed (range) "
        f"| final training error | {paper_col} | ours - paper |"
        + (" akamaster (best test epoch of 200) |" if aka else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if aka else ""),
    ]
    for s in summary.values():
        p, r = s.paper_err, s.reproduction_err
        paper_cell = p if p is not None else "-"
        last = (f" {r:.2f} |" if r is not None else " - |") if aka else ""
        if not s.test_errs:
            md.append(f"| {s.label} | {s.params / 1e6:.2f}M | 0 | unfinished | | | | {paper_cell} | |" + last)
            continue
        each = " / ".join(f"{e:.2f}" for e in s.test_errs)
        if len(s.test_errs) > 1:
            each += f" ({max(s.test_errs) - min(s.test_errs):.2f})"
        md.append(
            f"| {s.label} | {s.params / 1e6:.2f}M | {len(s.test_errs)} | {s.mean:.2f} +- {s.std:.2f} "
            f"| {s.best:.2f} | {each} | {s.train_mean:.2f} | {paper_cell} "
            f"| {f'{s.mean - p:+.2f}' if p is not None else '-'} |" + last
        )
    return md


def _budget_note(runs: list[Run]) -> list[str]:
    """CIFAR runs shorter than the paper's: its Table 6 number is after 64,000 iterations,
    which a shorter run is not expected to reach (a study at a smaller budget compares its
    nets or arms with each other)."""
    if study_family(runs) != "cifar":
        return []
    paper_its = get_recipe("cifar").iterations
    ours = {r.config["optim"].get("iterations") for r in runs}
    if not all(isinstance(n, int) and n < paper_its for n in ours):
        return []
    n = "/".join(f"{k:,}" for k in sorted(ours))
    return [
        "",
        f"The paper column is Table 6's error after {paper_its:,} iterations; these runs train "
        f'{n}, so "ours - paper" holds the shorter budget too: compare the rows with each other.',
    ]


def _unfinished_lines(runs: list[Run]) -> list[str]:
    """Where each run that is still training stands (an interim report of a study that spans
    sessions): its last evaluation, which the table above leaves out until the run finishes."""
    lines = []
    for r in sorted(runs, key=lambda r: (_order(r.model), r.arm, r.seed)):
        if r.final is not None:
            continue
        evals = [row for row in r.metrics if held_out_err(row) is not None]
        total = r.config["optim"].get("iterations")
        of = f" of {total:,}" if isinstance(total, int) else ""
        name = f"{r.model}{f' [{r.arm}]' if r.arm else ''} seed {r.seed}"  # as the table names arms
        if not evals:
            lines.append(f"- {name}: not evaluated yet")
            continue
        last = evals[-1]
        text = f"- {name}: iteration {last['iteration']:,}{of}: "
        text += f"held-out error {held_out_err(last):.2f}%"
        if last.get("train_err") is not None:
            text += f", training error {last['train_err']:.2f}%"
        lines.append(text + (f", lr {last['lr']:g}" if last.get("lr") is not None else ""))
    if not lines:
        return []
    return ["", "Not finished (not in the table; each run's last evaluation):", "", *lines]


def write_report(out: str | Path) -> Path:
    out = Path(out)
    runs = collect_runs(out)
    if not runs:
        raise ValueError(f"no runs (directories with config.json and metrics.jsonl) in {str(out)!r}")
    text = FAMILY_TEXT[study_family(runs)]
    summary = summarize(runs)
    fig_name, fig_title = text["figure"]
    plot_training_curves(runs, out / fig_name)
    has_resp = any(r.responses for r in runs)
    if has_resp:
        plot_responses(runs, out / "fig7_layer_responses.png")
    md = [f"# {text['title']}", ""]
    md += [
        "Generated by `reslearn report` from the runs in this directory; every number below was "
        "measured by those runs.",
        "",
        "## Provenance",
        "",
    ]
    md += _provenance(runs)
    md += ["", "## Verdicts (computed from the numbers)", ""]
    md += [f"- {v}" for v in verdicts(runs, summary)]
    md += ["", text["table"], ""]
    md += _table_rows(summary, text["paper_col"])
    md += _budget_note(runs)
    md += _unfinished_lines(runs)
    deeper = sorted({r.model for r in runs if not r.plain}, key=_order)[1:]
    if any(r.arm for r in runs):
        head = "## Arms over training (held-out error, %; each seed against the reference arm's same seed)"
        md += ["", head, "", *(f"- {t.summary()}" for t in arm_trends(runs))]
    elif trends := [t for d in deeper if (t := depth_trend(runs, d))]:
        md += ["", *_trend_section(trends)]
    md += ["", f"## {fig_title}", "", f"![{fig_title.split(':')[0]}]({fig_name})", ""]
    if has_resp:
        md += [
            "## Figure 7: layer responses (std of each 3x3 layer after BN, test set)",
            "",
            "![Figure 7](fig7_layer_responses.png)",
            "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path
