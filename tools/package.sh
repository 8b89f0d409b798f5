#!/usr/bin/env bash
# difflab's desktop packages, by one command; the packages' paths are the last lines printed.
#
#   tools/package.sh           this system's packages: on Linux a .deb and an AppImage, on macOS
#                              the .app and a .dmg, on Windows an NSIS installer (cargo packager)
#   tools/package.sh zip       a Windows zip (difflab.exe, the licences, a README), cross-built
#                              here with mingw-w64 (tools/cross.sh windows)
#   tools/package.sh check-deb install the .deb with apt, run `difflab --version` from the PATH,
#                              open the app under Xvfb from the installed files (a screenshot),
#                              remove it and check that nothing it installed is left
#
# The binary is built with the release profile (PACKAGE_PROFILE=dev packages the dev build, which
# is optimised too: quicker where it is already built). cargo-packager is installed from
# crates.io under ../tools-bin/packager when missing. Its AppImage and NSIS steps download their
# tools (linuxdeploy, NSIS plugins) from GitHub: a machine that cannot reach GitHub makes the
# .deb and says that the AppImage could not be made (exit 4).
set -euo pipefail
cd "$(dirname "$0")/.."
parent=$(cd .. && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$parent/target}"
profile="${PACKAGE_PROFILE:-release}"
dir=$profile
[ "$dir" = dev ] && dir=debug
out="${PACKAGE_OUT:-$CARGO_TARGET_DIR/packages}"
tools="${PACKAGE_TOOLS_DIR:-$parent/tools-bin/packager}"
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)

say() { printf 'package.sh: %s\n' "$*" >&2; }

packager() {
    local bin
    bin=$(command -v cargo-packager || true)
    [ -n "$bin" ] || bin="$tools/bin/cargo-packager"
    if [ ! -x "$bin" ]; then
        say "installing cargo-packager under $tools"
        cargo install cargo-packager --locked --root "$tools" >&2
    fi
    "$bin" packager "$@"
}

# The binary, stripped, where cargo packager looks for it: $out/stage/release (the packager
# takes binaries from `<cargo target dir>/<profile>`, so it runs with that stage as its target
# dir).
staged_binary() {
    local exe=difflab
    case "$(uname -s)" in MINGW* | MSYS* | CYGWIN*) exe=difflab.exe ;; esac
    cargo build --locked --profile "$profile" --bin difflab >&2
    local stage="$out/stage/release"
    mkdir -p "$stage"
    cp "$CARGO_TARGET_DIR/$dir/$exe" "$stage/$exe.new"
    if command -v strip >/dev/null && [ "$(uname -s)" = Linux ]; then
        strip --strip-all "$stage/$exe.new"
    fi
    mv "$stage/$exe.new" "$stage/$exe"
}

native() {
    staged_binary
    local formats
    case "$(uname -s)" in
        Linux) formats=(deb appimage) ;;
        Darwin) formats=(app dmg) ;;
        *) formats=(nsis) ;;
    esac
    local made=() failed=()
    for f in "${formats[@]}"; do
        say "making the $f package"
        if CARGO_TARGET_DIR="$out/stage" packager --release --formats "$f" --out-dir "$out" >&2; then
            made+=("$f")
        else
            failed+=("$f")
        fi
    done
    for f in "$out"/*.deb "$out"/*.AppImage "$out"/*.dmg "$out"/*.app "$out"/*-setup.exe; do
        [ -e "$f" ] && say "$(basename "$f"): $(du -sh "$f" | cut -f1)"
    done
    if [ ${#failed[@]} -gt 0 ]; then
        say "could not make: ${failed[*]} (made: ${made[*]:-none}); the AppImage and NSIS steps download tools from GitHub"
        find "$out" -maxdepth 1 \( -name '*.deb' -o -name '*.AppImage' -o -name '*.dmg' -o -name '*-setup.exe' \)
        exit 4
    fi
    find "$out" -maxdepth 1 \( -name '*.deb' -o -name '*.AppImage' -o -name '*.dmg' -o -name '*.app' -o -name '*-setup.exe' \)
}

windows_zip() {
    local exe name stage
    exe=$(CARGO_TARGET_DIR="$CARGO_TARGET_DIR" bash tools/cross.sh windows | tail -n 1)
    name="difflab-$version-x86_64-windows"
    stage="$out/$name"
    rm -rf "$stage"
    mkdir -p "$stage/licences"
    cp "$exe" "$stage/difflab.exe"
    x86_64-w64-mingw32-strip --strip-debug "$stage/difflab.exe" 2>/dev/null || true
    cp assets/fonts/*.txt "$stage/licences/"
    cp assets/mnist/README.md "$stage/licences/mnist.md"
    cat > "$stage/README.txt" <<EOF
difflab $version (Diffusion Lab) for Windows 10 and 11, 64-bit.

Double-click difflab.exe to open the app. In a terminal, "difflab.exe --help" lists the
command-line tools (difflab.exe sample, schedule, train ...).

difflab is licensed under MIT OR Apache-2.0. The MNIST digits inside it are CC BY-SA 3.0; the
fonts' licences are in the licences folder. The user guide: the app's Help menu.
EOF
    (cd "$out" && rm -f "$name.zip" && python3 -m zipfile -c "$name.zip" "$name")
    say "$name.zip: $(du -sh "$out/$name.zip" | cut -f1)"
    echo "$out/$name.zip"
}

check_deb() {
    local deb
    deb=$(find "$out" -maxdepth 1 -name '*.deb' | head -n 1)
    [ -n "$deb" ] || { say "no .deb in $out: run tools/package.sh first"; exit 2; }
    say "installing $deb"
    apt-get install -y -qq "$(realpath "$deb")" >&2
    local pkg files
    pkg=$(dpkg-deb -f "$deb" Package)
    files=$(dpkg -L "$pkg")
    command -v difflab | grep -q '^/usr/bin/difflab$' || { say "FAIL: difflab is not on the PATH"; exit 1; }
    say "from the PATH: $(cd / && difflab --version)"
    if command -v Xvfb >/dev/null; then
        local display=:97 shot="$out/installed-app"
        Xvfb "$display" -screen 0 1280x860x24 >/dev/null 2>&1 &
        local xvfb=$!
        sleep 1
        # From / and a fresh HOME: nothing from the source tree is in reach.
        local home
        home=$(mktemp -d)
        (cd / && HOME="$home" DISPLAY="$display" difflab gui --fresh >"$shot.log" 2>&1) &
        local app=$!
        sleep 12
        if kill -0 "$app" 2>/dev/null; then
            command -v xwd >/dev/null && xwd -root -silent -display "$display" >"$shot.xwd" || true
            say "the installed app opened (screenshot $shot.xwd)"
            kill "$app"
        else
            say "FAIL: the installed app exited: $(tail -n 3 "$shot.log")"
            kill "$xvfb"
            exit 1
        fi
        kill "$xvfb" 2>/dev/null || true
        rm -rf "$home"
    fi
    say "removing $pkg"
    apt-get remove -y -qq "$pkg" >&2
    local left=()
    while IFS= read -r f; do
        # Folders the system owns (/usr, /usr/share/...) stay; the package's own files go.
        [ -f "$f" ] || [ -L "$f" ] && left+=("$f")
    done <<<"$files"
    if [ ${#left[@]} -gt 0 ]; then
        say "FAIL: left behind: ${left[*]}"
        exit 1
    fi
    say "the .deb installs, runs from the PATH, opens, and removes cleanly"
}

case "${1:-native}" in
    native) native ;;
    zip) windows_zip ;;
    check-deb) check_deb ;;
    *) say "usage: tools/package.sh [native | zip | check-deb]"; exit 2 ;;
esac
