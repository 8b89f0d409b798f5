#!/bin/sh
# RUSTC_WRAPPER for Debian's rustc-web (1.85) in tools/web.sh: difflab and some dependencies use
# let chains (stable since Rust 1.88), and dependencies other features stable after 1.85 (uuid's
# const `eq_ignore_ascii_case`, `is_multiple_of`, burn-std's `[T; _]`, `as_chunks` and trait
# upcasting, fearless_simd's `cfg(false)`), which 1.85 has behind feature gates. Turn the gates
# on for every crate except the standard library's own (built from source by -Zbuild-std), which
# already turns them on. (egui 0.37 then needs `VecDeque::pop_front_if`, which 1.85's standard
# library does not have at all: docs/web.md.)
rustc="$1"
shift
case " $* " in
    *" /usr/lib/rustlib/src/"* | *"/usr/lib/rustlib/src/rust/library/"*) exec "$rustc" "$@" ;;
esac
for arg in "$@"; do
    # `rustc -vV` and other queries without a source file.
    case "$arg" in *.rs) exec "$rustc" "$@" -Zcrate-attr='feature(let_chains)' \
        -Zcrate-attr='feature(const_eq_ignore_ascii_case)' -Zcrate-attr='feature(unsigned_is_multiple_of)' \
        -Zcrate-attr='feature(generic_arg_infer)' -Zcrate-attr='feature(slice_as_chunks)' \
        -Zcrate-attr='feature(trait_upcasting)' -Zcrate-attr='feature(cfg_boolean_literals)' ;; esac
done
exec "$rustc" "$@"
