"""Checkpoint files: any pytree of arrays in one self-describing file, written atomically.

Layout: the magic ``b"FNNETCKPT\\n"``, the header's length (8 bytes, little-endian) and its
SHA-256 (32 bytes), the header (UTF-8 JSON: format version, fnnet version, the user's metadata
and, per leaf in tree order, its path, kind, dtype, shape, byte offset, length and CRC-32),
then each leaf's raw bytes at its offset (64-byte aligned). Loading parses JSON and copies
bytes: it never executes code (no pickle), checks every length, offset and checksum, and reads
one leaf at a time, so a large file is never held twice in memory.

    >>> import jax.numpy as jnp, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "state.ckpt")
    >>> save(path, {"w": jnp.ones((2, 3)), "step": 7}, metadata={"epoch": 3})
    >>> sorted(load(path)), metadata(path)
    (["['step']", "['w']"], {'epoch': 3})
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CheckpointError", "load", "metadata", "save"]

MAGIC = b"FNNETCKPT\n"
FORMAT_VERSION = 1
_PREFIX = len(MAGIC) + 8 + 32  # magic, header length, header SHA-256
_ALIGN = 64
_TEMPORARY = ".fnnet-tmp-"
_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "bfloat16", "float32", "float64", "complex64", "complex128"]
)  # fmt: skip


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupted, foreign or mismatched.

    Attributes:
      mismatch: True when the file is sound but holds another tree than `like` (another
        model or optimizer), False when the file itself is bad.
    """

    def __init__(self, message: str, *, mismatch: bool = False):
        super().__init__(message)
        self.mismatch = mismatch


def _bytes(array: np.ndarray) -> memoryview:
    """The bytes of a contiguous array, without a copy (bfloat16 included)."""
    return memoryview(array.reshape(-1).view(np.uint8))


def _kind(where: str, path: str, leaf: Any) -> str:
    """How a leaf is stored and restored: "key", "bool", "int", "float", "jax" or "numpy"."""
    if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return "key"
    if isinstance(leaf, bool | int | float) and not isinstance(leaf, np.generic):
        return type(leaf).__name__
    if isinstance(leaf, jax.Array):
        return "jax"
    if isinstance(leaf, np.ndarray | np.generic):
        return "numpy"
    raise TypeError(
        f"{where}: the leaf at {path or 'the root'} is a {type(leaf).__name__}, which a "
        "checkpoint cannot store; leaves must be arrays, Python numbers, None or PRNG keys."
    )


def _leaf_record(where: str, path: str, leaf: Any) -> tuple[dict, np.ndarray]:
    """The header entry (without offset) and the bytes-to-write of one leaf."""
    kind = _kind(where, path, leaf)
    if kind == "key":
        impl = str(jax.random.key_impl(leaf))
        return {"kind": kind, "impl": impl}, np.asarray(jax.random.key_data(leaf))
    return {"kind": kind}, np.asarray(leaf)


def _spec(where: str, path: str, leaf: Any) -> tuple[bool, str, tuple[int, ...]]:
    """``(is_key, dtype, shape)`` of a leaf as it would be stored, read without copying it."""
    kind = _kind(where, path, leaf)
    if kind == "key":
        data = jax.eval_shape(jax.random.key_data, leaf)
        return True, np.dtype(data.dtype).name, tuple(data.shape)
    if kind in ("bool", "int", "float"):
        value = np.asarray(leaf)
        return False, value.dtype.name, ()
    return False, np.dtype(leaf.dtype).name, tuple(leaf.shape)


def _records(tree: Any) -> list[tuple[dict, np.ndarray]]:
    records = []
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        path = jax.tree_util.keystr(key_path)
        entry, array = _leaf_record("checkpoint.save", path, leaf)
        if array.dtype.name not in _DTYPES:
            raise TypeError(
                f"checkpoint.save: the leaf at {path or 'the root'} has dtype {array.dtype}, "
                "which a checkpoint cannot store."
            )
        entry.update(path=path, dtype=array.dtype.name, shape=list(array.shape))
        records.append((entry, np.ascontiguousarray(array)))
    return records


def _header(records, user_metadata) -> bytes:
    offset = 0
    for entry, array in records:
        offset = -(-offset // _ALIGN) * _ALIGN
        entry.update(offset=offset, nbytes=array.nbytes, crc32=zlib.crc32(_bytes(array)))
        offset += array.nbytes
    from fnnet import __version__

    header = {"format": FORMAT_VERSION, "fnnet": __version__, "metadata": user_metadata,
              "leaves": [entry for entry, _ in records]}  # fmt: skip
    return json.dumps(header, separators=(",", ":")).encode()


def save(path: str | os.PathLike, tree: Any, *, metadata: dict | None = None) -> None:
    """Writes `tree` to `path` atomically: the file is either the previous one or the new one,
    whenever the process is killed.

    The bytes go to a temporary file in the same directory, which is flushed and fsynced,
    renamed over `path`, and the directory fsynced. Temporaries left by a killed save of the
    same path are removed.

    Args:
      path: the checkpoint file.
      tree: any pytree of arrays (JAX or NumPy), Python numbers, None and PRNG keys, in dicts,
        lists, tuples and NamedTuples (a TrainState, an optimizer state).
      metadata: a JSON-serialisable dict stored in the header (`metadata(path)` reads it).
    Raises:
      TypeError: for a leaf that cannot be stored (its path named) or metadata that is not a
        JSON-serialisable dict.
      CheckpointError: when the file cannot be written (the previous file is left intact).
    """
    path = os.fspath(path)
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(
            f"checkpoint.save: `metadata` must be a dict, got {type(metadata).__name__}."
        )
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as error:
        raise TypeError(f"checkpoint.save: `metadata` must be JSON-serialisable: {error}") from None
    records = _records(tree)
    header = _header(records, metadata or {})
    directory, name = os.path.split(os.path.abspath(path))
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint.save: {path} is a directory, not a file path.")
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint.save: the directory of {path} does not exist.")
    _remove_temporaries(directory, name)
    temporary = os.path.join(directory, f".{name}{_TEMPORARY}{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            file.write(MAGIC + struct.pack("<Q", len(header)) + hashlib.sha256(header).digest())
            file.write(header)
            start = _PREFIX + len(header)
            for entry, array in records:
                file.seek(start + entry["offset"])
                file.write(_bytes(array))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        _fsync_directory(directory)
    except OSError as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise CheckpointError(
            f"checkpoint.save: could not write {path} ({error.strerror or error}); the previous "
            "file, if any, is intact."
        ) from error


def _remove_temporaries(directory: str, name: str) -> None:
    prefix = f".{name}{_TEMPORARY}"
    for entry in os.listdir(directory):
        if entry.startswith(prefix):
            os.remove(os.path.join(directory, entry))


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_header(file, path: str, size: int) -> dict:
    prefix = file.read(_PREFIX)
    if not prefix:
        raise CheckpointError(f"checkpoint: {path} is empty, not an fnnet checkpoint.")
    if not prefix.startswith(MAGIC):
        what = " (it is a zip file, such as .npz)" if prefix.startswith(b"PK") else ""
        raise CheckpointError(f"checkpoint: {path} is not an fnnet checkpoint{what}.")
    if len(prefix) < _PREFIX:
        raise CheckpointError(f"checkpoint: {path} is truncated inside its header.")
    (length,) = struct.unpack("<Q", prefix[len(MAGIC) : len(MAGIC) + 8])
    if _PREFIX + length > size:
        raise CheckpointError(
            f"checkpoint: {path} claims a header of {length} bytes, beyond its {size} bytes "
            "(truncated or corrupted)."
        )
    header = file.read(length)
    if hashlib.sha256(header).digest() != prefix[len(MAGIC) + 8 :]:
        raise CheckpointError(f"checkpoint: {path} has a corrupted header (checksum mismatch).")
    parsed = json.loads(header)
    if parsed.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint: {path} has format version {parsed['format']}, newer than this fnnet "
            f"reads ({FORMAT_VERSION}); upgrade fnnet."
        )
    parsed["_start"] = _PREFIX + length
    return parsed


def _open(path: str | os.PathLike):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint: {path} does not exist or is not a file.")
    file = open(path, "rb")  # noqa: SIM115 (the caller closes it in a `with`)
    return path, file, os.fstat(file.fileno()).st_size


def metadata(path: str | os.PathLike) -> dict:
    """The metadata dict saved with the checkpoint at `path` (``{}`` if none)."""
    path, file, size = _open(path)
    with file:
        return _read_header(file, path, size)["metadata"]


def _read_leaf(file, path: str, size: int, start: int, entry: dict) -> np.ndarray:
    where = entry["path"] or "the root"
    dtype = entry["dtype"]
    if dtype not in _DTYPES:
        raise CheckpointError(f"checkpoint: {path} stores an unknown dtype {dtype!r} at {where}.")
    dtype = jnp.dtype(dtype)
    shape = tuple(int(n) for n in entry["shape"])
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes != entry["nbytes"] or start + entry["offset"] + nbytes > size:
        raise CheckpointError(
            f"checkpoint: {path} claims {entry['nbytes']} bytes for {where} beyond its {size} "
            "bytes or unlike its shape (truncated or corrupted)."
        )
    array = np.empty(shape, dtype)
    file.seek(start + entry["offset"])
    if file.readinto(_bytes(array)) != nbytes:
        raise CheckpointError(f"checkpoint: {path} is truncated at {where}.")
    if zlib.crc32(_bytes(array)) != entry["crc32"]:
        raise CheckpointError(f"checkpoint: {path} is corrupted at {where} (checksum mismatch).")
    return array


def _restore(entry: dict, array: np.ndarray) -> Any:
    kind = entry["kind"]
    if kind == "key":
        return jax.random.wrap_key_data(array, impl=entry["impl"])
    if kind in ("bool", "int", "float"):
        return {"bool": bool, "int": int, "float": float}[kind](array.item())
    return jnp.asarray(array) if kind == "jax" else array


def load(path: str | os.PathLike, like: Any = None) -> Any:
    """The tree stored at `path`.

    Args:
      path: a file written by `save`.
      like: a tree of the same structure (e.g. a freshly initialised TrainState): its leaves'
        paths, shapes and dtypes are checked against the file's, and the result has its
        structure. Without it, a flat dict from each leaf's path (``keystr`` form, e.g.
        ``.opt_state.params[0]['w']``) to a NumPy array.
    Returns:
      `like`'s structure with the stored leaves (JAX arrays where `like` has JAX arrays, Python
      numbers where it has numbers, keys where it has keys), or the flat dict.
    Raises:
      CheckpointError: for a missing, empty, truncated, corrupted or foreign file, a newer
        format, or (with `like`) every path, shape and dtype that differs, listed in one error.
    """
    path, file, size = _open(path)
    with file:
        try:
            header = _read_header(file, path, size)
            entries, start = header["leaves"], header["_start"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            if isinstance(error, CheckpointError):
                raise
            raise CheckpointError(
                f"checkpoint: {path} has an unreadable header ({error})."
            ) from None
        if like is None:
            return {e["path"]: _read_leaf(file, path, size, start, e) for e in entries}
        leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
        _check_like(path, entries, leaves)
        restored = [_restore(e, _read_leaf(file, path, size, start, e)) for e in entries]
        return treedef.unflatten(restored)


def _check_like(path: str, entries: list[dict], leaves: list) -> None:
    stored = {e["path"]: (e["kind"] == "key", e["dtype"], tuple(e["shape"])) for e in entries}
    expected = {
        jax.tree_util.keystr(key_path): _spec(
            "checkpoint.load: `like`", jax.tree_util.keystr(key_path), leaf
        )
        for key_path, leaf in leaves
    }
    problems = [f"{p}: missing from the file" for p in expected if p not in stored]
    problems += [f"{p}: in the file, not in `like`" for p in stored if p not in expected]
    problems += [
        f"{p}: the file has {_describe(stored[p])}, `like` {_describe(expected[p])}"
        for p in expected
        if p in stored and stored[p] != expected[p]
    ]
    if problems or list(stored) != list(expected):
        problems = problems or ["the leaves are stored in another order"]
        raise CheckpointError(
            f"checkpoint: {path} does not match `like` at {len(problems)} path(s):\n  "
            + "\n  ".join(problems),
            mismatch=True,
        )


def _describe(spec: tuple) -> str:
    is_key, dtype, shape = spec
    return f"a key {shape}" if is_key else f"{shape} {dtype}"
