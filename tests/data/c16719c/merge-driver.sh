#!/bin/sh
# stockroom-managed-merge-driver: written by `stock install`; `stock uninstall` removes it.
# git runs it as `merge-driver %O %A %B %P` when both sides of a merge changed head.stock
# (`head.stock merge=stock` in .gitattributes): it merges the two stock commits (docs/merging.md).
# The interpreter that ran `stock install`, and where it imports stockroom from.
python=@PYTHON@
pkgdirs=@PKGDIRS@

bootstrap='import sys
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]  # never import from the work tree
sys.path[:0] = [p for p in sys.argv.pop(1).split(":") if p]
try:
    from stockroom.cli import main
except ImportError:
    sys.exit(127)
main(["merge-driver", *sys.argv[1:]])'

ours=127
if [ -n "$python" ] && [ -x "$python" ]; then
    "$python" -c "$bootstrap" "$pkgdirs" "$@"
    ours=$?
fi
if [ "$ours" -eq 127 ] && command -v stock >/dev/null 2>&1; then
    stock merge-driver "$@"
    ours=$?
fi
if [ "$ours" -eq 0 ]; then
    exit 0
fi

# Whatever failed, git keeps what is in %A as head.stock: never leave one side's digest there
# (a hasty `git add` would commit it as the merge). Name both sides instead: nothing is lost.
first() {
    line=
    IFS= read -r line <"$1" 2>/dev/null
    printf '%s' "$line"
}
marker=
IFS= read -r marker <"$2" 2>/dev/null
case "$marker" in
    "<<<<<<< unfinished stock merge"*) ;;
    *)
        base=$(first "$1")
        mine=$(first "$2")
        other=$(first "$3")
        printf '%s\n' "<<<<<<< unfinished stock merge: run \`stock status\`, then \`stock merge --ours|--theirs [KEY...]\`" \
            "base $base" "ours $mine" "theirs $other" \
            ">>>>>>> then \`git add head.stock\` and commit (or \`git merge --abort\`)" >"$2"
        ;;
esac
if [ "$ours" -eq 127 ]; then
    echo "stockroom: cannot merge head.stock: ${python:-stockroom} (recorded by \`stock install\`) is gone or no longer has stockroom, and \`stock\` is not on PATH." >&2
    echo "stockroom: head.stock now names both sides' stock commits (nothing is lost): install stockroom, run \`stock merge\`, then \`git add head.stock\` and commit; or \`git merge --abort\`." >&2
fi
exit 1
