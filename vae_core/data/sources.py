"""The data sources, declared once: where a dataset can come from (bundled, generated, files), what each is called,
how it loads, its options and, for files, the kinds it reads, how each kind is recognised and the file options
(resize on load, class folder levels) each kind takes.

load_source, the command line (train, evaluate) and the Data page read this table (in the style of timm's
register_model and Hugging Face datasets' builders); an unknown name is refused here, listing the known ones. A new
source touches only this table, its loader and its test.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .builtin import load_digits, make_shapes
from .checks import existing, sniff, valid_text
from .dataset import FILES_KIND, Dataset
from .idx import find_idx_labels, load_idx
from .images import load_images
from .npy import load_array


@dataclass(frozen=True)
class Option:
    """A whole-number setting of a source: its default, and the range the Data page offers."""

    name: str  # the key in the source dict; the command line's flag is --{source}-{name}
    label: str  # the Data page's label
    default: int
    low: int
    high: int
    step: int = 1
    help: str = ""
    flag: str = ""  # the command line's flag when not --{source}-{name} (the file options: --resize)

    def cli_flag(self, source: str) -> str:
        return f"--{self.flag or f'{source}-{self.name}'}"


@dataclass(frozen=True)
class FileKind:
    """A file format a source reads: recognised by its first bytes (checks.sniff) and, where they are shared, its
    suffix; read by read(path, labels_path, max_bytes, **options) with the FILE_OPTIONS it takes."""

    name: str
    label: str  # for error messages and help: "a .npy array"
    magic: str  # what checks.sniff says of such a file: "idx", "gzip", "npy", "zip" or "dir" (a folder)
    read: Callable[[Path, str | os.PathLike | None, int | None], Dataset]
    suffixes: tuple[str, ...] = ()  # only files whose name ends so (lower case); () for any name
    labels_file: bool = False  # it may come with a separate labels file
    options: tuple[str, ...] = ()  # the names of the FILE_OPTIONS it takes

    def matches(self, path: Path, magic: str) -> bool:
        return magic == self.magic and (not self.suffixes or path.suffix.lower() in self.suffixes)


@dataclass(frozen=True)
class DataSource:
    """One place a dataset can come from. A source that reads files takes {"path", "labels_path"} and its options
    (the file options); any other takes its options."""

    name: str  # the "kind" of a source dict ({"kind": name, **options}), and what --data names it
    label: str  # the Data page's name for it
    action: str  # the Data page's button that loads it
    description: str  # the Data page's caption
    load: Callable[..., Dataset]  # load(**arguments)
    options: tuple[Option, ...] = ()
    file_kinds: tuple[FileKind, ...] = ()

    @property
    def reads_files(self) -> bool:
        return bool(self.file_kinds)

    def arguments(self, args: dict) -> dict:
        """The keyword arguments for load from a source dict's entries (kind removed), or a clear error."""
        names = {o.name for o in self.options}
        if self.reads_files and "path" in args and set(args) <= {"path", "labels_path"} | names:
            return {"path": args["path"], "labels_path": args.get("labels_path"),
                    **{k: int(v) for k, v in args.items() if k in names}}
        if not self.reads_files and set(args) <= names:
            return {k: int(v) for k, v in args.items()}
        takes = ", ".join([*(("path", "labels_path") if self.reads_files else ()), *(o.name for o in self.options)])
        takes = takes or "no options"
        raise ValueError(f"dataset source {self.name!r} takes {takes}, got {sorted(args)}")


SOURCES: dict[str, DataSource] = {}
DEFAULT_SOURCE = "digits"  # what a new session and the command line use when no data is named


def register_source(source: DataSource) -> DataSource:
    """Add a source to the table (its name must be new)."""
    if source.name in SOURCES:
        raise ValueError(f"dataset source {source.name!r} is already registered")
    SOURCES[source.name] = source
    return source


def source_entry(name: str) -> DataSource:
    """The table's entry for name, or a ValueError listing the known names."""
    if name not in SOURCES:
        raise ValueError(f"unknown dataset source {name!r}: known sources are {', '.join(SOURCES)}")
    return SOURCES[name]


def source_named(text: str) -> DataSource | None:
    """The source that a word like "digits" names (on the command line, or as a source string); None for a path."""
    source = SOURCES.get(text)
    return None if source is None or source.reads_files else source


def source_words() -> list[str]:
    """The names that stand for a source by themselves ("digits", "shapes"): those that read no file."""
    return [name for name in SOURCES if source_named(name)]


def named_source(data: str, labels_path: str | None = None, options: dict | None = None) -> dict:
    """The source dict of --data NAME (with that source's options) or --data PATH (with --labels and the file
    options that differ from their defaults)."""
    source = source_named(data)
    if source is not None:
        return {"kind": source.name, **{o.name: int((options or {}).get(o.name, o.default)) for o in source.options}}
    return {"kind": FILES_KIND, "path": data, **({"labels_path": labels_path} if labels_path else {}),
            **file_options(options)}


def file_options(options: dict | None) -> dict:
    """The file options in options that differ from their defaults (what a source dict keeps)."""
    return {o.name: int(options[o.name]) for o in FILE_OPTIONS
            if (options or {}).get(o.name) is not None and int(options[o.name]) != o.default}


def load_source(source: str | os.PathLike | dict) -> Dataset:
    """Rebuild a dataset from a source's name ("digits"), a path, or a Dataset.source dict."""
    source = os.fspath(source) if isinstance(source, os.PathLike) else source
    if isinstance(source, str):
        source = {"kind": source} if source_named(source) else {"kind": FILES_KIND, "path": source}
    if not isinstance(source, dict) or "kind" not in source:
        raise ValueError(f"unknown dataset source {source!r}: expected a source's name ({', '.join(source_words())}), a "
                         "path, or a dict with its kind")
    entry = source_entry(source["kind"])
    return entry.load(**entry.arguments({k: v for k, v in source.items() if k != "kind"}))


def file_kind(path: Path) -> FileKind:
    """The kind of data file (or folder) at path, from its type, first bytes and suffix."""
    magic = sniff(path)
    kind = next((k for k in FILE_KINDS if k.matches(path, magic)), None)
    if kind is None:
        raise ValueError(f"{path.name}: unrecognised data file: expected "
                         f"{', '.join(k.label for k in FILE_KINDS[:-1])} or {FILE_KINDS[-1].label}")
    return kind


def load_path(path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
              max_bytes: int | None = None, **options: int) -> Dataset:
    """Load a data file or folder with the reader of its kind (FILE_KINDS), at the file options (FILE_OPTIONS) that
    differ from their defaults, which the dataset's source keeps."""
    path = existing(path)
    kind = file_kind(path)
    if labels_path is not None and not kind.labels_file:
        raise ValueError(f"{valid_text(path.name)}: labels_path is only used with "
                         f"{' or '.join(k.label for k in FILE_KINDS if k.labels_file)}")
    unknown = set(options) - {o.name for o in FILE_OPTIONS}
    if unknown:
        raise ValueError(f"unknown file options {sorted(unknown)}: known are {', '.join(o.name for o in FILE_OPTIONS)}")
    chosen = file_options(options)
    extra = sorted(set(chosen) - set(kind.options))
    if extra:
        raise ValueError(f"{valid_text(path.name)}: {extra[0]} is only used with "
                         f"{' or '.join(k.label for k in FILE_KINDS if extra[0] in k.options)}, not {kind.label}")
    dataset = kind.read(path, labels_path, max_bytes, **chosen)
    dataset.source.update(chosen)
    return dataset


def suggested_resize(dataset: Dataset) -> int | None:
    """The resize on load to suggest for a dataset of large images read from files that can be resized on load
    (105×105 -> 64); None when there is none to suggest."""
    source = dataset.source
    if (source.get("kind") != FILES_KIND or source.get(RESIZE.name) or not source.get("path")
            or max(dataset.shape[1:]) <= RESIZE_SUGGESTION * 5 // 4):
        return None
    try:
        return RESIZE_SUGGESTION if RESIZE.name in file_kind(Path(source["path"])).options else None
    except (ValueError, OSError):
        return None


def _idx_file(path: Path, labels_path: str | os.PathLike | None, max_bytes: int | None) -> Dataset:
    return load_idx(path, find_idx_labels(path) if labels_path is None else labels_path, max_bytes)


def _array_file(path: Path, labels_path: None, max_bytes: int | None) -> Dataset:
    return load_array(path, max_bytes=max_bytes)


def _images_file(path: Path, labels_path: None, max_bytes: int | None, resize: int = 0,
                 class_levels: int = 0) -> Dataset:
    return load_images(path, max_bytes=max_bytes, resize=resize or None, class_levels=class_levels)


RESIZE_SUGGESTION = 64  # the longer side suggested for images more than a quarter larger
RESIZE = Option(  # the option suggested_resize suggests; the CLI's --resize, the Data page's "Resize on load"
    "resize", "Resize on load (longer side, pixels)", 0, 0, 1024, flag="resize",
           help="resize every image so that its longer side is this many pixels, the aspect kept (0: keep the "
                "images' own size; a folder or .zip of images)")
FILE_OPTIONS = (  # the options of the source that reads files; a kind takes those it names
    RESIZE,
    Option("class_levels", "Class folder levels", 0, 0, 16, flag="class-levels",
           help="how many folder levels below the folder all images share name a class: 0 uses the whole path "
                "(alphabet/character01), 1 the top folder (alphabet); a folder or .zip of images"),
)
IMAGE_OPTIONS = tuple(o.name for o in FILE_OPTIONS)


FILE_KINDS = (  # first match wins: a .npz is a zip, told apart from a zip of images by its suffix
    FileKind("folder", "a folder of images", "dir", _images_file, options=IMAGE_OPTIONS),
    FileKind("npz", "a .npz array", "zip", _array_file, suffixes=(".npz",)),
    FileKind("zip", "a .zip of images", "zip", _images_file, options=IMAGE_OPTIONS),
    FileKind("npy", "a .npy array", "npy", _array_file),
    FileKind("idx", "an IDX file", "idx", _idx_file, labels_file=True),
    FileKind("idx.gz", "a gzipped IDX file", "gzip", _idx_file, labels_file=True),
)

register_source(DataSource(
    "digits", "Bundled digits", "Use bundled digits",
    "scikit-learn's 1,797 handwritten digits, 8×8 pixels, 10 classes — trains a VAE in seconds.",
    load_digits))
register_source(DataSource(
    "shapes", "Generated shapes", "Generate shapes",
    "dSprites-style shapes (square, ellipse, triangle, heart) at a seeded scale, rotation and position; labels are "
    "the shape, the other factors are kept for disentanglement metrics.",
    make_shapes, options=(
        Option("n", "Images", 20_000, 100, 200_000, step=1000, help="number of generated images"),
        Option("size", "Size (pixels)", 32, 8, 128, step=4, help="image side in pixels"),
        Option("seed", "Seed", 0, 0, 2**31 - 1, help="seed of the generator"))))
register_source(DataSource(
    FILES_KIND, "Upload files", "Upload",
    "An IDX images file with its labels file (MNIST style, optionally .gz), a .npy / .npz array (images under x / "
    "images, labels under y / labels), or a .zip of images (one folder per class; nested folders give classes "
    "like alphabet/character01).",
    load_path, options=FILE_OPTIONS, file_kinds=FILE_KINDS))
