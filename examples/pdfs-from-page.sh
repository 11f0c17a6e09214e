#!/bin/sh
# Download every PDF a web page links to, 16 at a time, as the links are found:
# fetchq reads its list from the pipe and starts downloading before grep ends.
#
#   ./pdfs-from-page.sh https://example.org/papers.html
set -eu
page=${1:?usage: pdfs-from-page.sh PAGE-URL}
curl -fsS "$page" | grep -o 'https://[^"]*\.pdf' | fetchq -j 16 -d pdfs
