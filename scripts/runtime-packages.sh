#!/usr/bin/env bash
# Prints the Debian packages a runtime needs for the executables given: the
# package of every shared library they link directly (their NEEDED entries,
# found where the loader finds them, then dpkg -S; apt brings what those
# libraries link in turn), and setup.sh's runtime_tools, sorted, one a line.
# Fails, naming the library, when one is not found or belongs to no package,
# so an image built from this list cannot miss a library.
#   scripts/runtime-packages.sh build/bin/imgq-broker build/bin/imgq-worker build/bin/imgq
set -euo pipefail
here="$(dirname "$0")"
(($#)) || { echo "usage: runtime-packages.sh EXECUTABLE..." >&2; exit 2; }

declare -A needed=()   # soname -> the path the loader finds for it
for exe in "$@"; do
  [ -x "$exe" ] && [ -f "$exe" ] || { echo "runtime-packages.sh: $exe: not an executable file" >&2; exit 1; }
  declare -A found=()
  while read -r soname _ path _; do
    found["$soname"]="$path"
  done < <(ldd "$exe" | grep ' => ')
  while read -r soname; do
    path="${found[$soname]:-not}"
    if [ "$path" = "not" ]; then
      echo "runtime-packages.sh: $exe needs $soname, which the loader does not find" >&2
      exit 1
    fi
    needed["$soname"]="$path"
  done < <(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  unset found
done

# ldd prints the path the loader found, which on a merged-/usr system may be
# /lib/... for a file its package lists as /usr/lib/... (or the reverse), or
# a symlink the package ships under another name: ask dpkg for every
# spelling at once (one call; dpkg-query -S reads every file list each time).
declare -A spellings=()
for path in "${needed[@]}"; do
  real="$(readlink -f "$path")"
  for p in "$path" "$real"; do
    spellings["$p"]=1
    case "$p" in /usr/*) spellings["${p#/usr}"]=1 ;; *) spellings["/usr$p"]=1 ;; esac
  done
done
declare -A owner=()    # path -> package
while IFS= read -r line; do
  pkg="${line%%: *}"; pkg="${pkg%%:*}"; pkg="${pkg%%,*}"   # "libfoo1:amd64: /usr/lib/..."
  owner["${line#*: }"]="$pkg"
done < <(dpkg-query -S "${!spellings[@]}" 2>/dev/null || true)

declare -A packages=()
for soname in "${!needed[@]}"; do
  path="${needed[$soname]}"
  real="$(readlink -f "$path")"
  pkg=""
  for p in "$path" "$real" "/usr$path" "${path#/usr}" "/usr$real" "${real#/usr}"; do
    [ -n "${owner[$p]:-}" ] && { pkg="${owner[$p]}"; break; }
  done
  if [ -z "$pkg" ]; then
    echo "runtime-packages.sh: $soname ($path) belongs to no Debian package" >&2
    exit 1
  fi
  packages["$pkg"]=1
done
while read -r tool; do packages["$tool"]=1; done < <(bash "$here/setup.sh" --print runtime_tools)
printf '%s\n' "${!packages[@]}" | sort
