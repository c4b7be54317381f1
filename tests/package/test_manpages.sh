#!/usr/bin/env bash
# The man pages as built (man/): every option `polymur --help` lists is in polymur(8),
# polymur-proxy(8) and polymur-gateway(8), every option a file may set is in polymur.conf(5), every
# `polymur lookup --help` option is in polymur(8)'s LOOKUP section, and man renders them without
# a warning.
#   test_manpages.sh BUILD_DIR
set -euo pipefail
build=$1
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }

render() {  # the page as a reader sees it, in plain ASCII
    LC_ALL=C MANWIDTH=120 MAN_KEEP_FORMATTING= man --warnings -E ascii -l "$1" 2>"$build/man/warnings.txt" | col -bx
}
options_of() {  # the long options of a --help text, one per line, without dashes
    sed -nE 's/^  (-[a-zA-Z] \[ )?--([a-z][a-z0-9-]*).*/\2/p' | sort -u
}

main_options=$("$build/polymur" --help | options_of)
lookup_options=$("$build/polymur" lookup --help | options_of)
[ "$(wc -l <<<"$main_options")" -gt 30 ] || fail "polymur --help lists only $(wc -l <<<"$main_options") options"
[ "$(wc -l <<<"$lookup_options")" -ge 5 ] || fail "polymur lookup --help lists only $(wc -l <<<"$lookup_options") options"

for page in polymur.8 polymur-proxy.8 polymur-gateway.8 polymur.conf.5; do
    file="$build/man/$page.gz"
    [ -s "$file" ] || { fail "$file was not built"; continue; }
    gzip -t "$file" || fail "$file is not gzip"
    text=$(render "$file")
    [ ! -s "$build/man/warnings.txt" ] || fail "$page: man warns: $(cat "$build/man/warnings.txt")"
    for section in NAME SYNOPSIS DESCRIPTION OPTIONS "SEE ALSO"; do
        grep -q "^$section\$" <<<"$text" || fail "$page has no $section section"
    done
    missing=()
    while read -r option; do
        if [ "$page" = polymur.conf.5 ]; then
            case $option in help|version|config|check-config) continue ;; esac
            grep -qE "^ +$option = " <<<"$text" || missing+=("$option")
        else
            grep -qE -- "^ +(-[a-zA-Z], )?--$option(=|\\[| |\$)" <<<"$text" || missing+=("--$option")
        fi
    done <<<"$main_options"
    ((${#missing[@]} == 0)) || fail "$page lacks options that --help lists: ${missing[*]}"
done

lookup_section=$(render "$build/man/polymur.8.gz" | sed -n '/^LOOKUP$/,/^[A-Z]/p')
missing=()
while read -r option; do
    grep -qE -- "^ +(-[a-zA-Z], )?--$option(=|\\[| |\$)" <<<"$lookup_section" || missing+=("--$option")
done <<<"$lookup_options"
((${#missing[@]} == 0)) || fail "polymur.8's LOOKUP section lacks: ${missing[*]}"

echo "$failures failed"
[ "$failures" = 0 ]
