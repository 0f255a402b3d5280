"""Datasets: bundled digits, generated shapes, and user files (IDX, .npy/.npz, folders or zips of images).

Every loader checks sizes before it allocates and raises ValueError naming the file and the problem.
dataset.py holds the Dataset and the train/validation split; builtin.py the digits and shapes; idx.py, npy.py and
images.py the file readers, which share arrays.py (image arrays to Datasets) and checks.py (byte limits, sniffing,
zip/gzip ratios, pixel budgets, names as valid text); sources.py is the table of data sources (digits, shapes,
files, their kinds and options such as resize on load) that load_source, the command line and the Data page read.
"""
from .builtin import SHAPE_FACTORS, SHAPE_NAMES, load_digits, make_shapes
from .checks import DEFAULT_MAX_BYTES, MAX_DATASET_PIXELS, MAX_IMAGE_PIXELS, valid_text
from .dataset import FILES_KIND, Dataset, preview_indices, split_indices
from .idx import find_idx_labels, load_idx
from .images import IMAGE_SUFFIXES, load_images
from .npy import IMAGE_KEYS, LABEL_KEYS, MMAP_THRESHOLD, load_array
from .sources import (DEFAULT_SOURCE, FILE_KINDS, FILE_OPTIONS, RESIZE, SOURCES, DataSource, FileKind, Option,
                      file_kind, file_options, load_path, load_source, named_source, register_source, source_entry,
                      source_named, source_words, suggested_resize)

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_SOURCE", "FILE_KINDS", "FILE_OPTIONS", "FILES_KIND", "IMAGE_KEYS",
           "IMAGE_SUFFIXES", "LABEL_KEYS", "MAX_DATASET_PIXELS", "MAX_IMAGE_PIXELS", "MMAP_THRESHOLD", "RESIZE",
           "SHAPE_FACTORS", "SHAPE_NAMES", "SOURCES", "DataSource", "Dataset", "FileKind", "Option", "file_kind",
           "file_options", "find_idx_labels", "load_array", "load_digits", "load_idx", "load_images", "load_path",
           "load_source", "make_shapes", "named_source", "preview_indices", "register_source", "source_entry",
           "source_named", "source_words", "split_indices", "suggested_resize", "valid_text"]
