#!/usr/bin/env bash
# Checks the gRPC contracts in protos/ with buf, configured by buf.yaml and pinned in
# package.json (installed into node_modules/ on first use):
#
#   buf lint       STANDARD rules
#   buf breaking   FILE rules, run three ways, because CI checks out main itself, where a
#                  plain "against main" would compare a tree with itself:
#     1. the working tree against HEAD (uncommitted changes);
#     2. the working tree against the local branch main, when there is one and it is not HEAD
#        (when main has moved on since this branch left it, against their merge base: what
#        main added since is not this branch's to keep, and merging the two is checked then,
#        as a commit against its first parent by 3);
#     3. every commit on HEAD's first-parent history that touched protos/ or buf.yaml against
#        its parent, so a breaking change that was committed (and is now HEAD or older) is
#        still caught. Commits whose parent has no buf.yaml predate these checks and are
#        skipped. A deliberate break (a new major version is the better way) is accepted by
#        a commit message trailer `Breaking-Contract-Change: <why, and who was told>`, and
#        reported as such on every run.
#
# Usage: scripts/check_protos.sh   (from any directory; needs node/npm and git)
# Prints one line per check and exits non-zero when any check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

buf=node_modules/.bin/buf
want=$(node -p 'require("./package.json").devDependencies["@bufbuild/buf"]')
if [[ ! -x $buf || "$("$buf" --version 2>/dev/null || true)" != "$want" ]]; then
  echo "installing buf $want into node_modules/ (npm)"
  npm install --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null
fi

# buf reads git inputs from the repository's object store: `.git` in a plain checkout, the
# common directory (named with format=git) in a linked worktree.
gitdir=$(git rev-parse --git-common-dir)
git_input() {  # git_input ref=<sha> | branch=<name>
  if [[ $gitdir == .git ]]; then printf '.git#%s' "$1"; else printf '%s#format=git,%s' "$gitdir" "$1"; fi
}
has_config() { git cat-file -e "$1:buf.yaml" 2>/dev/null; }
describe() { git log -1 --format='%h "%<(50,trunc)%s"' "$1" | sed 's/ *"$/"/'; }

failures=0
check() {  # check <what it compares> <buf arguments...>
  local what=$1 out
  shift
  if out=$("$buf" "$@" </dev/null 2>&1); then
    echo "ok    $what"
  else
    echo "FAIL  $what"
    sed 's/^/        /' <<<"$out"
    failures=$((failures + 1))
  fi
}

check "buf lint (STANDARD): protos/ in the working tree" lint

# 1 and 2: the working tree against a committed tree. A commit from before buf.yaml is read
# with the working tree's buf.yaml, which says where the module is (protos/).
against_tree() {  # against_tree <label> <rev> <git input>
  local label=$1 rev=$2 input=$3 config=() note=""
  if ! has_config "$rev"; then
    config=(--against-config buf.yaml)
    note=" (it has no buf.yaml: read with the working tree's)"
  fi
  check "buf breaking (FILE): working tree vs $label $(describe "$rev")$note" \
    breaking --against "$input" ${config[@]+"${config[@]}"}
}

head=$(git rev-parse --verify -q HEAD) || { echo "no commits yet: nothing to compare"; exit 0; }
against_tree HEAD "$head" "$(git_input "ref=$head")"
if main=$(git rev-parse --verify -q refs/heads/main) && [[ $main != "$head" ]]; then
  if git merge-base --is-ancestor "$main" "$head"; then
    against_tree "branch main" "$main" "$(git_input branch=main)"
  else
    base=$(git merge-base "$head" "$main")
    against_tree "the merge base with main" "$base" "$(git_input "ref=$base")"
  fi
fi

# 3: each committed change against its parent.
before_config=0
no_parent=0
while read -r commit; do
  if ! parent=$(git rev-parse --verify -q "$commit^"); then
    no_parent=$((no_parent + 1))  # the root commit, or the edge of a shallow clone
    continue
  fi
  if ! has_config "$parent"; then
    before_config=$((before_config + 1))
    continue
  fi
  what="buf breaking (FILE): $(describe "$commit") vs its parent $(git rev-parse --short "$parent")"
  if ! has_config "$commit"; then
    echo "FAIL  $what: the commit deletes buf.yaml"
    failures=$((failures + 1))
    continue
  fi
  accepted=$(git log -1 --format='%(trailers:key=Breaking-Contract-Change,valueonly)' "$commit")
  if [[ -n ${accepted//[[:space:]]/} ]]; then
    echo "accept $what: Breaking-Contract-Change: $(head -1 <<<"$accepted")"
    continue
  fi
  check "$what" breaking "$(git_input "ref=$commit")" --against "$(git_input "ref=$parent")"
done < <(git rev-list --first-parent HEAD -- protos buf.yaml)
if ((before_config > 0)); then
  echo "skip  $before_config commit(s) touching protos/ from before buf.yaml existed (parent has no buf.yaml)"
fi
if ((no_parent > 0)); then
  echo "skip  $no_parent commit(s) touching protos/ whose parent is not here (root commit or shallow clone)"
fi

if ((failures > 0)); then
  echo "check_protos: $failures check(s) failed" >&2
  exit 1
fi
echo "check_protos: all checks passed"
