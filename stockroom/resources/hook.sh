#!/bin/sh
# stockroom-managed-hook: written by `stock install`; `stock uninstall` removes it and puts back the hook it replaced.
# Runs stockroom's @HOOK@ check (docs/hooks.md) after the hook that was here before, if any.
hook=@HOOK@
# The interpreter that ran `stock install`, and where it imports stockroom and lmdb from ('' in the
# standalone copies under hooks/, which use `stock` from PATH instead).
python=@PYTHON@
pkgdirs=@PKGDIRS@

# `stock install` asks git to run this hook once, to make sure git really runs hooks from here.
if [ "${STOCKROOM_HOOK_PROBE-}" = "$hook" ]; then
    echo "stockroom-hook-probe-ok $hook"
    exit 0
fi

# The hook that was here before stockroom's runs first; a failing pre-commit stops the commit as before.
status=0
legacy="$0.stockroom-legacy"
# pre-push gets the refs on stdin: kept, for the previous hook and for stockroom's.
input=
if [ "$hook" = pre-push ]; then
    input=$(cat)
fi
if [ -x "$legacy" ]; then
    if [ "$hook" = pre-push ]; then
        printf '%s\n' "$input" | "$legacy" "$@"
    else
        "$legacy" "$@"
    fi
    status=$?
    if [ "$status" -ne 0 ] && { [ "$hook" = pre-commit ] || [ "$hook" = pre-push ]; }; then
        exit "$status"
    fi
fi

# Git runs hooks at the top of the work tree: without head.stock this is not a stock repository.
if [ ! -f head.stock ]; then
    exit "$status"
fi

# The common case, decided here without starting Python: the stock state did not change.
if [ "$hook" = post-checkout ]; then
    # A file checkout (flag 0), the same commit again, or head.stock the same on both sides.
    if [ "$3" = 0 ] || [ "$1" = "$2" ]; then
        exit "$status"
    fi
    case "$1" in
        *[!0]*)
            if git diff-tree --quiet "$1" "$2" -- head.stock 2>/dev/null; then
                exit "$status"
            fi
            ;;
    esac
elif [ "$hook" = pre-commit ] && [ -d .hangar ] && [ -f .hangar/ref.lmdb ] && [ ! -e .hangar/stockroom-staged ]; then
    # Nothing staged, head.stock names the commit the last check found in .hangar (or none),
    # and the index already has it: nothing to refuse, nothing to stage.
    digest=
    IFS= read -r digest <head.stock
    verified=
    if [ -f .hangar/stockroom-hook-verified ]; then
        IFS= read -r verified <.hangar/stockroom-hook-verified
    fi
    if [ ! -s head.stock ] || [ "$digest" = "$verified" ]; then
        if state=$(git --no-optional-locks status --porcelain --no-renames -- head.stock 2>/dev/null); then
            case "$state" in
                "" | "M "* | "A "*) exit 0 ;;
            esac
        fi
    fi
fi

# -S skips site-packages processing (half of Python's start-up); the fast path needs only the
# directories recorded above. Exit code 127 means "stockroom is not importable here".
bootstrap='import sys
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]  # never import from the work tree
sys.path.extend(p for p in sys.argv.pop(1).split(":") if p)
try:
    from stockroom.hook import main
except ImportError:
    import site
    site.main()
    try:
        from stockroom.hook import main
    except ImportError:
        sys.exit(127)
sys.exit(main(sys.argv[1:]))'

ours=127
if [ -n "$python" ] && [ -x "$python" ]; then
    if [ "$hook" = pre-push ]; then
        printf '%s\n' "$input" | "$python" -S -c "$bootstrap" "$pkgdirs" "$hook" "$@"
    else
        "$python" -S -c "$bootstrap" "$pkgdirs" "$hook" "$@"
    fi
    ours=$?
fi
if [ "$ours" -eq 127 ] && command -v stock >/dev/null 2>&1; then
    if [ "$hook" = pre-push ]; then
        printf '%s\n' "$input" | stock hook "$hook" "$@"
    else
        stock hook "$hook" "$@"
    fi
    ours=$?
fi
if [ "$ours" -eq 127 ]; then
    if [ -n "$python" ]; then
        echo "stockroom: the $hook hook cannot run: $python (recorded by \`stock install\`) is gone or no longer has stockroom, and \`stock\` is not on PATH." >&2
    else
        echo "stockroom: the $hook hook cannot run: \`stock\` is not on PATH." >&2
    fi
    echo "stockroom: fix: install stockroom and run \`stock install\` again with that Python; or remove the hook with \`stock uninstall\`." >&2
    self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
    if [ -e "$legacy" ]; then
        echo "stockroom: without stockroom, put back the previous hook by hand: mv \"$self.stockroom-legacy\" \"$self\"" >&2
    else
        echo "stockroom: without stockroom, remove it by hand: rm \"$self\"" >&2
    fi
    if [ "$hook" = pre-commit ]; then
        # A commit without the check could record stale stock state: refuse, say how to bypass.
        echo "stockroom: commit refused; to commit without the stock check this once: git commit --no-verify" >&2
        exit 1
    fi
    exit "$status"
fi
if [ "$hook" = pre-commit ] || [ "$hook" = pre-push ]; then
    exit "$ours"
fi
# post-checkout and post-merge never fail a checkout; the previous hook's status stands.
exit "$status"
