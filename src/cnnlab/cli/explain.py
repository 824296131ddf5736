"""`cnnlab explain`, `cnnlab visualize` (and, from `cnnlab.cli.probe`, `cnnlab probe`): look
inside a trained run.

cnnlab explain RUN IMAGE... [--method gradcam|gradcam++|saliency|smoothgrad] [--out DIR]
cnnlab visualize RUN (--filters | --maps IMAGE | --actmax LAYER) [--out DIR]
"""

from __future__ import annotations

import argparse
import difflib
import functools
import hashlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.cli.notes import print_channel_note, print_frames_note
from cnnlab.cli.probe import add_probe, count
from cnnlab.cli.progress import progress_bar
from cnnlab.cli.rundata import RUN_HELP, add_data_option, load_run_at
from cnnlab.errors import ConfigError, ExplainError

# torch, NumPy, PIL and the library are imported in the functions that run the commands:
# the parser (every command's --help, a usage error) is built without their seconds.
if TYPE_CHECKING:
    import numpy as np
    import torch

METHODS = ("gradcam", "gradcam++", "saliency", "smoothgrad")
LAYER_METHODS = ("gradcam", "gradcam++")  # the methods that read a layer (--layer)


ACTMAX_CHANNELS, ACTMAX_STEPS = 16, 128  # visualize --actmax's defaults


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="heatmaps of why a run predicts what it predicts",
        description="Predict each image and draw why, over the image, as a PNG in --out named "
        "STEM-HASH_METHOD_LAYER_classK.png (HASH of the image's path; LAYER 'input' for "
        "saliency and smoothgrad; K the class explained); print each image's top classes and "
        "the file written.",
    )
    p.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    p.add_argument(
        "images",
        metavar="IMAGE",
        nargs="+",
        help="image files (PNG, JPEG, ...), or folders of them",
    )
    p.add_argument(
        "--method", choices=METHODS, default="gradcam", help="what to draw (default gradcam)"
    )
    p.add_argument(
        "--layer",
        help="dotted module name for Grad-CAM, its first call; 'NAME #2' its second, as the "
        "summary labels calls (default: the last spatial map, at its last call)",
    )
    p.add_argument(
        "--target",
        metavar="CLASS",
        help="class to explain, its name or index (a number is an index; default: prediction)",
    )
    p.add_argument(
        "--top-k", type=count, default=3, metavar="K",
        help="predictions to print per image (default 3)",
    )  # fmt: skip
    p.add_argument("--out", default="explain", help="directory for the PNGs (default: explain)")
    p.set_defaults(run=_no_empty_output(_explain))
    _add_visualize(sub)
    add_probe(sub)  # after visualize: `cnnlab --help` lists it there


def _add_visualize(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser(
        "visualize",
        help="PNG grids of filters, feature maps or actmax images",
        description="Draw PNG grids in --out and print each file's path: --filters writes "
        "filters.png (the first conv layer's kernels), --maps IMAGE maps_LAYER.png for each "
        "layer (a module's second call: maps_LAYER_call2.png), --actmax LAYER "
        "actmax_LAYER.png, and prints each channel's activation beside its highest on the "
        "first 1,000 test images.",
    )
    v.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    what = v.add_mutually_exclusive_group(required=True)
    what.add_argument("--filters", action="store_true", help="the first conv layer's kernels")
    what.add_argument("--maps", metavar="IMAGE", help="feature maps of IMAGE at --layers")
    what.add_argument(
        "--actmax",
        metavar="LAYER",
        help="activation maximization at LAYER (its first call; 'NAME #2' its second)",
    )
    v.add_argument(
        "--layers",
        nargs="+",
        help="layers for --maps, a call of a module called again as `relu #2` (default: "
        "every call of every spatial one)",
    )
    v.add_argument(
        "--channels", type=count, help=f"channels for --actmax (first N; default {ACTMAX_CHANNELS})"
    )
    v.add_argument(
        "--steps", type=count, help=f"optimisation steps for --actmax (default {ACTMAX_STEPS})"
    )
    v.add_argument("--out", default="visualize", help="directory for the PNGs (default: visualize)")
    add_data_option(v)
    v.set_defaults(run=_no_empty_output(_refuse_unread))


def read_images(paths: list[str], shape: tuple[int, int, int]) -> torch.Tensor:
    """Image files → uint8 (B, C, H, W) in the run's channels and size, read as training and
    predict read them (`read_for_run`: EXIF, alpha, 16-bit, guards against decompression
    bombs and non-regular files, resized as the folder loader resizes: cover the size keeping
    the aspect ratio, then center-crop). Notes on stderr name the files it resized or
    converted to the run's channels."""
    from cnnlab.data.folder import shown  # a path as printable text, non-UTF-8 escaped
    from cnnlab.train.evaluate import read_for_run, resize_note

    pixels, sizes = read_for_run(paths, shape)
    note = resize_note([(shown(Path(p)), s) for p, s in zip(paths, sizes, strict=True)], shape[1:])
    if note:
        print(f"note: {note}", file=sys.stderr)
    print_channel_note(paths, shape[0])
    print_frames_note(paths)
    return pixels


def folder_images(
    images: list[str], shape: tuple[int, int, int]
) -> tuple[list[str], torch.Tensor, list[str]]:
    """(the files, their pixels as `read_images` gives them, why each skipped file was
    skipped): a folder among `images` is its image files, as `cnnlab predict` reads one; a
    file of a folder that does not read is skipped and named, as training skips it, where a
    file named on the command line stays an error (a folder was refused, and its advice,
    `folder/*`, stopped at the first text file the shell's glob gave)."""
    from cnnlab.data.folder import expand_folders
    from cnnlab.errors import DataError
    from cnnlab.train.evaluate import read_for_run

    named, paths = set(images), expand_folders(images)
    if set(paths) == named:
        return paths, read_images(paths, shape), []
    if named & set(paths):  # a named file's error comes before any folder's file is read
        read_for_run([p for p in paths if p in named], shape)
    kept, skipped = [], []
    for path in paths:
        try:
            read_for_run([path], shape)
        except DataError as error:
            if path in named:
                raise
            skipped.append(str(error))
            continue
        kept.append(path)
    if not kept:
        raise DataError(f"no readable image among {len(paths)} file(s): {skipped[0]}")
    return kept, read_images(kept, shape), skipped


def heatmap_name(image: str, method: str, layer: str | None, target: int) -> str:
    """`<stem>-<hash>_<method>_<layer>_class<k>.png`: the hash (of the image's absolute path)
    keeps `a/img000.png` and `b/img000.png` apart; method, layer ("input" for the pixel
    methods) and the class explained keep maps of one image for other settings apart."""
    path = Path(image)
    digest = hashlib.sha256(os.fsencode(path.resolve())).hexdigest()[:6]
    where = file_part(layer) if layer else "input"
    return f"{path.stem}-{digest}_{method}_{where}_class{target}.png"


def file_part(layer: str) -> str:
    """A layer's name as part of a file name: a ModuleDict key may hold '/' (a port's
    'block1/conv'), which made `maps_layers.block1/conv.png` a file in a new directory."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", layer)


def call_file_part(layer: str, model) -> str:
    """`file_part` of a call's label: `relu #2`, the second call of module `relu`, as
    `relu_call2` (`relu_2` may be another module's name, a Keras port's)."""
    from cnnlab.inspect.names import split_call

    name, call = split_call(layer, dict(model.named_modules()))
    return file_part(name) + (f"_call{call}" if call > 1 else "")


def _out_dir(path: str) -> Path:
    """The output directory, created; ConfigError naming it when it cannot be."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        clash = _file_in_the_way(out / "_")
        if clash is not None:
            raise ConfigError(
                f"cannot create output directory {out}: {_not_a_directory(clash)}"
            ) from error
        raise ConfigError(
            f"cannot create output directory {out}: {error.strerror or error}"
        ) from error
    return out


def _file_in_the_way(path: Path) -> Path | None:
    """The file standing where a directory of `path` should be (--out given a file's name)."""
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _not_a_directory(clash: Path) -> str:
    return f"{clash} is a file, not a directory; give --out a directory (made where missing)"


def _write_error(path: Path, error: OSError) -> ConfigError:
    """Why `path` cannot be written: 'File exists' was said of afile/filters.png, which does
    not exist, where afile, the --out given, is a file."""
    clash = _file_in_the_way(path)
    if clash is not None:
        return ConfigError(f"cannot write {path}: {_not_a_directory(clash)}")
    return ConfigError(f"cannot write {path}: {error.strerror or error}")


def _out_and_images(out: str, paths: list[str], shape) -> tuple[Path, torch.Tensor]:
    """The output directory, made before the images are read (so an unwritable --out is the
    one line printed, before any resize note), and `read_images(paths, shape)`."""
    return _out_dir(out), read_images(paths, shape)


def _no_empty_output(command: Callable[[argparse.Namespace], int]) -> Callable:
    """`command`, leaving no empty --out directory it made behind when it fails: a bad
    image, a refused --layer or --target ended the command after the directory was made (a
    test suite's refused cases left an `explain/` in its working directory)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        out = Path(args.out)
        existed = out.exists()
        try:
            return command(args)
        except BaseException:
            if not existed and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            raise

    return run


def _save_png(array: np.ndarray, path: Path) -> Path:
    """Write a uint8 (H, W, 3) array as a PNG; ConfigError naming the path when it cannot."""
    from PIL import Image

    try:
        Image.fromarray(array).save(path)
    except OSError as error:
        raise _write_error(path, error) from error
    return path


def _save_grid(images: torch.Tensor, path: Path) -> Path:
    """explain.save_grid, with a file-system error as a ConfigError naming the path."""
    from cnnlab.explain import save_grid

    try:
        return save_grid(images, path)
    except OSError as error:
        raise _write_error(path, error) from error


def _load(path: str, data: str | None = None):
    return load_run_at(path, data)


def _heatmaps(run, x: torch.Tensor, method: str, layer, target) -> torch.Tensor:
    from cnnlab import explain

    if method in LAYER_METHODS:
        return explain.gradcam(run.model, x, target, layer=layer, method=method)
    if method == "saliency":  # one forward and backward: no bar
        maps = explain.saliency(run.model, x, target)
    else:  # n = 50 noisy copies of each image
        with progress_bar() as progress:
            maps = explain.smoothgrad(run.model, x, target, progress=progress)
    return maps / maps.amax((1, 2), keepdim=True).clamp(min=1e-12)  # (B, H, W) in [0, 1]


SHOWN_CLASSES = 10  # the classes a refused --target lists (a 100-class run's were all named)


def class_index(target: str | None, classes: Sequence[str]) -> int | None:
    """--target as a class index: a number is an index, other text one of `classes` by name
    (the top-k line names classes, so `--target dog` is what a user types next; it was
    "invalid int value"). ConfigError naming the class meant (`class_meant`) and the first
    SHOWN_CLASSES classes when it is neither."""
    if target is None:
        return None
    known = f"{len(classes)} classes: {listed(classes)}"
    try:
        index = int(target)
    except ValueError:
        if target in classes:
            return list(classes).index(target)
        raise ConfigError(
            f"--target {target!r} is not a class of the run{class_meant(target, classes)} "
            f"({known}); give a class name or an index 0..{len(classes) - 1}"
        ) from None
    if not 0 <= index < len(classes):
        raise ConfigError(
            f"--target {index} is outside the run's {known}; give an index "
            f"0..{len(classes) - 1} or a class name"
        )
    return index


def listed(classes: Sequence[str]) -> str:
    """The first SHOWN_CLASSES class names, and how many more there are."""
    more = len(classes) - SHOWN_CLASSES
    return ", ".join(classes[:SHOWN_CLASSES]) + (f", ... ({more} more)" if more > 0 else "")


def class_meant(target: str, classes: Sequence[str]) -> str:
    """'; did you mean X?' for the class `target` was meant to be: the one spelled the same
    but for case (`C099` for `c099`), else the closest spelling (difflib); '' for none."""
    folded = [c for c in classes if c.casefold() == target.casefold()]
    if len(folded) != 1:
        by_fold = {c.casefold(): c for c in classes}
        near = difflib.get_close_matches(target.casefold(), list(by_fold), n=1)
        folded = [by_fold[n] for n in near]
    return f"; did you mean {folded[0]!r}?" if folded else ""


def no_maps(name: str, output: torch.Tensor, spatial: Sequence[str]) -> str:
    """Why --layers NAME draws nothing, and the layers it may name instead (it said only 'has
    no spatial maps', leaving the user to guess which layers have)."""
    return (
        f"layer {name!r} has no spatial maps (shape {tuple(output.shape)}); --layers takes "
        f"layers with a (C, H, W) map: {', '.join(spatial) or '(none)'}"
    )


def _refuse_unread(args: argparse.Namespace) -> int:
    """An option the chosen drawing does not read is refused, as explain's --layer with a
    pixel method is: `--filters --layers 3` drew the first conv's filters and `--maps IMG
    --steps 5` the maps, each without a word of the option. Then --actmax's defaults, and
    `_visualize`."""
    mode = "--filters" if args.filters else "--maps" if args.maps else "--actmax"
    for flag, value, reader in (
        ("--layers", args.layers, "--maps"),
        ("--channels", args.channels, "--actmax"),
        ("--steps", args.steps, "--actmax"),
    ):
        if value is not None and reader != mode:
            raise ConfigError(f"{flag} is read by {reader} only; {mode} draws without it: drop it")
    args.channels = args.channels or ACTMAX_CHANNELS
    args.steps = args.steps or ACTMAX_STEPS
    return _visualize(args)


def _explain(args: argparse.Namespace) -> int:
    import numpy as np

    from cnnlab.data.folder import shown
    from cnnlab.explain import overlay
    from cnnlab.inspect import default_layer, feeding_maps, resolve_target, scripted_whole
    from cnnlab.train.evaluate import predict_logits

    if args.layer is not None and args.method not in LAYER_METHODS:
        raise ConfigError(
            f"--layer chooses the Grad-CAM layer; --method {args.method} explains the input "
            "pixels and reads no layer (drop --layer, or use --method gradcam or gradcam++)"
        )
    run = _load(args.run_dir)
    wanted = class_index(args.target, run.classes)  # refused before any image note
    out = _out_dir(args.out)  # before the images are read: an unwritable --out is the one line
    args.images, raw, skipped = folder_images(args.images, run.input_shape)  # (B, C, H, W)
    for why in skipped:
        print(f"skipped {why}", file=sys.stderr)
    x = run.preprocess(raw)
    # the run's precision, as predict and eval: the class named is the class they name
    logits = predict_logits(run.model, x, autocast=run.autocast)  # (B, K) float32
    probs = logits.softmax(1)
    # The class and layer explained are decided here, once: the file names say them.
    target = resolve_target(wanted, logits)  # (B,)
    layer = args.layer
    if layer is None and args.method in LAYER_METHODS:
        spatial = feeding_maps(run.model, x)
        if not spatial:  # an MLP: the error alone left the user without a way on
            raise ConfigError(
                f"{args.method} weighs a layer's (C, H, W) map, and the model has no layer "
                "with one (H·W > 1); explain it with --method saliency or smoothgrad"
                + scripted_whole(run.model)
            )
        # the last map, or a ViT's last attention's input; the maps are searched once
        layer = default_layer(run.model, x, maps=spatial)
    heat = _heatmaps(run, x, args.method, layer, target)
    blank = [shown(Path(p)) for p, h in zip(args.images, heat, strict=True) if not h.any()]
    if blank and args.layer is not None:
        print(f"note: {blank_note(args.method, layer, blank, default_layer(run.model, x))}",
              file=sys.stderr)  # fmt: skip
    scale = max(1, 224 // max(raw.shape[-2:]))
    for i, path in enumerate(args.images):
        pic = overlay(raw[i].float() / 255, heat[i])  # (3, H, W)
        pic = pic.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        array = (pic.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        where = call_file_part(layer, run.model) if layer else None  # `relu #2`: relu_call2
        written = _save_png(array, out / heatmap_name(path, args.method, where, int(target[i])))
        top = probs[i].topk(min(args.top_k, probs.shape[1]))
        preds = ", ".join(
            f"{run.classes[k]} {p:.1%}"
            for p, k in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        )
        print(f"{shown(Path(path))}: {preds}  ->  {shown(written)}")
    return 0


def blank_note(method: str, layer: str, images: Sequence[str], default: str) -> str:
    """Why a --layer gave a map of zeros (drawn as no heat at all), and the default's name."""
    shown_ = ", ".join(images[:3]) + (f" and {len(images) - 3} more" if len(images) > 3 else "")
    other = f"; the default layer is {default}" if default != layer else ""
    return (
        f"{method} at {layer} is zero over the whole image for {shown_}: no part of that "
        "layer raises the class's score there, or it gets no gradient from it (a "
        "transformer's patch tokens after its last attention, where the head reads the class "
        f"token alone){other}"
    )


def _visualize(args: argparse.Namespace) -> int:
    import torch

    from cnnlab import explain
    from cnnlab.data.folder import shown
    from cnnlab.inspect import images_first
    from cnnlab.inspect.batch_axis import layer_axes

    run = _load(args.run_dir, args.data)
    out = Path(args.out)  # created by the first save
    if args.filters:
        f = explain.filters(run.model, x=torch.zeros(1, *run.input_shape))  # (F, C, kh, kw)
        f = f if f.shape[1] in (1, 3) else f.mean(1, keepdim=True)
        print(shown(_save_grid(f, out / "filters.png")))
    elif args.maps:
        _draw_maps(args, run)
    else:
        data = run.dataset("test")
        images = run.preprocess(data.images[:1000])
        x = images[:1]
        acts = explain.feature_maps(run.model, x, [args.actmax])[args.actmax]
        # read as actmax reads it: images, then channels (seq-first (W, B, F): W, not its 1
        # image); a map has them on dim 1 already (feature_maps moves a ConvNeXt's there)
        axes = (0, 1) if acts.dim() == 4 else layer_axes(run.model, x, args.actmax)
        size = images_first(acts, *axes).shape[1]
        channels = list(range(min(args.channels, size)))
        with progress_bar() as progress:  # the steps, then the data's strongest activations
            res = explain.activation_maximization(
                run.model, args.actmax, channels, steps=args.steps, data=images, progress=progress
            )
        lo, hi = images.min(), images.max()
        path = out / f"actmax_{call_file_part(args.actmax, run.model)}.png"
        print(shown(_save_grid((res.images - lo) / (hi - lo), path)))
        rows = zip(res.channels, res.activation.tolist(), res.data_max.tolist(), strict=True)
        for c, a, best in rows:
            ratio = f"{a / best:.2f}×" if best > 0 else "n/a (data max ≤ 0)"
            print(
                f"channel {c}: activation {a:.3g}, best of {len(images)} test images "
                f"{best:.3g}: {ratio}"
            )
    return 0


def _draw_maps(args: argparse.Namespace, run) -> None:
    """visualize --maps: a PNG of each layer's maps, a file per call of a module called
    more than once (`maps_relu.png`, `maps_relu_call2.png`: its labels `relu`, `relu #2`)."""
    from cnnlab import explain
    from cnnlab.data.folder import shown
    from cnnlab.explain.features import normalize_maps
    from cnnlab.inspect import per_image, scripted_whole, spatial_calls

    out, raw = _out_and_images(args.out, [args.maps], run.input_shape)
    x = run.preprocess(raw)
    # each call: `relu`, `relu #2`; a ConvNeXt's (B, H, W, C) ones too, drawn as (B, C, H, W)
    layers = args.layers or spatial_calls(run.model, x)
    if not layers:  # nothing was drawn, nothing said
        raise ConfigError(
            "the model has no layer with a (C, H, W) map (H·W > 1) to draw"
            + scripted_whole(run.model)
        )
    maps = explain.feature_maps(run.model, x, layers)
    for name, m in maps.items():
        if m.dim() != 4:
            raise ExplainError(no_maps(name, m, spatial_calls(run.model, x)))
        if len(m) != len(x):  # a window attention's rows: the grid would show window 0
            choices = ", ".join(spatial_calls(run.model, x)) or "(none)"
            per_image(m, name, len(x), f"choose one of: {choices}")
        path = out / f"maps_{call_file_part(name, run.model)}.png"
        print(shown(_save_grid(normalize_maps(m[0]), path)))
