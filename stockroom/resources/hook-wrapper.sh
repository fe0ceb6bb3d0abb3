#!/bin/sh
@HOOK_MARKER@: stockroom's @HOOK@ hook, for core.hooksPath; @HOOK_SCRIPT@ beside it does the work (docs/hooks.md).
hook=@HOOK@
. "$(dirname "$0")/@HOOK_SCRIPT@"
