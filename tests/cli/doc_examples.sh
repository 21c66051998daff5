#!/bin/sh
# Runs every "$ mltrain ..." example of the ```console blocks of a Markdown file and compares its
# output (stdout and stderr together) with the lines that follow it in the block.
# usage: doc_examples.sh MLTRAIN_BINARY DOC.md
set -u
bin=$1
doc=$2
tmp=${TMPDIR:-/tmp}/mt_doc_examples.$$
mkdir -p "$tmp" || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
count=0
in_block=0
cmd=
: >"$tmp/expected"

run_example() {
    [ -n "$cmd" ] || return 0
    count=$((count + 1))
    # the command line is shell-quoted in the document: let the shell split it
    eval "set -- ${cmd#mltrain }"
    "$bin" "$@" >"$tmp/actual" 2>&1
    if ! cmp -s "$tmp/expected" "$tmp/actual"; then
        fails=$((fails + 1))
        echo "FAIL: \$ $cmd"
        echo "--- expected"
        cat "$tmp/expected"
        echo "--- actual"
        cat "$tmp/actual"
    fi
    cmd=
    : >"$tmp/expected"
}

while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
    '```console')
        in_block=1
        continue
        ;;
    '```')
        if [ $in_block = 1 ]; then
            run_example
            in_block=0
        fi
        continue
        ;;
    esac
    [ $in_block = 1 ] || continue
    case "$line" in
    '$ mltrain '*)
        run_example
        cmd=${line#\$ }
        ;;
    *)
        printf '%s\n' "$line" >>"$tmp/expected"
        ;;
    esac
done <"$doc"

echo "$count examples, $fails failed"
[ "$count" -gt 0 ] && [ "$fails" = 0 ]
