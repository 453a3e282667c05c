#!/usr/bin/env bash
# `buf breaking` for protos/ (as in the work tree) against a base that exists on any clone:
#   - $BUF_BREAKING_AGAINST when set (any buf input, e.g. '.git#branch=release-1');
#   - on a branch other than main, main (the branch it will land on);
#   - on main (CI clones main), the first commit that had protos/: the API as first
#     published. Workers and clients of any age must keep working, so nothing may break
#     against it, however many commits a submission brings (comparing with the previous
#     commit alone would let a break through in all but the last of them).
# A clone with no earlier commit (a single commit, or shallow) has nothing to compare with.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-npx --yes @bufbuild/buf@1.75.0}

against=${BUF_BREAKING_AGAINST:-}
if [ -z "$against" ]; then
    branch=$(git rev-parse --abbrev-ref HEAD)
    if [ "$branch" != main ] && base=$(git merge-base HEAD main 2>/dev/null); then
        against=".git#ref=$base"
    elif base=$(git log --format=%H --reverse -- protos | head -n 1) && [ -n "$base" ] &&
        [ "$base" != "$(git rev-parse HEAD)" ]; then
        against=".git#ref=$base"
    else
        echo "proto-breaking: no earlier commit to compare with; nothing to check"
        exit 0
    fi
fi
echo "buf breaking --against '$against'"
# shellcheck disable=SC2086
exec $BUF breaking --against "$against"
