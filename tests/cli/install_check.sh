#!/usr/bin/env bash
# `cmake --install` puts the four programs, their man pages and imgq's bash
# and zsh completions in place; the man pages render without a warning and
# the completions complete.  install_check.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/imgq bin/imgq-broker bin/imgq-worker bin/imgq-gateway share/man/man1/imgq.1 \
         share/man/man1/imgq-broker.1 share/man/man1/imgq-worker.1 share/man/man1/imgq-gateway.1 share/bash-completion/completions/imgq share/zsh/vendor-completions/_imgq; do
  [ -s "$prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
for page in "$prefix"/share/man/man1/*.1; do
  warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
  [ -z "$warnings" ] || { echo "FAIL: $page: $warnings"; exit 1; }
  grep -q '^\.SH "EXIT STATUS"' "$page" || { echo "FAIL: $page has no EXIT STATUS"; exit 1; }
done
grep -q 'imgq submit' "$prefix/share/man/man1/imgq.1" || { echo "FAIL: imgq.1 lacks submit"; exit 1; }
complete_words() {  # complete_words WORD...: what bash completes for the last word
  bash -c 'source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _imgq; echo "${COMPREPLY[*]}"' \
    "$prefix/share/bash-completion/completions/imgq" "$@"
}
[ "$(complete_words imgq sub)" = "submit" ] || { echo "FAIL: imgq sub<TAB>: $(complete_words imgq sub)"; exit 1; }
[ "$(complete_words imgq submit --skip)" = "--skip-existing" ] || { echo "FAIL: --skip<TAB>"; exit 1; }
[ "$(complete_words imgq submit --op gaussian)" = "gaussian_blur" ] || { echo "FAIL: --op gaussian<TAB>"; exit 1; }
[ "$(complete_words imgq jobs --state fa)" = "failed" ] || { echo "FAIL: --state fa<TAB>"; exit 1; }
zsh -n "$prefix/share/zsh/vendor-completions/_imgq" || { echo "FAIL: the zsh completion does not parse"; exit 1; }
grep -q "'submit:" "$prefix/share/zsh/vendor-completions/_imgq" || { echo "FAIL: zsh completion lacks submit"; exit 1; }
echo "ok: installed, man pages clean, completions complete"
