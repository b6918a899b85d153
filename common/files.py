"""Writing files so that a crash or Ctrl-C never leaves half of one behind."""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from common.errors import RunError


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success rename it into place, on failure remove it. A write
    that fails for the disk's sake (full, read-only, gone: OSError, or safetensors' own error for the same)
    becomes one RunError naming the file; whatever was at `path` before is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except Exception as e:
        if not isinstance(e, OSError) and type(e).__name__ != "SafetensorError":
            raise
        reason = e.strerror if isinstance(e, OSError) and e.strerror else " ".join(str(e).split())[:120]
        raise RunError(f"could not write {path} ({reason}); any earlier {path.name} there is left as it was: "
                       f"free some space, or write elsewhere with --out") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def file_in_the_way(path: Path) -> Path | None:
    """`path` itself, or the folder above it, that exists as a file: what keeps `path` from being a folder."""
    return next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)


def check_name(path: Path | None, flag: str) -> None:
    """Raise RunError, in one line, when `path` names something longer than its filesystem allows: a name (a folder's
    or the file's) over NAME_MAX, or the whole path over PATH_MAX, either of which would fail every open."""
    if path is None:
        return
    path = Path(path)
    existing = next((p for p in (path.absolute(), *path.absolute().parents) if os.path.exists(p)), Path("/"))
    try:
        name_max, path_max = os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # (no pathconf here: the usual limits)
        name_max, path_max = 255, 4096
    def short(text, n):
        return text if len(text) <= n else text[:n - 3] + "..."
    longest = max(path.parts, key=lambda part: len(os.fsencode(part)), default="")
    if len(os.fsencode(longest)) > name_max:
        raise RunError(f"{flag} {short(str(path), 60)}: the name {short(longest, 24)} is {len(os.fsencode(longest))} "
                       f"bytes long, more than the {name_max} this filesystem allows; use a shorter name")
    if len(os.fsencode(str(path.absolute()))) >= path_max:
        raise RunError(f"{flag} {short(str(path), 60)}: the path is longer than the {path_max} bytes this filesystem "
                       f"allows; use a shorter one")


def check_folder(path: Path, flag: str, purpose: str) -> None:
    """Raise RunError, in one line, when `path` cannot be a folder: its name too long (check_name), or it, or a folder
    above it, a file."""
    check_name(path, flag)
    not_folder = file_in_the_way(path)
    if not_folder == path:
        raise RunError(f"{flag} {path}: is a file, not a folder; name a folder for {purpose}")
    if not_folder is not None:
        raise RunError(f"{flag} {path}: {not_folder} is a file, not a folder; name a folder for {purpose}")


def jsonable(o):
    """NaN (no validation split) becomes null, tuples and paths become lists and strings: JSON has neither."""
    if isinstance(o, dict):
        return {k: jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    return None if isinstance(o, float) and math.isnan(o) else o


def write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
