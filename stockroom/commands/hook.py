from __future__ import annotations

import os

from stockroom.git import work_tree_root


def hook(name: str, args: list[str]) -> int:
    # Git runs hooks at the top of the work tree; a person may run this anywhere in it.
    if not os.path.exists(".git"):
        os.chdir(work_tree_root())
    from stockroom.hook import main

    return main([name, *args])
