"""What several parts of the report read: the run's files, its test images, the model's
predictions on them and its layers in forward order, each loaded or computed once.

A piece that cannot be had (no weights, no metrics, no test data) raises ReportError naming
what is missing; the failure is kept, so every part that needs the piece says the same thing
without trying again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import inspect
from cnnlab.design.activations import activation_of
from cnnlab.design.summary.render import call_label
from cnnlab.errors import CnnlabError, ReportError
from cnnlab.inspect.hooks import output_tensor
from cnnlab.inspect.maps import call_map_shape
from cnnlab.inspect.names import split_call
from cnnlab.train.evaluate import Evaluation, class_accuracy, confusion_matrix, predict_logits
from cnnlab.train.rundir import METRICS, SPEC, Run, read_config, read_metrics


@dataclass(frozen=True)
class Budget:
    """How much work each costly part may do; sized so a Fashion-MNIST report takes seconds."""

    eval_images: int = 10_000  # test images predicted (confusion matrix, accuracy per class)
    diagnose_images: int = 1000  # images for dead units / activation statistics
    gradient_images: int = 256  # labelled images for gradient flow (one batch)
    gradcam_images: int = 10  # per group: correct (one per class, at most this many classes)
    # and misclassified (the most confident mistakes)
    pair_examples: int = 6  # example images per confused pair
    confused_pairs: int = 4  # most-confused class pairs shown
    filters: int = 32  # first-layer filters shown
    map_layers: int = 6  # layers in the feature-map figure
    map_channels: int = 8  # channels per layer in the feature-map figure
    actmax_stages: int = 3  # deepest stages shown in activation maximization
    actmax_channels: int = 4  # channels per stage
    actmax_steps: int = 48  # optimisation steps per image
    probe_train: int = 2000  # training images for the linear probes
    probe_test: int = 1000  # test images for the linear probes
    probe_epochs: int = 12  # L-BFGS iterations per probe (explain default 100; 12: ~2 s)
    erf_layers: int = 6  # layers whose effective receptive field is measured
    erf_inputs: int = 16  # random inputs the ERF gradient is averaged over

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                option = f" (--{f.name.replace('_', '-')})" if f.name == "eval_images" else ""
                raise CnnlabError(
                    f"report budget {f.name}{option} must be a whole number >= 1, got {value!r}"
                )


def _once(method: Callable) -> property:
    """A cached property whose failure is cached too (a missing artefact is named once)."""
    key = "_" + method.__name__

    def get(self):
        if key not in self.__dict__:
            try:
                self.__dict__[key] = (True, method(self))
            except Exception as error:  # noqa: BLE001 - re-raised to every part that needs it
                self.__dict__[key] = (False, error)
        ok, value = self.__dict__[key]
        if not ok:
            raise value
        return value

    return property(get)


def spread(items: list, k: int) -> list:
    """At most k items, evenly spaced, first and last kept."""
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def metrics_rows(path: Path) -> list[dict]:
    """The rows of RUN/metrics.jsonl (rundir's reader names a line that is not JSON);
    ReportError when there are none yet."""
    if not (path / METRICS).is_file():
        raise ReportError(f"{path / METRICS} is missing: no epoch has been logged")
    rows = read_metrics(path)
    if not rows and "imported" in read_config(path):
        raise ReportError(
            "the run was imported (cnnlab import): its weights were trained elsewhere"
        )
    if not rows:
        raise ReportError(f"{path / METRICS} is empty: training has not completed an epoch")
    return rows


class Sources:
    """The run's inputs to the report. `run` is None (and `no_run` says why) when the run's
    model cannot be loaded; the parts that need no model are still made."""

    def __init__(self, path: Path, run: Run | None, no_run: str | None, budget: Budget) -> None:
        self.path, self.run, self.no_run, self.budget = path, run, no_run, budget
        self.config = dict(run.config) if run is not None else read_config(path)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.config.get("classes") or []]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config.get("input_shape") or ())

    def spec_text(self) -> str:
        """spec.yaml as written, or where a model from code comes from (it has no spec), and
        whether that code has changed since (opened with CNNLAB_ACCEPT_CHANGED_CODE=1)."""
        if not (self.path / SPEC).is_file():
            record = self.config.get("model")
            text = f"# no {SPEC}: the model comes from code\n{json.dumps(record, indent=2)}"
            source = getattr(self.run, "source", None)
            if getattr(source, "kind", None) == "code" and source.sha256 != record.get("sha256"):
                text += (
                    f"\n# {source.file} has changed since: sha256 {source.sha256} now; this "
                    "report's model is built from it as it is now (CNNLAB_ACCEPT_CHANGED_CODE=1)"
                )
            return text
        return (self.path / SPEC).read_text(encoding="utf-8", errors="backslashreplace")

    @_once
    def metrics(self) -> list[dict]:
        return metrics_rows(self.path)

    @property
    def model(self) -> nn.Module:
        if self.run is None:
            raise ReportError(self.no_run or "the run's model could not be loaded")
        return self.run.model

    def split(self, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(uint8 images (n, C, H, W), normalised float x, labels (n,)): the first n of the
        run's `split`, as the model was trained to see them."""
        run = self.run
        if run is None:
            raise ReportError(self.no_run or "the run's model could not be loaded")
        try:
            data = run.dataset(split)
        except CnnlabError as error:  # e.g. the data set's files were moved since training
            raise ReportError(f"the run's {split} images cannot be loaded: {error}") from error
        if len(data) == 0:
            raise ReportError(f"the run's data {run.data!r} has no {split} images")
        images, labels = data.images[:n], data.labels[:n]
        return images, run.preprocess(images).float(), labels

    @_once
    def test(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(uint8 images, normalised float x, labels), the first eval_images of the test split."""
        return self.split("test", self.budget.eval_images)

    @_once
    def evaluation(self) -> tuple[Evaluation, torch.Tensor]:
        """(Evaluation, softmax probabilities (n, K)) of the model on the test images, without
        TTA, predicted as the trainer evaluated: bf16 autocast and channels-last inputs when
        the run used them (`fast` preset, 2000 images: 3.0 s fp32 -> 0.9 s on this CPU)."""
        _, x, y = self.test  # first: no run, no test images
        logits = predict_logits(
            self._layout_copy(),
            x,
            autocast=self.run.autocast,  # the precision training stored, not re-decided
            channels_last=bool(self.config.get("channels_last")),
            batch_size=500,  # 10k images, bf16, channels-last: 37 s at 500 vs 47 s at 256 (load)
        )  # (n, K)
        predicted = logits.argmax(1)
        k = max(len(self.classes), logits.shape[1])
        confusion = confusion_matrix(predicted, y, k)  # (K, K)
        names = self.classes if len(self.classes) == k else [str(i) for i in range(k)]
        evaluation = Evaluation(
            split="test",
            tta=False,
            classes=tuple(names),
            n=len(y),
            accuracy=(predicted == y).float().mean().item(),
            loss=F.cross_entropy(logits, y).item(),
            per_class=class_accuracy(confusion),
            confusion=tuple(tuple(row) for row in confusion.tolist()),
        )
        return evaluation, logits.softmax(1)

    def _layout_copy(self) -> nn.Module:
        """The model in the memory layout it was trained in, as a copy: the run's own model
        keeps its layout. (NCHW weights with channels-last inputs re-lay the weights out in
        every conv call: the results section took 57-72 s instead of 35-43 s, `fast` preset,
        10k images, 2-core machine under load.)"""
        if not self.config.get("channels_last"):
            return self.model
        try:
            copy = deepcopy(self.model)
        except Exception:  # noqa: BLE001 - a model that cannot be copied runs as it is
            return self.model
        for p in copy.parameters():  # for inference; a TorchScript block's copies are
            p.detach_()  # clones with autograd history, whose .grad .to() reads (a warning)
        return copy.to(memory_format=torch.channels_last)

    @_once
    def calls(self) -> list[tuple[str, str, tuple]]:
        """`inspect.layer_calls` of one test image: (label, module name, output shape) of every
        call with a tensor output, blocks too, in the order the calls finish; each call
        labelled as the summary, explain and the explorer read it (`relu` a module's first
        call, `relu #2` its second): a module shared by three blocks is three layers here."""
        _, x, _ = self.test
        with inspect.preserved(self.model):
            return inspect.layer_calls(self.model, x[:1])

    @_once
    def layers(self) -> list[tuple[str, nn.Module, tuple]]:
        """(label, module, output shape (C, H, W) or (D,)) of every leaf module's call
        (`calls`), in the order the calls finish on one test image; a leaf whose output holds
        its channels on another dim (a ConvNeXt block's LayerNorm/Linear/activation on
        (B, H, W, C)) is left out (`map_calls` has its map), as is every 4-D output that is
        no map of the image (`inspect.image_maps`: a window attention's (windows, heads, N,
        N), whose rows the probes read as images; a padding layer's map with a border, at no
        stage's size: an EfficientNet's 'same' padding made 33×33, 18×18, 17×17 ... stages
        of a 32-px net)."""
        return self._leaf_calls(turned=False)

    @_once
    def map_calls(self) -> list[tuple[str, nn.Module, tuple]]:
        """`layers` and the leaf calls whose output is a map of the image held channels last
        (`inspect.map_dims`: a ConvNeXt block's LayerNorm, Linear and GELU on (B, H, W, C)),
        each with its map's shape (C, H, W), as `explain.feature_maps` gives it."""
        return self._leaf_calls(turned=True)

    @_once
    def _layouts(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """`inspect.channel_dims` of one test image, and by call (`map_dims(calls=True)`:
        each call's own channel dim) the maps of the image, 1×1 included, and those with
        H·W > 1."""
        _, x, _ = self.test
        with inspect.preserved(self.model):
            return (
                inspect.channel_dims(self.model, x[:1]),
                inspect.map_dims(self.model, x[:1], every=True, calls=True),
                inspect.map_dims(self.model, x[:1], calls=True),
            )

    def _leaf_calls(self, turned: bool) -> list[tuple[str, nn.Module, tuple]]:
        """Each call's own layout: one GELU module applied to a conv's (B, C, H, W) and, after
        a Linear, to (B, H, W, C) is a map as it is, then one moved (both were moved by the
        module's last call, the first's W read as its channels)."""
        modules = dict(inspect.unwrap(self.model).named_modules())
        off, maps, dims = self._layouts
        dims = dims if turned else {}
        found = []
        for label, name, shape in self.calls:
            if not inspect.is_leaf(modules[name]):  # a ParametrizedConv2d is one layer
                continue
            if dims.get(label, 1) != 1 and len(shape) == 4:
                found.append((label, modules[name], call_map_shape(label, shape, dims)[1:]))
            elif label in maps:  # a map's call: as it is where it holds its channels on dim 1
                if maps[label] == 1:
                    found.append((label, modules[name], shape[1:]))
            elif name not in off and len(shape) != 4:
                found.append((label, modules[name], shape[1:]))
        return found

    def module(self, label: str) -> nn.Module | None:
        """The module that makes the call labelled `label` (`relu #2`: module `relu`), or
        None for a name of no module."""
        modules = dict(inspect.unwrap(self.model).named_modules())
        return modules.get(split_call(label, modules)[0])

    def label(self, name: str) -> str:
        """A layer's call label with its module type, for axes: "6 ReLU", "relu #2 ReLU"."""
        module = self.module(name)
        return name if module is None else f"{name} {type(module).__name__}"

    @_once
    def stages(self) -> list[str]:
        """One layer per resolution, as deep as the stage goes: the last block end
        (`block_ends`: an activation module, or the conv or BatchNorm an F.relu of the forward
        follows) at each resolution, else its first layer; or, where a block module finishes
        after it at that size with a map of its own (`computing_blocks`: a residual sum, an
        F.relu of the block's forward), the last such block, next to it in the forward or
        enclosing it (`_enclosing`). A ResNet block's last leaf is its shortcut's BatchNorm,
        a branch the stage's output is summed from, not that output. A size whose maps all
        lie inside another stage is no stage (`_within`)."""
        ends = set(block_ends(self.layers))
        by_size: dict[tuple, str] = {}
        for name, _, shape in self.layers:
            if len(shape) == 3 and shape[1] * shape[2] > 1:
                if name in ends or shape[1:] not in by_size:
                    by_size[shape[1:]] = name
        if not by_size:
            raise ReportError(
                "the model has no layer with a spatial (C, H, W) output"
                + inspect.scripted_whole(self.model)
            )
        order = [name for name, _ in self.traced]
        shapes = dict(self.traced)
        blocks = self.computing_blocks
        stages = []
        for name in by_size.values():
            stage = name
            for later in order[order.index(name) + 1 :]:
                if shapes[later][1:] != shapes[name][1:]:
                    break  # the map the next stage, or the head, reads
                if later in blocks:
                    stage = later
            stages.append(self._enclosing(stage))
        return [stage for stage in stages if not self._within(stage, stages)]

    def _within(self, stage: str, stages: list[str]) -> bool:
        """Every map of `stage`'s size is computed inside one other stage's module: that
        stage's own work at another size, no stage of its own (CvT's keys and values, which
        each stage projects to half its size)."""
        modules = dict(inspect.unwrap(self.model).named_modules())
        size = dict(self.traced)[stage][2:]  # (H, W)
        same = [split_call(n, modules)[0] for n, shape in self.traced if shape[2:] == size]
        return any(
            all(_inside(name, split_call(other, modules)[0]) for name in same)
            for other in stages
            if other != stage
        )

    def _enclosing(self, stage: str) -> str:
        """The outermost block (`computing_blocks`) that encloses `stage`'s module, finishes
        after it and returns a map of its size, else `stage`: a CvT stage's last map of its
        size is a query projection inside it, tokens between it and the stage's own output
        (each module's first call after `stage` alone: a tied block's later call is another
        map)."""
        modules = dict(inspect.unwrap(self.model).named_modules())
        order, shapes = [name for name, _ in self.traced], dict(self.traced)
        inner, size, seen = split_call(stage, modules)[0], shapes[stage][1:], set()
        for later in order[order.index(stage) + 1 :]:
            module = split_call(later, modules)[0]
            if module in seen or not _inside(inner, module):
                continue
            seen.add(module)
            if later in self.computing_blocks and shapes[later][1:] == size:
                stage = later
        return stage

    @_once
    def traced(self) -> list[tuple[str, tuple]]:
        """(label, output shape) of every call, blocks too, in the order the calls finish
        (`calls`)."""
        return [(label, shape) for label, _, shape in self.calls]

    @_once
    def computing_blocks(self) -> set[str]:
        """The calls' labels (`calls`) of the modules with children whose output is a map of
        the image (C, H, W) computed in their own forward: a tensor no module that finished
        before it returned (a residual sum, an F.relu of the block), not a child's output
        passed on (an nn.Sequential's, an in-place activation's) nor an empty shortcut's
        input."""
        _, x, _ = self.test
        model = inspect.unwrap(self.model)
        modules = dict(model.named_modules())
        _, maps, _ = self._layouts  # each map's call: {label: its channel dim}
        seen: list[torch.Tensor] = []  # every output so far, kept alive: ids stay unique
        own: set[str] = set()
        counts: dict[str, int] = {}  # every call counts, as `layer_calls` numbers them

        def record(name: str, module: nn.Module, output: object) -> None:
            counts[name] = counts.get(name, 0) + 1
            output = output_tensor(output, module)  # a CvT stage's (map, class token)
            if output is None:
                return
            fresh = not any(output is earlier for earlier in seen)
            seen.append(output)
            label = call_label(name, counts[name])
            if fresh and maps.get(label) == 1 and not inspect.is_leaf(module):
                own.add(label)

        hooks = inspect.Hooks().after(  # passes over a TorchScript block, which takes none
            (module, lambda m, _, out, name=name: record(name, m, out))
            for name, module in modules.items()
            if name
        )
        with inspect.preserved(self.model), hooks, torch.no_grad():
            inspect.forward(model, x[:1], logits=False)
        return own

    @_once
    def gradcam_layer(self) -> str | None:
        """explain's default Grad-CAM layer (`inspect.default_layer`: the last map of the image
        with H·W > 1 that feeds the logits, never a padding layer, a window attention's
        probabilities nor a side branch's map; a ViT's last attention's input); None: no
        such layer."""
        _, x, _ = self.test
        with inspect.preserved(self.model):
            names = inspect.feeding_maps(self.model, x[:1])
            return inspect.default_layer(self.model, x[:1], maps=names) if names else None

    @_once
    def map_layers(self) -> list[str]:
        """The spatial outputs that end a conv block, by their calls' labels, at most
        budget.map_layers, spread (`block_ends`): what the explorer lists as each block's
        output (`relu`, `relu #2`, `relu #3` for one ReLU module ending three blocks), and
        a ConvNeXt block's GELU on (B, H, W, C) (`map_calls`), which the explorer lists as
        its block's end too (`Network.block_ends`)."""
        names = block_ends(self.map_calls)
        if not names:
            raise ReportError(
                "the model has no layer with a spatial (C, H, W) output"
                + inspect.scripted_whole(self.model)
            )
        return spread(names, self.budget.map_layers)


def _inside(name: str, outer: str) -> bool:
    """Module `name` lies strictly inside module `outer` (dotted names)."""
    return name.startswith(f"{outer}.") if outer else bool(name)


# The norms a conv block puts between its conv and its activation, per channel of a map: a
# GroupNorm net's conv output is inside its block as a BatchNorm net's is (it was a block end,
# two rows per block in the figure, one of them the raw conv's).
MAP_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm2d)


def block_ends(layers: list[tuple[str, nn.Module, tuple]]) -> list[str]:
    """The labels of the spatial (C, H, W) outputs (H·W > 1) that end a block, in forward
    order, from (label, module, shape) leaf calls in the order they finish: every
    activation module's, and a conv's, or its norm's (`MAP_NORMS`: BatchNorm, GroupNorm,
    InstanceNorm), where no activation module comes next, as the explorer's block is its
    conv, BatchNorm and activation (`act or bn or conv`).
    An activation the forward applies itself (`F.relu(self.bn2(self.conv2(x)))`) is no
    layer's output: the block's map is then its BatchNorm's, as the explorer and
    `cnnlab visualize --maps` show it, so that no block is left out of the figure."""
    spatial = [k for k, (_, _, s) in enumerate(layers) if len(s) == 3 and s[1] * s[2] > 1]
    return [layers[k][0] for k in spatial if _ends_block(layers, k)]


def _ends_block(layers: list[tuple[str, nn.Module, tuple]], k: int) -> bool:
    module = layers[k][1]
    after = layers[k + 1][1] if k + 1 < len(layers) else None
    if activation_of(module) is not None:
        return True
    if after is not None and activation_of(after) is not None:  # the block goes on to it
        return False
    if isinstance(module, nn.Conv2d):
        return not isinstance(after, MAP_NORMS)
    return isinstance(module, MAP_NORMS) and k > 0 and isinstance(layers[k - 1][1], nn.Conv2d)
