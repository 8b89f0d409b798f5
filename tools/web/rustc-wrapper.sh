#!/bin/sh
# RUSTC_WRAPPER for Debian's rustc-web (1.85) in tools/web.sh: difflab and some dependencies use
# let chains (stable since Rust 1.88), which 1.85 has behind a feature gate. Turn the gate on
# for every crate except the standard library's own (built from source by -Zbuild-std), which
# already turns it on.
rustc="$1"
shift
case " $* " in
    *" /usr/lib/rustlib/src/"* | *"/usr/lib/rustlib/src/rust/library/"*) exec "$rustc" "$@" ;;
esac
for arg in "$@"; do
    # `rustc -vV` and other queries without a source file.
    case "$arg" in *.rs) exec "$rustc" "$@" -Zcrate-attr='feature(let_chains)' ;; esac
done
exec "$rustc" "$@"
