#!/bin/sh
@HOOK_MARKER@: written by `stock install`; `stock uninstall` removes it and puts back the hook it replaced.
# Runs stockroom's check for the git hook named below (docs/hooks.md) after the hook that was here
# before, if any. Rendered by stockroom.install from this template and the names in stockroom/layout.py.
hook=@HOOK@
# The interpreter that ran `stock install`, and where it imports stockroom and lmdb from ('' in the
# standalone script under hooks/, which uses `stock` from PATH instead).
python=@PYTHON@
pkgdirs=@PKGDIRS@

# `stock install` asks git to run this hook once, to make sure git really runs hooks from here.
if [ "${@PROBE_ENV@-}" = "$hook" ]; then
    echo "@PROBE_OK@ $hook"
    exit 0
fi

# The hook that was here before stockroom's runs first; a failing pre-commit stops the commit as before.
status=0
legacy="$0@LEGACY_SUFFIX@"
# post-rewrite lists the rewritten commits on stdin, pre-push the refs to push: kept, for the
# previous hook and for stockroom's.
input=
if [ "$hook" = post-rewrite ] || [ "$hook" = pre-push ]; then
    input=$(cat)
fi
if [ "$hook" = post-rewrite ]; then
    @REWRITTEN_ENV@=$input
    export @REWRITTEN_ENV@
fi
if [ -x "$legacy" ]; then
    if [ "$hook" = post-rewrite ] || [ "$hook" = pre-push ]; then
        printf '%s\n' "$input" | "$legacy" "$@"
    else
        "$legacy" "$@"
    fi
    status=$?
    if [ "$status" -ne 0 ] && { [ "$hook" = pre-commit ] || [ "$hook" = pre-push ]; }; then
        exit "$status"
    fi
    # The pre-commit framework's hook, kept here, already ran stockroom's check when
    # @FRAMEWORK_CONFIG@ lists it: running it again would say everything twice.
    if grep -q "^@FRAMEWORK_MARKER@" "$legacy" 2>/dev/null \
        && grep -q "@FRAMEWORK_ID_PREFIX@$hook" @FRAMEWORK_CONFIG@ 2>/dev/null; then
        exit "$status"
    fi
fi

# Git runs hooks at the top of the work tree: without @HEAD_FILE@ this is not a stock repository.
if [ ! -f @HEAD_FILE@ ]; then
    exit "$status"
fi

# The common case, decided here without starting Python: the stock state did not change.
if [ "$hook" = post-checkout ]; then
    # A file checkout (flag 0), the same commit again, or @HEAD_FILE@ the same on both sides.
    if [ "$3" = 0 ] || [ "$1" = "$2" ]; then
        exit "$status"
    fi
    case "$1" in
        *[!0]*)
            if git diff-tree --quiet "$1" "$2" -- @HEAD_FILE@ 2>/dev/null; then
                exit "$status"
            fi
            ;;
    esac
elif [ "$hook" = post-rewrite ]; then
    # After `git commit --amend` nothing can have dropped a side of a conflict; only a rebase is checked.
    if [ "$1" != rebase ]; then
        exit "$status"
    fi
elif [ "$hook" = pre-commit ] && @HANGAR_COMPLETE@ \
    && [ ! -e @HANGAR_DIR@/@STAGED_MARKER@ ]; then
    # (Every file Hangar's init creates is there: a damaged store goes to the full check, which refuses.)
    # Nothing staged, @HEAD_FILE@ names the commit the last check found in @HANGAR_DIR@ (or none),
    # and the index already has it: nothing to refuse, nothing to stage.
    digest=
    IFS= read -r digest <@HEAD_FILE@
    verified=
    if [ -f @HANGAR_DIR@/@VERIFIED_FILE@ ]; then
        IFS= read -r verified <@HANGAR_DIR@/@VERIFIED_FILE@
    fi
    if [ ! -s @HEAD_FILE@ ] || [ "$digest" = "$verified" ]; then
        if state=$(git --no-optional-locks status --porcelain --no-renames -- @HEAD_FILE@ 2>/dev/null); then
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
        echo "stockroom: without stockroom, put back the previous hook by hand: mv \"$self@LEGACY_SUFFIX@\" \"$self\"" >&2
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
# post-checkout, post-merge and post-rewrite never fail; the previous hook's status stands.
exit "$status"
