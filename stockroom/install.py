"""Installing and removing stockroom's git hooks (``stock install`` / ``stock uninstall``).

The hooks go where git looks for them: ``git rev-parse --git-path hooks``,
which honours ``core.hooksPath`` and finds the shared hooks directory of
linked worktrees and the module directory of submodules. A hook that was
already there is renamed ``<hook>.stockroom-legacy``; stockroom's script
runs it first and ``stock uninstall`` renames it back, byte for byte.
stockroom recognises its own scripts by their marker line, so installing
again only refreshes them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stockroom import git as gitutil
from stockroom import layout
from stockroom.errors import StockroomError
from stockroom.layout import DRIVER_COMMAND as DRIVER_COMMAND
from stockroom.layout import DRIVER_MARKER as DRIVER_MARKER
from stockroom.layout import DRIVER_NAME as DRIVER_NAME
from stockroom.layout import DRIVER_SCRIPT as DRIVER_SCRIPT
from stockroom.layout import FRAMEWORK_CONFIG as FRAMEWORK_CONFIG
from stockroom.layout import FRAMEWORK_MARKER as FRAMEWORK_MARKER
from stockroom.layout import HOOK_NAMES as HOOK_NAMES
from stockroom.layout import LEGACY_SUFFIX as LEGACY_SUFFIX
from stockroom.layout import PROBE_ENV as PROBE_ENV

# The names below stay importable from here (tests and earlier callers use them).
MARKER = layout.HOOK_MARKER
ATTRIBUTE_LINE = layout.ATTRIBUTE_LINE
TEMPLATE = "hook.sh"
WRAPPER_TEMPLATE = "hook-wrapper.sh"
DRIVER_TEMPLATE = "merge-driver.sh"
_PROBE_OK = layout.PROBE_OK
# A value put unquoted into a script; the quoted ones must still not end a
# double-quoted string or expand in it.
_UNQUOTED_SAFE = re.compile(r"[A-Za-z0-9._/-]+")
_DOUBLE_QUOTE_SPECIAL = frozenset('"$`\\\n')
_LEFT_OVER = re.compile(r"@[A-Z_]+@")


@dataclass(frozen=True)
class HookChange:
    """What ``install_hooks``/``uninstall_hooks`` did to one hook file."""

    name: str
    path: Path
    action: str  # installed, updated, unchanged, removed, restored, absent, left alone

    def describe(self) -> str:
        """One line for the user."""
        return f"{self.name}: {self.action} ({self.path})"


def _resource(name: str) -> str:
    return resources.files("stockroom").joinpath("resources", name).read_text(encoding="utf-8")


def template() -> str:
    """The hook script template shipped in ``stockroom/resources``."""
    return _resource(TEMPLATE)


def _hangar_complete() -> str:
    """The sh test that every file and directory Hangar's init creates is in .hangar."""
    tests = [f"[ -f {layout.HANGAR_DIR}/{name} ]" for name in layout.HANGAR_FILES]
    tests += [f"[ -d {layout.HANGAR_DIR}/{name} ]" for name in layout.HANGAR_DIRS]
    # three tests a line, as the script was written by hand
    lines = [" && ".join(tests[i : i + 3]) for i in range(0, len(tests), 3)]
    return " \\\n    && ".join(lines)


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``@KEY@`` replaced by ``values[KEY]``, then by the names
    of :data:`stockroom.layout.SHELL_NAMES`.

    Raises ``ValueError`` when a name is not safe where the scripts put it, or
    when a placeholder is left unfilled (a template and layout.py out of step).
    """
    for key, value in layout.SHELL_NAMES.items():
        if _DOUBLE_QUOTE_SPECIAL.intersection(value) or (
            key not in layout.SHELL_QUOTED and not _UNQUOTED_SAFE.fullmatch(value)
        ):
            raise ValueError(f"stockroom.layout.{key} = {value!r} cannot go into a shell script as is")
    for key, value in {**values, **layout.SHELL_NAMES, "HANGAR_COMPLETE": _hangar_complete()}.items():
        text = text.replace(f"@{key}@", value)
    left = sorted(set(_LEFT_OVER.findall(text)))
    if left:
        raise ValueError(
            f"placeholders with no value: {', '.join(left)} (add them to stockroom.layout.SHELL_NAMES)"
        )
    return text


def render(name: str, python: str = "", pkgdirs: str = "") -> str:
    """The hook script for ``name``, running ``python`` with ``pkgdirs`` on its path.

    Without an interpreter: the hook's file under ``hooks/`` in the source
    tree, a wrapper that runs :func:`shared_script` beside it (which uses
    ``stock`` from PATH).
    """
    if name not in HOOK_NAMES:
        raise ValueError(f"stockroom has no {name!r} hook; it has {', '.join(HOOK_NAMES)}")
    if not python and not pkgdirs:
        return fill(_resource(WRAPPER_TEMPLATE), {"HOOK": name})
    return fill(template(), {"HOOK": name, "PYTHON": shlex.quote(python), "PKGDIRS": shlex.quote(pkgdirs)})


def shared_script() -> str:
    """``hooks/stockroom-hook``: the template with no interpreter, run by the five
    wrappers beside it; the hook is the wrapper's ``hook=`` (else the name it runs under)."""
    return fill(template(), {"HOOK": '"${hook:-${0##*/}}"', "PYTHON": "''", "PKGDIRS": "''"})


def shipped_hooks() -> dict[str, str]:
    """File name -> text of everything under ``hooks/`` in the source tree."""
    files = {name: render(name) for name in HOOK_NAMES}
    files[layout.HOOK_SCRIPT] = shared_script()
    return files


def write_shipped_hooks(directory: Path) -> None:
    """Regenerate ``hooks/`` (``python -c 'from stockroom.install import *;
    write_shipped_hooks(Path("hooks"))'``); a test checks it is up to date."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in shipped_hooks().items():
        _write_script(directory / name, text)


def _import_dirs() -> str:
    """Where this interpreter imports stockroom and lmdb from, ':'-joined.

    The hook starts Python without site-packages processing (``-S``, half
    of its start-up time) and puts exactly these on ``sys.path``.
    """
    # This file is stockroom/install.py: its package's parent (not `import
    # stockroom`, which would tie install to the package's facade and so to core).
    dirs = [str(Path(__file__).resolve().parent.parent)]
    try:
        import lmdb

        dirs.append(str(Path(lmdb.__file__).resolve().parent.parent))
    except ImportError:  # the hook then asks the store (slow, still right)
        pass
    # ':' separates them in the hook; a directory whose name has one is left
    # out (the hook then loads site-packages the usual way).
    return ":".join(dict.fromkeys(d for d in dirs if ":" not in d))


def installed_script(name: str) -> str:
    """The script ``stock install`` writes for ``name`` from this interpreter."""
    return render(name, sys.executable, _import_dirs())


def hooks_dir(root: Path) -> Path:
    """The directory git runs the hooks of the work tree ``root`` from.

    Raises :class:`StockroomError` when ``core.hooksPath`` names a place git
    will not run hooks from.
    """
    try:
        raw = gitutil.git("config", "--get", "core.hooksPath", cwd=root, keep_env=False)
    except StockroomError:
        raw = None  # unset
    where = gitutil.git("rev-parse", "--git-path", "hooks", cwd=root, keep_env=False)
    path = Path(where) if os.path.isabs(where) else root / where
    if raw is not None:
        fix = (
            "point it at a directory (`git config core.hooksPath .githooks`) or unset it "
            "(`git config --unset core.hooksPath`), then run `stock install` again"
        )
        if raw.strip() == "":
            raise StockroomError(f"core.hooksPath is set but empty: git runs no hooks from it; {fix}")
        if path.exists() and not path.is_dir():
            raise StockroomError(
                f"core.hooksPath is {raw!r} ({path}), which is not a directory: git runs no "
                f"hooks from it (that is how hooks are turned off); {fix}"
            )
    return path


def _is_ours(path: Path) -> bool:
    """A regular file carrying stockroom's marker line (a symlink is someone else's)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    return MARKER.encode() in head


def _write_script(path: Path, text: str) -> None:
    """Write an executable script atomically (git never sees half of it)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _probe(root: Path, names: tuple[str, ...]) -> list[str]:
    """The hooks git does not run from where we wrote them (``git hook run``).

    Empty when git is too old to have ``git hook`` (2.36): then the
    directory checks in :func:`hooks_dir` are all there is.
    """
    import subprocess

    missing = []
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    for name in names:
        env[PROBE_ENV] = name
        proc = subprocess.run(
            ("git", "hook", "run", name), cwd=root, env=env, capture_output=True, text=True, check=False
        )
        output = proc.stdout + proc.stderr
        if f"{_PROBE_OK} {name}" in output:
            continue
        if "is not a git command" in output or "unknown subcommand" in output:
            return []
        missing.append(f"{name} ({output.strip().splitlines()[-1] if output.strip() else 'no output'})")
    return missing


def framework_runs(root: Path, name: str) -> bool:
    """Whether the pre-commit framework runs stockroom's ``name`` hook here: its
    hook script is installed (or kept by ``stock install`` as the legacy hook) and
    ``.pre-commit-config.yaml`` lists ``stockroom-<name>``."""
    try:
        config = (root / FRAMEWORK_CONFIG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if layout.FRAMEWORK_ID_PREFIX + name not in config:
        return False
    try:
        directory = hooks_dir(root)
    except StockroomError:
        return False
    for path in (directory / name, directory / (name + LEGACY_SUFFIX)):
        try:
            with open(path, "rb") as handle:
                if FRAMEWORK_MARKER.encode() in handle.read(512):
                    return True
        except OSError:
            continue
    return False


def install_hooks(root: Path) -> list[HookChange]:
    """Install stockroom's hooks for the work tree ``root``; what changed, per hook."""
    directory = hooks_dir(root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StockroomError(
            f"cannot create the hooks directory {directory}: {exc.strerror}; fix its permissions "
            f"or core.hooksPath, then run `stock install` again"
        ) from None
    # Check every hook before changing any, so a refusal leaves things as they were.
    for name in HOOK_NAMES:
        path = directory / name
        legacy = directory / (name + LEGACY_SUFFIX)
        if os.path.lexists(path) and not _is_ours(path) and os.path.lexists(legacy):
            raise StockroomError(
                f"{path} is not stockroom's, and {legacy.name} (the hook stockroom kept from "
                f"an earlier install) is there too; merge them into one hook or remove one, "
                f"then run `stock install` again"
            )
    changes = []
    try:
        for name in HOOK_NAMES:
            path = directory / name
            script = installed_script(name)
            if _is_ours(path):
                if path.read_text(encoding="utf-8", errors="replace") == script and os.access(path, os.X_OK):
                    changes.append(HookChange(name, path, "unchanged"))
                    continue
                _write_script(path, script)
                changes.append(HookChange(name, path, "updated"))
                continue
            action = "installed"
            if os.path.lexists(path):
                os.rename(path, directory / (name + LEGACY_SUFFIX))
                action = f"installed; the previous hook runs first, kept as {name + LEGACY_SUFFIX}"
            _write_script(path, script)
            changes.append(HookChange(name, path, action))
    except OSError as exc:
        raise StockroomError(
            f"cannot write the git hooks in {directory}: {exc.strerror}; fix its permissions, "
            f"then run `stock install` again"
        ) from None
    not_run = [c.name for c in changes if not os.access(c.path, os.X_OK)]
    not_run += _probe(root, tuple(c.name for c in changes if c.name not in not_run))
    if not_run:
        uninstall_hooks(root)
        raise StockroomError(
            f"git does not run hooks from {directory} (checked: {'; '.join(not_run)}); the hooks "
            f"were taken out again. Check core.hooksPath and that the directory allows running "
            f"programs (not mounted noexec), then run `stock install` again"
        )
    doubled = [name for name in HOOK_NAMES if framework_runs(root, name)]
    if doubled:
        import warnings

        warnings.warn(
            f"the pre-commit framework already runs stockroom's {' and '.join(doubled)} hook here "
            f"({FRAMEWORK_CONFIG}); stockroom's own hooks leave those to it, so installing them adds "
            f"nothing: `stock uninstall` takes them out again",
            stacklevel=2,
        )
    return changes


def uninstall_hooks(root: Path) -> list[HookChange]:
    """Remove stockroom's hooks and put back the ones they replaced; what changed."""
    directory = hooks_dir(root)
    changes = []
    for name in HOOK_NAMES:
        path = directory / name
        legacy = directory / (name + LEGACY_SUFFIX)
        ours = _is_ours(path)
        if os.path.lexists(path) and not ours:
            note = f"; {legacy.name} kept" if os.path.lexists(legacy) else ""
            changes.append(HookChange(name, path, f"left alone: not stockroom's{note}"))
            continue
        if ours:
            path.unlink()
        if os.path.lexists(legacy):
            os.rename(legacy, path)
            changes.append(HookChange(name, path, "removed; the previous hook is back"))
        else:
            changes.append(HookChange(name, path, "removed" if ours else "absent"))
    return changes


def install(root: Path) -> None:
    """Install the git hooks and the merge driver for the stock root ``root`` (``stock init`` calls this)."""
    install_hooks(root)
    install_merge_driver(root)


def uninstall(root: Path) -> None:
    """Remove stockroom's git hooks and merge driver from ``root``, restoring what was there before."""
    uninstall_hooks(root)
    uninstall_merge_driver(root)


# ------------------------------------------------------------ merge driver
def driver_script() -> str:
    """The merge driver script ``stock install`` writes, pinned to this interpreter."""
    return fill(
        _resource(DRIVER_TEMPLATE),
        {"PYTHON": shlex.quote(sys.executable), "PKGDIRS": shlex.quote(_import_dirs())},
    )


def _driver_path(root: Path) -> Path:
    where = gitutil.git("rev-parse", "--git-common-dir", cwd=root, keep_env=False)
    return (Path(where) if os.path.isabs(where) else root / where) / DRIVER_SCRIPT


def _attributes(root: Path) -> tuple[Path, list[str]]:
    path = root / ".gitattributes"
    try:
        return path, path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return path, []


def install_merge_driver(root: Path) -> list[str]:
    """Register the ``head.stock`` merge driver: the script, ``merge.stock.*`` in
    the repository's git config, the line in ``.gitattributes``. What changed."""
    done = []
    script, path = driver_script(), _driver_path(root)
    if not (path.is_file() and path.read_text(encoding="utf-8", errors="replace") == script):
        _write_script(path, script)
        done.append(f"merge driver: wrote {path}")
    for key, value in (("name", layout.DRIVER_DESCRIPTION), ("driver", DRIVER_COMMAND)):
        if gitutil.config_value(f"merge.{DRIVER_NAME}.{key}", root) != value:
            gitutil.git("config", "--local", f"merge.{DRIVER_NAME}.{key}", value, cwd=root, keep_env=False)
            done.append(f"merge driver: set merge.{DRIVER_NAME}.{key} in the git config")
    attributes, lines = _attributes(root)
    if ATTRIBUTE_LINE not in (line.strip() for line in lines):
        text = "".join(line + "\n" for line in lines) + ATTRIBUTE_LINE + "\n"
        attributes.write_text(text, encoding="utf-8")
        done.append(f"merge driver: added `{ATTRIBUTE_LINE}` to .gitattributes (commit it)")
    return done


def uninstall_merge_driver(root: Path) -> list[str]:
    """Remove exactly what :func:`install_merge_driver` added; what changed."""
    done = []
    path = _driver_path(root)
    try:
        ours = DRIVER_MARKER in path.read_text(encoding="utf-8", errors="replace")[:512]
    except OSError:
        ours = False
    if ours:
        path.unlink()
        done.append(f"merge driver: removed {path}")
    if gitutil.config_value(f"merge.{DRIVER_NAME}.driver", root) == DRIVER_COMMAND:
        gitutil.git("config", "--local", "--remove-section", f"merge.{DRIVER_NAME}", cwd=root, keep_env=False)
        done.append(f"merge driver: removed merge.{DRIVER_NAME} from the git config")
    attributes, lines = _attributes(root)
    kept = [line for line in lines if line.strip() != ATTRIBUTE_LINE]
    if len(kept) != len(lines):
        if any(line.strip() for line in kept):
            attributes.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        else:
            attributes.unlink()
        done.append(f"merge driver: removed `{ATTRIBUTE_LINE}` from .gitattributes")
    return done
