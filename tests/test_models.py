import io
import pickle

import pytest
import torch
import torchvision

import reslearn
from reslearn import paper
from reslearn.cli import main as cli_main
from reslearn.models import ZeroPadShortcut, stage_complexity

ALL = reslearn.list_models()
HUGE = {"resnet1202", "resnet152", "plain152"}  # build and count only


def size_of(model):
    return (32, 32) if model.stem == "cifar" else (224, 224)


def test_registry_names():
    expected = {f"{k}{d}" for k in ("resnet", "plain") for d in (18, 34, 50, 101, 152)}
    expected |= {f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202)}
    expected |= {f"plain{d}" for d in (20, 32, 44, 56, 110)}
    assert set(ALL) == expected


@pytest.mark.parametrize("name", ALL)
def test_forward_shape_and_finite(name):
    torch.manual_seed(0)
    model = reslearn.create_model(name)
    if name in HUGE:
        return  # construction is the check here; counting is below
    cifar = model.stem == "cifar"
    n_classes = 10 if cifar else 1000
    # ImageNet nets: a small input keeps the test fast; the net is fully convolutional.
    x = torch.randn(2, 3, 32, 32) if cifar else torch.randn(2, 3, 64, 64)
    model.train()
    y = model(x)
    assert y.shape == (2, n_classes)
    assert torch.isfinite(y).all()


def cifar_params_by_formula(depth: int, classes: int = 10) -> int:
    """Parameters of a 6n+2 CIFAR net with option A, derived from Section 4.2 by hand:
    a 3x3 stem of 16 filters, then 3 stages of n basic blocks (two 3x3 convs, each
    followed by a BN of 2w parameters) at widths 16/32/64, the first conv of stages 2
    and 3 reading w/2 channels; option A adds no parameters; then the fc."""
    n = (depth - 2) // 6
    total = 3 * 16 * 9 + 2 * 16  # stem conv + BN
    for s, w in enumerate((16, 32, 64)):
        for b in range(n):
            c_in = w // 2 if (s > 0 and b == 0) else w
            total += 9 * c_in * w + 9 * w * w + 2 * (2 * w)
    return total + 64 * classes + classes


def torchvision_params(depth: int, without_projections: bool = False) -> int:
    """Parameter count of torchvision's ResNet (an independent implementation of option B);
    its plain counterpart is the same net without the projection shortcuts."""
    tv = getattr(torchvision.models, f"resnet{depth}")()
    total = sum(p.numel() for p in tv.parameters())
    if without_projections:
        total -= sum(p.numel() for n, p in tv.named_parameters() if ".downsample." in n)
    return total


@pytest.mark.parametrize("name", ALL)
def test_params_match_independent_derivations(name):
    spec = reslearn.get_model_spec(name)
    params = sum(p.numel() for p in reslearn.create_model(name).parameters())
    if spec.family == "cifar":
        assert params == cifar_params_by_formula(spec.depth)  # plain == option A: same layers
        if spec.residual:  # and as the paper prints it (Table 6: 0.27M ... 19.4M)
            printed = paper.CIFAR_PARAMS_PRINTED[spec.depth]
            digits = len(printed[:-1].split(".")[1])
            assert f"{params / 1e6:.{digits}f}M" == printed
    else:
        assert params == torchvision_params(spec.depth, without_projections=not spec.residual)
        if spec.residual:
            assert params == paper.IMAGENET_PARAMS[spec.depth]


def test_formula_is_not_the_code():
    """The hand derivation disagrees with nets that differ: a guard against a formula that
    merely echoes the implementation."""
    assert cifar_params_by_formula(20) == 269_722  # the count quoted as 0.27M by the paper
    b = sum(p.numel() for p in reslearn.create_model("resnet20", shortcut="B").parameters())
    assert b != cifar_params_by_formula(20)


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_golden_macs_imagenet(depth):
    c = reslearn.complexity(reslearn.create_model(f"resnet{depth}"), (224, 224))
    assert isinstance(c, reslearn.Complexity) and c.params == paper.IMAGENET_PARAMS[depth]
    assert abs(c.macs - paper.TABLE1_MACS[depth]) / paper.TABLE1_MACS[depth] < 0.02


def test_macs_v15_and_option_a():
    v15 = reslearn.complexity(reslearn.create_model("resnet50", variant="v1.5"), (224, 224))
    assert abs(v15.macs - 4.09e9) / 4.09e9 < 0.005
    a34 = reslearn.complexity(reslearn.create_model("resnet34", shortcut="A"), (224, 224))
    assert abs(a34.macs - 3.64e9) / 3.64e9 < 0.005


def test_stage_breakdown_sums_to_total():
    model = reslearn.create_model("resnet50")
    rows = stage_complexity(model, (224, 224))
    assert [r.stage for r in rows] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "fc"]
    assert [r.output_size for r in rows[:5]] == [(56, 56), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert [r.blocks for r in rows[1:5]] == [3, 4, 6, 3]
    total = reslearn.complexity(model, (224, 224))
    assert sum(r.params for r in rows) == total.params
    assert sum(r.macs for r in rows) == total.macs


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_shortcut_parameter_relations_imagenet(depth):
    def n(name, **kw):
        return sum(p.numel() for p in reslearn.create_model(name, **kw).parameters())

    a, b, c = (n(f"resnet{depth}", shortcut=s) for s in "ABC")
    assert n(f"plain{depth}") == a < b < c


@pytest.mark.parametrize("depth", [20, 56])
def test_shortcut_parameter_relations_cifar(depth):
    def n(name, **kw):
        return sum(p.numel() for p in reslearn.create_model(name, **kw).parameters())

    a, b, c = (n(f"resnet{depth}", shortcut=s) for s in "ABC")
    assert n(f"plain{depth}") == a < b < c


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_torchvision_state_dict_and_outputs(depth):
    torch.manual_seed(depth)
    tv = getattr(torchvision.models, f"resnet{depth}")().eval()
    ours = reslearn.create_model(f"resnet{depth}", shortcut="B", variant="v1.5").eval()
    ours.load_state_dict(tv.state_dict(), strict=True)
    # v1 has the same names and shapes (the stride moves, no weight does).
    reslearn.create_model(f"resnet{depth}").load_state_dict(tv.state_dict(), strict=True)
    # Perturb BN statistics so eval-mode BN is not the identity, then compare outputs.
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(1 if depth >= 101 else 2, 3, 96, 96)
    with torch.no_grad():
        assert (ours(x) - tv(x)).abs().max().item() < 1e-4


def test_option_a_pickles_scripts_and_pads():
    sc = ZeroPadShortcut(64, 256, 1)
    x = torch.randn(2, 64, 8, 8)
    y = sc(x)
    assert y.shape == (2, 256, 8, 8)
    assert torch.equal(y[:, :64], x) and y[:, 64:].abs().sum() == 0
    y2 = ZeroPadShortcut(16, 32, 2)(torch.randn(2, 16, 9, 9))
    assert y2.shape == (2, 32, 5, 5)
    assert list(sc.parameters()) == [] and list(sc.buffers()) == []

    model = reslearn.create_model("resnet20").eval()
    x = torch.randn(2, 3, 32, 32)
    clone = pickle.loads(pickle.dumps(model))
    scripted = torch.jit.script(model)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(clone(x), ref)
        assert torch.allclose(loaded(x), ref, atol=1e-5)
    with pytest.raises(ValueError, match="out_channels"):
        ZeroPadShortcut(32, 16, 1)


def test_option_a_bottleneck_imagenet_forward():
    m = reslearn.create_model("resnet50", shortcut="A")
    assert sum(p.numel() for p in m.parameters()) == sum(
        p.numel() for p in reslearn.create_model("plain50").parameters()
    )
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_cifar_names_and_depths():
    assert reslearn.create_model("resnet50").stem == "imagenet"  # ImageNet wins
    m = reslearn.create_model("cifar_resnet50")
    assert m.stem == "cifar" and [len(s) for s in m.stages()] == [8, 8, 8]
    assert [len(s) for s in reslearn.create_model("cifar_resnet26").stages()] == [4, 4, 4]
    assert reslearn.create_model("cifar_plain8").residual is False
    # Names that mean ImageNet-style nets elsewhere (timm) are not CIFAR aliases here.
    for name in ("resnet26", "resnet200", "plain8"):
        with pytest.raises(ValueError, match="unknown model"):
            reslearn.create_model(name)
    with pytest.raises(ValueError, match="cifar_resnet26"):
        reslearn.create_model("resnet26")
    with pytest.raises(ValueError, match="6n\\+2"):
        reslearn.create_model("resnet21")
    with pytest.raises(ValueError, match="6n\\+2"):
        reslearn.create_model("cifar_plain33")


@pytest.mark.parametrize("name", ALL + ["cifar_resnet26", "cifar_plain14"])
def test_spec_describes_the_built_net(name):
    spec = reslearn.get_model_spec(name)
    m = reslearn.create_model(name)
    assert spec.name == name and m.stem == spec.family and m.residual == spec.residual
    assert [len(s) for s in m.stages()] == list(spec.layers)
    block = {"basic": reslearn.models.BasicBlock, "bottleneck": reslearn.models.Bottleneck}[spec.block]
    assert all(isinstance(b, block) for s in m.stages() for b in s)
    # depth = the convolutions on the main path (stem included) + the fc: the paper's count
    main = sum(1 for n, x in m.named_modules() if isinstance(x, torch.nn.Conv2d) and "downsample" not in n)
    assert main + 1 == spec.depth
    assert m.fc.out_features == spec.num_classes
    assert spec.default_shortcut == (None if not spec.residual else ("A" if spec.family == "cifar" else "B"))
    assert reslearn.models.ModelSpec.from_dict(spec.to_dict()) == spec


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="resnet5O.*resnet50"):
        reslearn.create_model("resnet5O")
    with pytest.raises(ValueError, match="'D'"):
        reslearn.create_model("resnet18", shortcut="D")
    with pytest.raises(ValueError, match="v2"):
        reslearn.create_model("resnet50", variant="v2")
    with pytest.raises(ValueError, match="no shortcuts"):
        reslearn.create_model("plain34", shortcut="B")
    with pytest.raises(ValueError, match="no shortcuts"):
        reslearn.create_model("plain20", shortcut="A")
    with pytest.raises(ValueError, match="num_classes"):
        reslearn.create_model("resnet20", num_classes=0)


def test_overrides():
    m = reslearn.create_model("resnet18", num_classes=7, shortcut=None)
    assert m.fc.out_features == 7 and m.shortcut == "B"
    assert reslearn.create_model("resnet20").shortcut == "A"
    z = reslearn.create_model("resnet20", zero_init_residual=True)
    assert all(b.bn2.weight.abs().sum() == 0 for s in z.stages() for b in s)
    d = reslearn.create_model("resnet20")
    assert all(b.bn2.weight.abs().sum() > 0 for s in d.stages() for b in s)
    # v1 vs v1.5: the stride sits on conv1 or conv2 of the first bottleneck of layer2.
    assert reslearn.create_model("resnet50").layer2[0].conv1.stride == (2, 2)
    assert reslearn.create_model("resnet50", variant="v1.5").layer2[0].conv2.stride == (2, 2)


def test_no_dropout_and_bn_after_every_conv():
    m = reslearn.create_model("resnet50", shortcut="C")
    mods = list(m.modules())
    assert not any(isinstance(x, torch.nn.Dropout) for x in mods)
    n_conv = sum(isinstance(x, torch.nn.Conv2d) for x in mods)
    n_bn = sum(isinstance(x, torch.nn.BatchNorm2d) for x in mods)
    assert n_conv == n_bn


def test_cli_summary_and_table1(capsys):
    assert cli_main(["summary", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "conv5_x" in out and "7x7" in out and "25,557,032" in out and "3,857,973,248" in out
    assert cli_main(["summary", "resnet34", "--shortcut", "A"]) == 0
    assert "shortcut A" in capsys.readouterr().out
    assert cli_main(["table1"]) == 0
    out = capsys.readouterr().out
    for v in list(paper.IMAGENET_PARAMS.values()) + list(paper.CIFAR_PARAMS.values()):
        assert f"{v:,}" in out
    assert "NO" not in out
    assert cli_main(["summary", "resnet21"]) == 2
    assert "6n+2" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["fan_out", "fan_in"])
def test_he_init_statistics(mode):
    """Every conv weight ~ N(0, 2/fan) (He et al. 2015, the paper's [13]); BN starts at
    gamma=1, beta=0."""
    torch.manual_seed(0)
    m = reslearn.create_model("resnet56", init_mode=mode)
    for name, conv in m.named_modules():
        if not isinstance(conv, torch.nn.Conv2d):
            continue
        w = conv.weight
        k = w.shape[2] * w.shape[3]
        fan = (w.shape[0] if mode == "fan_out" else w.shape[1]) * k
        expected = (2.0 / fan) ** 0.5
        if w.numel() >= 2000:  # enough samples for a 10% check
            assert abs(w.std().item() - expected) / expected < 0.1, (name, w.std().item(), expected)
            assert abs(w.mean().item()) < 0.1 * expected
    for bn in (x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    with pytest.raises(ValueError, match="'fan_avg'"):
        reslearn.create_model("resnet20", init_mode="fan_avg")


def test_option_a_inside_a_block():
    """The first block of stage 2 of a CIFAR ResNet: its shortcut is x subsampled by 2 with
    16 zero channels appended, added after the residual branch's BN."""
    m = reslearn.create_model("resnet20").eval()
    block = m.layer2[0]
    assert isinstance(block.downsample, ZeroPadShortcut) and block.downsample.stride == 2
    assert block.conv1.stride == (2, 2) and m.layer2[1].downsample is None  # identity after
    x = torch.randn(2, 16, 16, 16)
    sc = block.downsample(x)
    assert sc.shape == (2, 32, 8, 8)
    assert torch.equal(sc[:, :16], x[:, :, ::2, ::2]) and sc[:, 16:].abs().sum() == 0
    with torch.no_grad():  # zero the branch: the block passes relu(shortcut) on
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
        assert torch.equal(block(x), torch.relu(sc))


@pytest.mark.parametrize("plain,resnet", [("plain20", "resnet20"), ("plain18", "resnet18")])
def test_plain_net_has_no_identity_path(plain, resnet):
    """Zeroing one block's residual branch kills the signal of a plain net (its output no
    longer depends on the input) but not of a ResNet (the identity carries it)."""
    outs = {}
    for name in (plain, resnet):
        torch.manual_seed(0)
        m = reslearn.create_model(name).eval()
        block = m.layer2[1]
        last = block.last_bn()
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
            a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
            outs[name] = (m(a) - m(b)).abs().max().item()
    assert outs[plain] == 0.0
    assert outs[resnet] > 1e-3
