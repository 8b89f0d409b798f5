#!/usr/bin/env python3
"""Make the fonts difflab bundles (src/app/fonts.rs):

- assets/fonts/NotoSansSC-difflab.otf: Noto Sans CJK SC cut to the characters difflab can show
  (every character of the lessons, assets/lessons/*/*.md, and of difflab's Rust sources: UI
  labels, and the doc comments that the lessons' formula links show in a popup). egui's default
  fonts have no CJK glyphs; the app falls back to this font for the glyphs they lack.
- assets/fonts/Ubuntu-Light-difflab.ttf: egui's own proportional font (Ubuntu Light) with the
  combining hat and tilde of DejaVu Sans added (x̂, ε̂, β̃, μ̃). egui shapes a base letter and its
  combining marks with the base letter's font, so a mark in a fallback font is never drawn: the
  marks must be in the font that draws x, ε, β. The hat sits at x-height; the tilde higher, to
  clear β. Named "Ubuntu Light derivative difflab" as the Ubuntu Font Licence asks.
- assets/fonts/Hack-difflab.ttf: egui's monospace font (Hack) cut to Latin, Greek, punctuation,
  arrows, mathematical operators, box drawing and the characters difflab shows: the app builds
  its fonts from these files alone (not egui's bundled defaults, which carried a second copy of
  Ubuntu Light), so the browser build downloads each font once and no glyph it never draws.
The test `every_character_of_every_lesson_and_label_has_a_glyph` (tests/app/lessons.rs) fails
when a lesson gains a character this subset lacks: then run this script again.

    apt-get install fonts-noto-cjk fonts-dejavu-core   # Noto Sans CJK (OFL 1.1), DejaVu Sans
    pip install fonttools               # pyftsubset's library
    python3 tools/make_fonts.py      # from the repository root
    python3 tools/make_fonts.py --ubuntu-only   # only the Ubuntu Light derivative
    python3 tools/make_fonts.py --hack-only     # only the Hack subset

The licences travel with the fonts: assets/fonts/OFL.txt and assets/fonts/DejaVu-LICENSE.txt.
"""

import pathlib
import sys

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = pathlib.Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
# The collection's fonts: 0 JP, 1 KR, 2 SC, 3 TC, 4 HK; SC draws Simplified Chinese forms.
SC_INDEX = 2
OUT = ROOT / "assets" / "fonts" / "NotoSansSC-difflab.otf"
MARKS_SOURCE = pathlib.Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
UBUNTU_GLOB = "epaint_default_fonts-0.37.0/fonts/Ubuntu-Light.ttf"
UBUNTU_OUT = ROOT / "assets" / "fonts" / "Ubuntu-Light-difflab.ttf"
HACK_GLOB = "epaint_default_fonts-0.37.0/fonts/Hack-Regular.ttf"
HACK_OUT = ROOT / "assets" / "fonts" / "Hack-difflab.ttf"
# Kept whole in the Hack subset: Latin, Greek, punctuation to mathematical operators, box drawing.
HACK_RANGES = [(0x20, 0x24F), (0x370, 0x3FF), (0x2000, 0x22FF), (0x2500, 0x259F)]
# The combining marks difflab writes, and the height (in em) of each one's lowest point.
MARKS = {0x0302: 0.56, 0x0303: 0.80}
# Ubuntu Light has the superscript digits but not the superscript minus that a power of ten
# such as 4.04 × 10⁻⁵ needs: made from its own minus sign, shrunk as much as its superscript
# digits are against its digits and centred on their height.
SUPERSCRIPT_MINUS = 0x207B


def wanted_characters() -> set[str]:
    chars: set[str] = set()
    files = (sorted((ROOT / "assets" / "lessons").glob("*/*.md")) + sorted((ROOT / "src").rglob("*.rs"))
             + sorted((ROOT / "docs" / "guide").glob("*.md")))
    for path in files:
        chars.update(path.read_text(encoding="utf-8"))
    # ASCII is the default fonts' job; control characters draw nothing.
    return {c for c in chars if ord(c) > 0x7F and c.isprintable()}


def cut(font, chars: list[str], out: pathlib.Path) -> None:
    options = subset.Options()
    options.layout_features = ["kern", "vert", "mark", "mkmk", "ccmp"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.hinting = False
    options.desubroutinize = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in chars])
    subsetter.subset(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    font.save(str(tmp))
    tmp.replace(out)


def default_font(glob: str) -> pathlib.Path:
    registry = pathlib.Path.home() / ".cargo" / "registry" / "src"
    found = sorted(registry.glob("*/" + glob))
    if not found:
        raise SystemExit(f"{glob} not found under {registry}: run `cargo build` first")
    return found[0]


def ubuntu_light() -> pathlib.Path:
    return default_font(UBUNTU_GLOB)


def hack_subset() -> None:
    font = TTFont(str(default_font(HACK_GLOB)))
    cmap = font.getBestCmap()
    chars = {chr(c) for lo, hi in HACK_RANGES for c in range(lo, hi + 1)} | wanted_characters()
    kept = sorted(c for c in chars if ord(c) in cmap)
    cut(font, kept, HACK_OUT)
    print(f"{HACK_OUT.relative_to(ROOT)}: {len(kept)} characters, {HACK_OUT.stat().st_size} bytes")


def add_marks() -> None:
    from fontTools.pens.recordingPen import DecomposingRecordingPen
    from fontTools.pens.transformPen import TransformPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    font = TTFont(str(ubuntu_light()))
    marks = TTFont(str(MARKS_SOURCE))
    upm, marks_upm = font["head"].unitsPerEm, marks["head"].unitsPerEm
    scale = upm / marks_upm
    marks_glyphs = marks.getGlyphSet()
    order = font.getGlyphOrder()
    for cp, bottom_em in MARKS.items():
        source = marks.getBestCmap()[cp]
        rec = DecomposingRecordingPen(marks_glyphs)
        marks_glyphs[source].draw(rec)
        bounds = marks["glyf"][source]
        bounds.recalcBounds(marks["glyf"])
        y_min = (bounds.yMin if not bounds.isComposite() else min(
            y for op, pts in rec.value for (_, y) in pts)) * scale
        pen = TTGlyphPen(None)
        rec.replay(TransformPen(pen, (scale, 0, 0, scale, 0, bottom_em * upm - y_min)))
        name = f"uni{cp:04X}"
        glyph = pen.glyph()
        font["glyf"][name] = glyph
        glyph.recalcBounds(font["glyf"])
        font["hmtx"][name] = (0, glyph.xMin)
        if name not in order:
            order.append(name)
        for table in font["cmap"].tables:
            if table.isUnicode():
                table.cmap[cp] = name
    add_superscript_minus(font, order)
    font.setGlyphOrder(order)
    font["maxp"].numGlyphs = len(order)
    for record in font["name"].names:
        if record.nameID in (1, 3, 4, 6, 16):
            text = record.toUnicode()
            derived = "UbuntuLight-derivative-difflab" if record.nameID == 6 else text.replace(
                "Ubuntu Light", "Ubuntu Light derivative difflab").replace(
                "Ubuntu", "Ubuntu derivative difflab", 1 if "Light" not in text else 0)
            record.string = derived
    tmp = UBUNTU_OUT.with_suffix(".tmp")
    font.save(str(tmp))
    tmp.replace(UBUNTU_OUT)
    print(f"{UBUNTU_OUT.relative_to(ROOT)}: Ubuntu Light + {len(MARKS)} marks + superscript minus, "
          f"{UBUNTU_OUT.stat().st_size} bytes")


def add_superscript_minus(font, order: list[str]) -> None:
    from fontTools.pens.recordingPen import DecomposingRecordingPen
    from fontTools.pens.transformPen import TransformPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    cmap, glyf = font.getBestCmap(), font["glyf"]
    glyphs = font.getGlyphSet()

    def bounds(cp: int):
        g = glyf[cmap[cp]]
        g.recalcBounds(glyf)
        return g.xMin, g.yMin, g.xMax, g.yMax

    _, zero_low, _, zero_high = bounds(ord("0"))
    _, sup_low, _, sup_high = bounds(0x2070)
    scale = (sup_high - sup_low) / (zero_high - zero_low)
    minus = cmap[0x2212]
    x_min, y_min, x_max, y_max = bounds(0x2212)
    advance, _ = font["hmtx"][minus]
    # Shrink about the minus's own centre, then lift that centre to the superscripts' middle.
    cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2
    new_advance = round(advance * scale)
    dx = new_advance / 2 - cx * scale
    dy = (sup_low + sup_high) / 2 - cy * scale
    rec = DecomposingRecordingPen(glyphs)
    glyphs[minus].draw(rec)
    pen = TTGlyphPen(None)
    rec.replay(TransformPen(pen, (scale, 0, 0, scale, dx, dy)))
    name = f"uni{SUPERSCRIPT_MINUS:04X}"
    glyph = pen.glyph()
    glyf[name] = glyph
    glyph.recalcBounds(glyf)
    font["hmtx"][name] = (new_advance, glyph.xMin)
    if name not in order:
        order.append(name)
    for table in font["cmap"].tables:
        if table.isUnicode():
            table.cmap[SUPERSCRIPT_MINUS] = name


def main() -> int:
    if sys.argv[1:] == ["--hack-only"]:
        hack_subset()
        return 0
    if sys.argv[1:] == ["--ubuntu-only"]:
        # Only the Ubuntu Light derivative (no Noto CJK needed).
        if not MARKS_SOURCE.exists():
            print(f"{MARKS_SOURCE} not found: apt-get install fonts-dejavu-core", file=sys.stderr)
            return 2
        add_marks()
        return 0
    for path, package in ((SOURCE, "fonts-noto-cjk"), (MARKS_SOURCE, "fonts-dejavu-core")):
        if not path.exists():
            print(f"{path} not found: apt-get install {package}", file=sys.stderr)
            return 2
    chars = wanted_characters()
    font = TTCollection(str(SOURCE)).fonts[SC_INDEX]
    cmap = font.getBestCmap()
    kept = sorted(c for c in chars if ord(c) in cmap)
    cut(font, kept, OUT)
    cjk = sum(1 for c in kept if 0x4E00 <= ord(c) <= 0x9FFF)
    print(f"{OUT.relative_to(ROOT)}: {len(kept)} characters ({cjk} Han), {OUT.stat().st_size} bytes")
    add_marks()
    hack_subset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
