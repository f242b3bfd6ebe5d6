#!/usr/bin/env bash
# Replaces the libraries inline in template.html (vega, vega-lite, vega-embed), so the page
# `dvc plots show` / `dvc plots diff` write renders with no network (DVC's default page loads them
# from a CDN). Needs npm and the registry; bump the versions here and in README.md together.
set -euo pipefail
cd "$(dirname "$0")"
VEGA=5.33.1 VEGA_LITE=5.23.0 VEGA_EMBED=6.29.0 # the majors DVC's templates target (schema v5)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "vega@$VEGA" "vega-lite@$VEGA_LITE" "vega-embed@$VEGA_EMBED" >/dev/null)
for pkg in "vega-$VEGA" "vega-lite-$VEGA_LITE" "vega-embed-$VEGA_EMBED"; do
  mkdir "$tmp/${pkg%-*}" && tar xzf "$tmp/$pkg.tgz" -C "$tmp/${pkg%-*}"
done
sha256sum "$tmp"/*.tgz | sed "s#$tmp/##"

inline() { # name version: the package's minified UMD build as one <script>, source map dropped
  echo "<script>/* $1@$2, BSD-3-Clause (LICENSE beside this file) */"
  sed '/^\/\/# sourceMappingURL=/d' "$tmp/$1/package/build/$1.min.js"
  echo "</script>"
}

# The page's markup lives in template.html alone (DVC fills {plot_divs} and {refresh_tag}; with no
# {scripts} placeholder it adds no CDN tags): keep what stands before the first library <script>
# and after the last one's </script>, and put the fresh builds between.
{
  sed -n '/^<script>\/\* vega@/q;p' template.html
  inline vega "$VEGA"
  inline vega-lite "$VEGA_LITE"
  inline vega-embed "$VEGA_EMBED"
  sed '1,/^<script>\/\* vega-embed@/d' template.html | sed '1,/^<\/script>$/d'
} >template.html.tmp
mv template.html.tmp template.html
