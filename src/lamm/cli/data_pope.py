"""``lamm data pope``: a POPE benchmark file from COCO-style instances; attached to ``lamm data`` by :func:`register`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lamm.cli.common import console, err_console, user_errors


def register(data_app: typer.Typer) -> None:
    """Add ``pope`` to the ``lamm data`` group."""
    data_app.command("pope")(pope)


def pope(
    annotations: Annotated[Path, typer.Option(help="COCO instances JSON (images, annotations, categories); the 2D "
                                                   "annotations of `lamm data synth` work too.")],
    images_root: Annotated[Path, typer.Option(help="Folder the images' file_name paths are relative to; the "
                                                   "records' image paths are too (pass it as --root to `lamm bench`).")],
    out: Annotated[Path, typer.Option(help="Output POPE benchmark file (.json array, or .jsonl).")],
    strategy: Annotated[str, typer.Option(help="Negatives: random | popular | adversarial.")] = "random",
    per_image: Annotated[int, typer.Option(help="Yes questions (and as many no questions) per image, at most.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed; the same inputs and seed give byte-identical files.")] = 0,
    n_images: Annotated[int | None, typer.Option(help="A seeded subset of that many images (POPE: 500).")] = None,
    min_objects: Annotated[int, typer.Option(help="Only images with at least that many categories (POPE: 3).")] = 1,
    balanced: Annotated[bool, typer.Option(help="As many no as yes questions per image.")] = True,
    check_images: Annotated[bool, typer.Option(help="Fail when an image asked about is not under --images-root.")] = True,
) -> None:
    """Write POPE yes/no object-presence questions ("Is there a {object} in the image?") built from detection
    annotations: positives present in the image, negatives absent from it (random / popular / adversarial)."""
    from rich.markup import escape

    from lamm.bench.desiderata.pope import PopeConfig, PopeError, PopeStats, build_pope, coco_pope_images
    from lamm.config import config_from_dict
    from lamm.data.records import write_records
    from lamm.data.sources import SourceError

    with user_errors(PopeError, SourceError):
        cfg = config_from_dict(PopeConfig, {"strategy": strategy, "per_image": per_image, "seed": seed,
                                            "n_images": n_images, "min_objects": min_objects, "balanced": balanced},
                               "lamm data pope options")
        images, categories = coco_pope_images(annotations)
        stats = PopeStats()
        records = build_pope(images, categories, cfg.strategy, cfg.per_image, cfg.seed, balanced=cfg.balanced,
                             n_images=cfg.n_images, min_objects=cfg.min_objects, stats=stats)
        if not records:
            raise PopeError(f"{annotations}: no POPE question could be built (images: {stats.to_dict()})")
        if check_images:
            missing = sorted({r["image"] for r in records if not (images_root / r["image"]).is_file()})
            if missing:
                raise PopeError(f"{len(missing)} image(s) asked about are not under --images-root {images_root} "
                                f"(first: {missing[0]}); pass the folder the COCO file_name paths are relative "
                                "to, or --no-check-images")
        write_records(out, records)
    if stats.no_objects or stats.no_absent:
        err_console.print(f"[yellow]note:[/] {stats.no_objects} image(s) without objects and {stats.no_absent} with "
                          "every category present gave no question", highlight=False)
    console.print(f"wrote {len(records)} POPE questions ({cfg.strategy}) to [bold]{escape(str(out))}[/]")
    console.print_json(json.dumps({"strategy": cfg.strategy, "questions": len(records), **stats.to_dict()}))
