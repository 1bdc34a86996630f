"""Q5 transfer learning: the set-up (hwlib.transfer_setup), train_model and finetune/freeze
(hwlib.transfer), data and weights loading and their downloads, the digits experiment
(hwlib.transfer_digits); the public checks are in tests/test_check_transfer.py.

Everything runs on the CPU with tiny models and images; the hymenoptera test uses the shared copy of
the dataset (skipped when absent). References are independent: parameters compared before/after,
accuracies and losses recomputed from the returned model, file hashes computed here.
"""

from __future__ import annotations

import copy
import hashlib
import random
import warnings
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from hwlib import plots, transfer, transfer_digits, transfer_setup
from hwlib.data import DATASETS, DataError, fetch
from hwlib.data import hymenoptera


# One torch thread in every test here: on 2 shared cores, more threads only wait for each other.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


class TinyConv(nn.Module):
    """conv-relu-global average pool backbone (``features``) and a Linear head ``fc``."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


def _write_pngs(folder, color, count, rng):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.clip(np.array(color)[None, None, :] + rng.normal(0, 40, size=(16, 16, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.png")


@pytest.fixture
def image_folder(tmp_path, rng):
    """A generated ImageFolder tree: reddish vs bluish 16x16 PNGs, 12 train + 6 val per class."""
    for split, count in (("train", 12), ("val", 6)):
        _write_pngs(tmp_path / split / "red", (200, 40, 40), count, rng)
        _write_pngs(tmp_path / split / "blue", (40, 40, 200), count, rng)
    return tmp_path


def _tiny_loaders(root, generator, batch_size=4):
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    tf = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.25] * 3)])
    datasets = {split: ImageFolder(str(root / split), transform=tf) for split in ("train", "val")}
    return transfer_setup.make_dataloaders(datasets, batch_size=batch_size, generator=generator)


def _params(model, skip_head=None):
    return {n: p.detach().clone() for n, p in model.named_parameters() if skip_head is None or not n.startswith(skip_head + ".")}


# --- set-up --------------------------------------------------------------------------------------

def test_choose_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert transfer_setup.choose_device() == torch.device("cuda")
    assert transfer_setup.choose_device("cuda:1") == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert transfer_setup.choose_device("auto") == torch.device("cpu")
    assert transfer_setup.choose_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        transfer_setup.choose_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        transfer_setup.choose_device("gpu please")


def test_seed_everything_reproduces_every_generator():
    def draws(gen):
        return (random.random(), np.random.rand(), torch.rand(1).item(), torch.randperm(10, generator=gen).tolist())

    first = draws(transfer_setup.seed_everything(7))
    again = draws(transfer_setup.seed_everything(7))
    other = draws(transfer_setup.seed_everything(8))
    assert first == again
    assert all(a != b for a, b in zip(first, other))
    with pytest.raises(ValueError, match="seed"):
        transfer_setup.seed_everything(-1)


def test_per_class_subset_draws_per_class_reproducibly():
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 7)
    data = torch.utils.data.TensorDataset(torch.arange(20.0), labels)
    subset = transfer_setup.per_class_subset(data, 4, torch.Generator().manual_seed(0))
    kept = labels[subset.indices]
    assert [(kept == c).sum().item() for c in range(3)] == [4, 3, 4]   # class 1 has only 3
    same = transfer_setup.per_class_subset(data, 4, torch.Generator().manual_seed(0))
    assert same.indices == subset.indices
    others = {tuple(transfer_setup.per_class_subset(data, 4, torch.Generator().manual_seed(s)).indices) for s in range(5)}
    assert len(others) > 1, "the draw must depend on the generator"
    with pytest.raises(ValueError, match="per_class"):
        transfer_setup.per_class_subset(data, 0)


def test_data_transforms_shapes_and_normalisation():
    from PIL import Image

    tfs = transfer_setup.data_transforms(32)
    image = Image.fromarray(np.full((50, 70, 3), 255, np.uint8))
    for split in ("train", "val"):
        out = tfs[split](image)
        assert out.shape == (3, 32, 32)
        expected = (1 - torch.tensor(transfer_setup.IMAGENET_MEAN)) / torch.tensor(transfer_setup.IMAGENET_STD)
        torch.testing.assert_close(out[:, 16, 16], expected)
    with pytest.raises(ValueError, match="resize"):
        transfer_setup.data_transforms(64, resize=32)


# --- train_model -------------------------------------------------------------------------------------

class SnapshotStepLR(torch.optim.lr_scheduler.StepLR):
    """StepLR that remembers the weights each epoch is validated with (it steps right before val)."""

    def __init__(self, optimizer, model, **kwargs):
        super().__init__(optimizer, **kwargs)   # (steps once itself, before the snapshots start)
        self.model, self.snapshots = model, []

    def step(self, *args, **kwargs):
        super().step(*args, **kwargs)
        if hasattr(self, "snapshots"):   # StepLR.__init__ steps once itself
            self.snapshots.append(copy.deepcopy(self.model.state_dict()))


def test_train_model_learns_keeps_best_and_records_history(image_folder):
    generator = transfer_setup.seed_everything(0)
    dataloaders, sizes = _tiny_loaders(image_folder, generator)
    assert sizes == {"train": 24, "val": 12}
    model = TinyConv()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = SnapshotStepLR(optimizer, model, step_size=3, gamma=0.5)
    num_epochs = 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # e.g. scheduler.step() before optimizer.step()
        returned = transfer.train_model(torch.device("cpu"), dataloaders, sizes, model, nn.CrossEntropyLoss(),
                                        optimizer, scheduler, num_epochs=num_epochs, verbose=False)
    history = returned.history
    assert sorted(history) == sorted(transfer.HISTORY_KEYS)
    assert all(len(values) == num_epochs for values in history.values())
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert max(history["val_acc"]) == 1.0
    # the scheduler stepped once per epoch
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5 ** (num_epochs // 3))
    # best kept: the weights of the first epoch with the best validation accuracy ...
    best = int(np.argmax(history["val_acc"]))
    state = returned.state_dict()
    assert all(torch.equal(state[k], v) for k, v in scheduler.snapshots[best].items())
    # ... and the history's numbers are that model's numbers (recomputed independently here)
    x = torch.stack([img for img, _ in dataloaders["val"].dataset])
    y = torch.tensor(dataloaders["val"].dataset.targets)
    with torch.no_grad():
        scores = returned.eval()(x)
    assert nn.functional.cross_entropy(scores, y).item() == pytest.approx(history["val_loss"][best], rel=1e-5)
    assert transfer_setup.evaluate(returned, dataloaders["val"], "cpu") == history["val_acc"][best] == returned.best_val_acc


def test_train_model_rejects_bad_arguments(image_folder):
    dataloaders, sizes = _tiny_loaders(image_folder, torch.Generator().manual_seed(0))
    model = TinyConv()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    args = (torch.device("cpu"), dataloaders, sizes, model, nn.CrossEntropyLoss(), optimizer, None)
    with pytest.raises(ValueError, match="num_epochs"):
        transfer.train_model(*args, num_epochs=0)
    with pytest.raises(ValueError, match="'train' and 'val'"):
        transfer.train_model(torch.device("cpu"), {"train": dataloaders["train"]}, sizes, model,
                             nn.CrossEntropyLoss(), optimizer, None)
    with pytest.raises(ValueError, match=r"dataset_sizes\['train'\] is 99"):
        transfer.train_model(torch.device("cpu"), dataloaders, {"train": 99, "val": 12}, model,
                             nn.CrossEntropyLoss(), optimizer, None, num_epochs=1, verbose=False)


# --- finetune and freeze -----------------------------------------------------------------------------

def _pretrained_tiny(seed=3):
    """A TinyConv "pretrained" on another task (5 classes): weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return TinyConv(num_classes=5)


def test_freeze_trains_only_the_new_head(image_folder):
    generator = transfer_setup.seed_everything(1)
    dataloaders, sizes = _tiny_loaders(image_folder, generator)
    source = _pretrained_tiny()
    backbone = _params(source, skip_head="fc")
    model = transfer.freeze("cpu", dataloaders, sizes, 2, num_epochs=2, pretrained=lambda: copy.deepcopy(source),
                            lr=0.05, verbose=False)
    assert model is not source and (model.fc.in_features, model.fc.out_features) == (8, 2)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    after = _params(model, skip_head="fc")
    assert all(torch.equal(after[n], backbone[n]) for n in backbone), "freeze: the backbone changed"
    assert len(model.history["val_acc"]) == 2 and model.best_val_acc == max(model.history["val_acc"])


def test_finetune_trains_every_parameter_from_the_pretrained_ones(image_folder):
    generator = transfer_setup.seed_everything(2)
    dataloaders, sizes = _tiny_loaders(image_folder, generator)
    source = _pretrained_tiny()
    backbone = _params(source, skip_head="fc")
    model = transfer.finetune("cpu", dataloaders, sizes, 2, num_epochs=1, pretrained=lambda: copy.deepcopy(source),
                              lr=0.05, verbose=False)
    assert model.fc.out_features == 2 and all(p.requires_grad for p in model.parameters())
    after = _params(model, skip_head="fc")
    assert all(not torch.equal(after[n], backbone[n]) for n in backbone), "finetune: a backbone parameter did not train"
    assert all(torch.equal(p, backbone[n]) for n, p in _params(source, skip_head="fc").items()), "source changed"
    # it starts from the pretrained weights: with a zero learning rate they come back unchanged
    still = transfer.finetune("cpu", dataloaders, sizes, 2, num_epochs=1, pretrained=lambda: copy.deepcopy(source),
                              lr=0.0, verbose=False)
    assert all(torch.equal(p, backbone[n]) for n, p in _params(still, skip_head="fc").items())


@pytest.mark.parametrize("func", ["finetune", "freeze"])
def test_scenarios_use_the_seed_recipe_by_default(monkeypatch, func):
    """Defaults: cross-entropy, SGD lr 1e-3 momentum 0.9, StepLR(7, 0.1), 25 epochs (the seed's)."""
    seen = {}

    def recorder(device, dataloaders, dataset_sizes, model, criterion, optimizer, scheduler, num_epochs=25, **kw):
        seen.update(model=model, criterion=criterion, optimizer=optimizer, scheduler=scheduler, num_epochs=num_epochs)
        return model

    monkeypatch.setattr(transfer, "train_model", recorder)
    returned = getattr(transfer, func)("cpu", {}, {}, 3, pretrained=_pretrained_tiny)
    assert returned is seen["model"] and seen["num_epochs"] == 25
    assert isinstance(seen["criterion"], nn.CrossEntropyLoss)
    group = seen["optimizer"].param_groups[0]
    assert isinstance(seen["optimizer"], torch.optim.SGD) and (group["lr"], group["momentum"]) == (1e-3, 0.9)
    scheduler = seen["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR) and (scheduler.step_size, scheduler.gamma) == (7, 0.1)
    optimized = {id(p) for g in seen["optimizer"].param_groups for p in g["params"]}
    expected = returned.fc.parameters() if func == "freeze" else returned.parameters()
    assert optimized == {id(p) for p in expected}


def test_scenarios_reject_bad_arguments():
    with pytest.raises(TypeError, match="pretrained must be a function returning"):
        transfer.finetune("cpu", {}, {}, 2, pretrained=TinyConv())      # a network, not a function making one
    with pytest.raises(TypeError, match="got str"):
        transfer.freeze("cpu", {}, {}, 2, pretrained="resnet18")
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        transfer.freeze("cpu", {}, {}, 0, pretrained=TinyConv)


def test_visualize_model_titles_the_predictions_and_restores_the_mode(image_folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dataloaders, _ = _tiny_loaders(image_folder, torch.Generator().manual_seed(0))
    model = _pretrained_tiny().train()
    names = [f"class {k}" for k in range(5)]
    fig = transfer.visualize_model("cpu", dataloaders, model, names, num_images=4, mean=[0.5] * 3, std=[0.25] * 3)
    assert model.training and all(p.grad is None for p in model.parameters())
    dataset = dataloaders["val"].dataset
    indices = np.linspace(0, len(dataset) - 1, 4).round().astype(int)     # spread over the classes
    with torch.no_grad():
        preds = model.eval()(torch.stack([dataset[i][0] for i in indices])).argmax(1).tolist()
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == [f"predicted: {names[p]}\ntrue: {names[dataset[i][1]]}" for p, i in zip(preds, indices)]
    plt.close(fig)


# --- hymenoptera ---------------------------------------------------------------------------------------

def test_hymenoptera_is_registered():
    assert {"hymenoptera", "resnet18"} <= set(DATASETS)


def test_load_hymenoptera_skips_the_placeholder_gif(shared_data):
    datasets = hymenoptera.load_hymenoptera(shared_data)
    assert datasets["train"].classes == ["ants", "bees"]
    counts = {split: np.bincount(ds.targets).tolist() for split, ds in datasets.items()}
    assert counts == {"train": [123, 121], "val": [70, 83]}   # 124 files in train/ants, one is the placeholder
    assert not any(path.endswith(".gif") for path, _ in datasets["train"].samples)


def test_hymenoptera_path_end_to_end(shared_data):
    import matplotlib

    matplotlib.use("Agg")
    generator = transfer_setup.seed_everything(0)
    datasets = hymenoptera.load_hymenoptera(shared_data, transfer_setup.data_transforms(32))
    small = {"train": transfer_setup.per_class_subset(datasets["train"], 4, generator),
             "val": transfer_setup.per_class_subset(datasets["val"], 3, generator)}
    dataloaders, sizes = transfer_setup.make_dataloaders(small, batch_size=4, generator=generator)
    assert sizes == {"train": 8, "val": 6}
    model, source = transfer_setup.load_resnet18(pretrained=False)
    assert source.startswith("random init")
    model = transfer.finetune(transfer_setup.choose_device("cpu"), dataloaders, sizes, 2, num_epochs=1,
                              pretrained=lambda: model, verbose=False)
    assert len(model.history["val_acc"]) == 1 and 0 <= model.history["val_acc"][0] <= 1
    fig = transfer.visualize_model("cpu", dataloaders, model, datasets["train"].classes, num_images=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4 and all("true: " in t for t in titles)
    assert {t.split("true: ")[1] for t in titles} == {"ants", "bees"}   # spread over the val set
    plots.plot_history({"finetune": model.history})


def _link_tree(src, dst):
    """A copy of the dataset tree made of symlinks (cheap), so a test may damage it."""
    for path in src.rglob("*"):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)


def test_missing_incomplete_and_corrupt_hymenoptera(shared_data, tmp_path):
    with pytest.raises(DataError, match="fetch hymenoptera"):
        hymenoptera.load_hymenoptera(tmp_path)
    folder = tmp_path / "hymenoptera_data"
    _link_tree(shared_data / "hymenoptera_data", folder)
    assert DATASETS["hymenoptera"].present(tmp_path)
    victim = sorted((folder / "val" / "bees").iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError, match=r"val/bees/ has 82 files, expected 83"):
        hymenoptera.load_hymenoptera(tmp_path)
    assert not DATASETS["hymenoptera"].present(tmp_path)
    victim.write_bytes((shared_data / "hymenoptera_data" / "val" / "bees" / victim.name).read_bytes()[:100])
    with pytest.raises(DataError, match=f"corrupt.*{victim.name}"):
        hymenoptera.load_hymenoptera(tmp_path)


def _fake_zip(path, tmp_path, rng, extra_member=None):
    """A zip shaped like the official one (hymenoptera_data/{train,val}/{ants,bees}/...) with tiny PNGs."""
    tree = tmp_path / "tree"
    for sub in ("train/ants", "train/bees", "val/ants", "val/bees"):
        _write_pngs(tree / "hymenoptera_data" / sub, (100, 100, 100), 2, rng)
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(tree.rglob("*.png")):
            archive.write(file, file.relative_to(tree).as_posix())
        if extra_member:
            archive.writestr(extra_member, b"x")
    return path


def test_fetch_hymenoptera_unpacks_and_verifies(monkeypatch, tmp_path, rng, http_mirror):
    monkeypatch.setattr(hymenoptera, "HYMENOPTERA_FILE_COUNTS", {s: 2 for s in hymenoptera.HYMENOPTERA_FILE_COUNTS})
    archive = _fake_zip(tmp_path / "src.zip", tmp_path, rng)
    monkeypatch.setattr(hymenoptera, "HYMENOPTERA_URL", http_mirror.put("hymenoptera_data.zip", archive))
    root = tmp_path / "root"
    folder = fetch("hymenoptera", root)
    assert folder == root / "hymenoptera_data" and DATASETS["hymenoptera"].present(root)
    assert [p.name for p in root.iterdir()] == ["hymenoptera_data"]     # no zip or temporary left behind
    assert len(hymenoptera.load_hymenoptera(root)["val"]) == 4
    # a checksum, once known, is enforced
    monkeypatch.setattr(hymenoptera, "HYMENOPTERA_ZIP_SHA256", "0" * 64)
    with pytest.raises(DataError, match="does not match its checksum"):
        fetch("hymenoptera", tmp_path / "root2")
    assert not (tmp_path / "root2").exists()
    monkeypatch.setattr(hymenoptera, "HYMENOPTERA_ZIP_SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    assert fetch("hymenoptera", tmp_path / "root3").is_dir()


def test_fetch_hymenoptera_refuses_zip_slip_and_reports_offline(monkeypatch, tmp_path, rng, http_mirror):
    archive = _fake_zip(tmp_path / "evil.zip", tmp_path, rng, extra_member="hymenoptera_data/../../evil.txt")
    monkeypatch.setattr(hymenoptera, "HYMENOPTERA_URL", http_mirror.put("hymenoptera_data.zip", archive))
    with pytest.raises(DataError, match="outside the data root"):
        fetch("hymenoptera", tmp_path / "root")
    assert not (tmp_path / "root").exists() and not (tmp_path / "evil.txt").exists()

    monkeypatch.setattr(hymenoptera, "HYMENOPTERA_URL", http_mirror.dead_url("hymenoptera_data.zip"))
    with pytest.raises(DataError, match="could not download .*hymenoptera_data.zip.*unzip it into"):
        fetch("hymenoptera", tmp_path / "root")
    assert not (tmp_path / "root").exists(), "a failed fetch must leave no folder behind"


def test_pooch_unzip_never_writes_outside_its_folder(tmp_path, rng):
    """What the kit's refusal adds to: pooch.Unzip (zipfile) rewrites a ``..`` name to stay inside."""
    import pooch

    archive = _fake_zip(tmp_path / "evil.zip", tmp_path, rng, extra_member="hymenoptera_data/../../evil.txt")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    pooch.Unzip(extract_dir=str(tmp_path / "deep" / "er" / "out"))(str(archive), "download", None)
    inside = tmp_path / "deep" / "er" / "out"
    found = list(tmp_path.rglob("evil.txt"))
    assert found and all(inside in p.parents for p in found), found


# --- ResNet-18 weights ---------------------------------------------------------------------------------

@pytest.fixture
def no_hub_cache(monkeypatch, tmp_path):
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def _weights_file(folder, payload: bytes):
    """Write ``payload`` under torchvision's naming scheme: resnet18-<first 8 hex digits of its sha256>.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"resnet18-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    path.write_bytes(payload)
    return path


def _state_dict_bytes(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(5)
    model = resnet18(weights=None)
    torch.save(model.state_dict(), tmp_path / "sd.pth")
    return (tmp_path / "sd.pth").read_bytes(), model


def test_load_resnet18_uses_a_verified_weights_file(monkeypatch, tmp_path, no_hub_cache):
    payload, reference = _state_dict_bytes(tmp_path)
    path = _weights_file(tmp_path / "root" / "weights", payload)
    monkeypatch.setattr(hymenoptera, "RESNET18_WEIGHTS_FILE", path.name)
    model, source = transfer_setup.load_resnet18(pretrained=True, data_root=tmp_path / "root")
    assert source == f"ImageNet weights ({path})"
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name
    # the same file in torch's hub cache (where torchvision downloads it) is found too
    (no_hub_cache / "checkpoints").mkdir(parents=True)
    path.rename(no_hub_cache / "checkpoints" / path.name)
    assert transfer_setup.load_resnet18(data_root=tmp_path / "root")[1].startswith("ImageNet weights")


def test_load_resnet18_rejects_corrupt_weights(monkeypatch, tmp_path, no_hub_cache):
    payload, _ = _state_dict_bytes(tmp_path)
    path = _weights_file(tmp_path / "weights", payload)
    monkeypatch.setattr(hymenoptera, "RESNET18_WEIGHTS_FILE", path.name)
    path.write_bytes(payload[:-10])                                         # truncated
    with pytest.raises(DataError, match="corrupt, truncated or not the published file"):
        transfer_setup.load_resnet18(data_root=tmp_path)
    path.unlink()
    not_weights = _weights_file(tmp_path / "weights", b"not a state dict")  # right hash, wrong content
    monkeypatch.setattr(hymenoptera, "RESNET18_WEIGHTS_FILE", not_weights.name)
    with pytest.raises(DataError, match="not a ResNet-18 state dict"):
        transfer_setup.load_resnet18(data_root=tmp_path)
    # under the published name, bytes that do not hash to f37072fd... are refused
    monkeypatch.undo()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(no_hub_cache))
    (tmp_path / "weights" / "resnet18-f37072fd.pth").write_bytes(payload)
    with pytest.raises(DataError, match="name promises f37072fd"):
        transfer_setup.load_resnet18(data_root=tmp_path)


def test_imagenet_resnet18_loads_the_weights_or_says_how_to_get_them(monkeypatch, tmp_path, no_hub_cache):
    with pytest.raises(DataError, match="imagenet_resnet18: random init .*fetch resnet18"):
        transfer_setup.imagenet_resnet18(tmp_path)
    payload, reference = _state_dict_bytes(tmp_path)
    monkeypatch.setattr(hymenoptera, "RESNET18_WEIGHTS_FILE", _weights_file(tmp_path / "weights", payload).name)
    first, second = transfer_setup.imagenet_resnet18(tmp_path), transfer_setup.imagenet_resnet18(tmp_path)
    assert first is not second and all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                                           reference.state_dict().values()))


def test_load_resnet18_without_weights_says_how_to_get_them(monkeypatch, tmp_path, no_hub_cache, http_mirror):
    model, source = transfer_setup.load_resnet18(pretrained=True, data_root=tmp_path)
    assert source.startswith("random init (no weights: run `python -m hwlib.data fetch resnet18`")
    assert str(tmp_path / "weights") in source and isinstance(model.fc, nn.Linear)

    monkeypatch.setattr(hymenoptera, "WEIGHTS_BASE_URL", http_mirror.dead_url(""))   # offline
    _, source = transfer_setup.load_resnet18(pretrained=True, data_root=tmp_path, download=True)
    assert source.startswith("random init") and "download failed" in source and "could not download" in source
    assert not (tmp_path / "weights").exists(), "a failed download must leave no folder behind"
    assert transfer_setup.load_resnet18(pretrained=False)[1] == "random init (pretrained=False)"


def test_load_resnet18_downloads_and_verifies_the_weights(monkeypatch, tmp_path, no_hub_cache, http_mirror):
    payload, reference = _state_dict_bytes(tmp_path)
    name = _weights_file(tmp_path / "src", payload).name
    monkeypatch.setattr(hymenoptera, "RESNET18_WEIGHTS_FILE", name)
    monkeypatch.setattr(hymenoptera, "WEIGHTS_BASE_URL", http_mirror.url(""))
    model, source = transfer_setup.load_resnet18(pretrained=True, data_root=tmp_path / "root", download=True)
    assert source.startswith("random init") and "could not download" in source      # 404: not on the mirror yet
    assert not (tmp_path / "root" / "weights").exists()
    http_mirror.put(name, payload[:-10])                                           # served truncated
    _, source = transfer_setup.load_resnet18(pretrained=True, data_root=tmp_path / "root", download=True)
    assert "name promises" in source and not (tmp_path / "root" / "weights").exists()
    http_mirror.put(name, payload)
    model, source = transfer_setup.load_resnet18(pretrained=True, data_root=tmp_path / "root", download=True)
    assert source == f"ImageNet weights ({tmp_path / 'root' / 'weights' / name})"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_verify_weights_needs_a_hash_in_the_name(tmp_path):
    (tmp_path / "resnet18.pth").write_bytes(b"x")
    with pytest.raises(DataError, match="carries no hash"):
        hymenoptera.verify_weights(tmp_path / "resnet18.pth")


# --- the offline experiment's data ---------------------------------------------------------------------

def test_digit_transfer_datasets_split_and_relabel(rng):
    def split(n):
        return rng.normal(size=(n, 1, 28, 28)).astype(np.float32), np.arange(n) % 10

    mnist = {}
    for name, n in (("train", 400), ("val", 100), ("test", 100)):
        mnist[f"X_{name}"], mnist[f"y_{name}"] = split(n)
    ds = transfer_digits.digit_transfer_datasets(mnist, labels_per_class=3, max_source=50, max_eval=20,
                                          generator=torch.Generator().manual_seed(0))
    assert len(ds["source_train"]) == 50 and len(ds["target_val"]) == 20 and len(ds["source_val"]) == 20
    target_labels = torch.stack([y for _, y in ds["target_train"]])
    assert np.bincount(target_labels.numpy()).tolist() == [3] * 5
    # relabelled: the image stored with target label k is an image of digit 5 + k
    X = torch.as_tensor(mnist["X_train"])
    for x, label in ds["target_train"]:
        index = int(torch.nonzero((X == x).flatten(1).all(1))[0])
        assert mnist["y_train"][index] == 5 + int(label)
    assert set(ds["source_train"].tensors[1].tolist()) <= set(range(5))
    with pytest.raises(ValueError, match="disjoint"):
        transfer_digits.digit_transfer_datasets(mnist, source_digits=(0, 1), target_digits=(1, 2))


def test_small_cnn_reads_digits_through_a_replaceable_head():
    model = transfer_digits.SmallCNN(num_classes=3)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3) and model.fc.in_features == 32 * 7 * 7
    model.fc = nn.Linear(model.fc.in_features, 5)          # what finetune and freeze do
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 5)
    with pytest.raises(ValueError, match="SmallCNN: num_classes must be a positive integer"):
        transfer_digits.SmallCNN(num_classes=0)
