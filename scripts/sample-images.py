# ruff: noqa: E501  (the scenes are HTML markup, one element a line)
"""Draw the bundled sample images (examples/assets/) with Debian's Chromium.

The sample articles are fictional, so are their pictures: flat illustrations
drawn in HTML/CSS, each stamped "CONTOH" (example). Run from the repository:

    .venv/bin/python scripts/sample-images.py

Needs /usr/bin/chromium (scripts/system-deps.sh installs it) and Playwright
(the test extras). The images are committed; run this only to change them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "examples" / "assets"
CHROMIUM = "/usr/bin/chromium"

STAMP = (
    '<div style="position:absolute;right:14px;bottom:12px;padding:4px 10px;'
    "background:rgba(0,0,0,.55);color:#fff;font:bold 15px sans-serif;letter-spacing:2px;"
    'border-radius:4px">CONTOH · ILUSTRASI</div>'
)

SCENES: dict[str, str] = {
    # Balikpapan: an exhibition hall with stalls and bunting
    "pameran-umkm-balikpapan.jpg": """
<div style="position:absolute;inset:0;background:linear-gradient(#fde7c0,#f6c177)"></div>
<div style="position:absolute;left:0;right:0;top:40px;height:28px;background:repeating-linear-gradient(
  90deg,#d7263d 0 40px,#fff 40px 80px)"></div>
<div style="position:absolute;left:0;right:0;bottom:0;height:110px;background:#8d5524"></div>
<div style="position:absolute;left:40px;bottom:90px;width:160px;height:140px;background:#1b998b"></div>
<div style="position:absolute;left:40px;bottom:210px;width:160px;height:30px;background:#2e294e"></div>
<div style="position:absolute;left:240px;bottom:90px;width:160px;height:140px;background:#f46036"></div>
<div style="position:absolute;left:240px;bottom:210px;width:160px;height:30px;background:#2e294e"></div>
<div style="position:absolute;left:440px;bottom:90px;width:160px;height:140px;background:#e2c044"></div>
<div style="position:absolute;left:440px;bottom:210px;width:160px;height:30px;background:#2e294e"></div>
<div style="position:absolute;left:70px;bottom:120px;width:100px;height:40px;border-radius:20px;background:#fff8"></div>
<div style="position:absolute;left:270px;bottom:120px;width:100px;height:40px;border-radius:20px;background:#fff8"></div>
<div style="position:absolute;left:470px;bottom:120px;width:100px;height:40px;border-radius:20px;background:#fff8"></div>
""",
    # Malang: masks on a stage under lights
    "festival-topeng-polowijen.jpg": """
<div style="position:absolute;inset:0;background:radial-gradient(circle at 50% 20%,#5b2a86,#1a0b2e)"></div>
<div style="position:absolute;left:0;right:0;bottom:0;height:90px;background:#6b3e26"></div>
<div style="position:absolute;left:120px;top:90px;width:120px;height:160px;border-radius:60px 60px 70px 70px;
  background:#f2f2f2;box-shadow:0 0 40px #ffd16688"></div>
<div style="position:absolute;left:145px;top:140px;width:24px;height:12px;border-radius:50%;background:#111"></div>
<div style="position:absolute;left:191px;top:140px;width:24px;height:12px;border-radius:50%;background:#111"></div>
<div style="position:absolute;left:160px;top:200px;width:40px;height:10px;border-radius:5px;background:#c1121f"></div>
<div style="position:absolute;left:380px;top:90px;width:120px;height:160px;border-radius:60px 60px 70px 70px;
  background:#c1121f;box-shadow:0 0 40px #ffd16688"></div>
<div style="position:absolute;left:405px;top:140px;width:24px;height:12px;border-radius:50%;background:#111"></div>
<div style="position:absolute;left:451px;top:140px;width:24px;height:12px;border-radius:50%;background:#111"></div>
<div style="position:absolute;left:420px;top:200px;width:40px;height:10px;border-radius:5px;background:#ffd166"></div>
""",
    # Jayapura: a beach with bags of collected rubbish
    "bersih-pantai-hamadi.jpg": """
<div style="position:absolute;inset:0;background:linear-gradient(#8ecae6,#dff3fb)"></div>
<div style="position:absolute;left:0;right:0;top:150px;height:80px;background:linear-gradient(#219ebc,#126782)"></div>
<div style="position:absolute;left:0;right:0;bottom:0;height:140px;background:#f4d8a4"></div>
<div style="position:absolute;left:470px;top:40px;width:70px;height:70px;border-radius:50%;background:#ffb703"></div>
<div style="position:absolute;left:90px;bottom:60px;width:70px;height:80px;border-radius:30px 30px 12px 12px;background:#333"></div>
<div style="position:absolute;left:180px;bottom:50px;width:80px;height:90px;border-radius:30px 30px 12px 12px;background:#2b2d42"></div>
<div style="position:absolute;left:280px;bottom:60px;width:70px;height:75px;border-radius:30px 30px 12px 12px;background:#3a5a40"></div>
""",
    # Bontang: mangroves and a boardwalk
    "bontang-mangrove.jpg": """
<div style="position:absolute;inset:0;background:linear-gradient(#cde7b0,#f1f7e7)"></div>
<div style="position:absolute;left:0;right:0;bottom:0;height:120px;background:linear-gradient(#4f772d,#31572c)"></div>
<div style="position:absolute;left:-40px;top:70px;width:260px;height:190px;border-radius:50%;background:#2d6a4f"></div>
<div style="position:absolute;left:170px;top:40px;width:300px;height:220px;border-radius:50%;background:#40916c"></div>
<div style="position:absolute;left:420px;top:80px;width:260px;height:180px;border-radius:50%;background:#1b4332"></div>
<div style="position:absolute;left:0;right:0;bottom:70px;height:22px;background:#b08968"></div>
<div style="position:absolute;left:0;right:0;bottom:40px;height:30px;background:repeating-linear-gradient(
  90deg,#7f5539 0 8px,transparent 8px 80px)"></div>
""",
    # Samarinda: chillies at a market stall
    "pasar-segiri.jpg": """
<div style="position:absolute;inset:0;background:linear-gradient(#ffe8d6,#ddbea9)"></div>
<div style="position:absolute;left:0;right:0;top:0;height:70px;background:repeating-linear-gradient(
  90deg,#2a9d8f 0 60px,#e9f5db 60px 120px)"></div>
<div style="position:absolute;left:40px;right:40px;bottom:40px;height:120px;background:#7f5539;border-radius:8px"></div>
<div style="position:absolute;left:70px;bottom:120px;width:220px;height:110px;border-radius:50%;background:
  repeating-radial-gradient(circle at 30% 40%,#d00000 0 10px,#9d0208 10px 18px)"></div>
<div style="position:absolute;left:340px;bottom:120px;width:220px;height:110px;border-radius:50%;background:
  repeating-radial-gradient(circle at 60% 50%,#2b9348 0 10px,#007f5f 10px 18px)"></div>
""",
}

LOGO = """
<div style="display:inline-flex;align-items:center;gap:10px;padding:6px 14px;font:800 34px sans-serif;
  background:#fff;border-radius:10px">
  <span style="display:inline-block;width:40px;height:40px;border-radius:50%;
    background:conic-gradient(#d7263d 0 50%,#fff 50% 100%);border:2px solid #d7263d"></span>
  <span style="color:#1d3557">Nusantara</span><span style="color:#d7263d">Plus</span>
</div>
"""


def page(body: str, stamp: bool) -> str:
    """One scene in a 640×360 frame."""
    return (
        "<!doctype html><html><body style='margin:0'>"
        "<div style='position:relative;width:640px;height:360px;overflow:hidden'>"
        f"{body}{STAMP if stamp else ''}</div></body></html>"
    )


def main() -> int:
    """Write every image; print what was written."""
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 640, "height": 360})
        for name, body in SCENES.items():
            tab.set_content(page(body, stamp=True))
            tab.screenshot(path=str(OUT / name), type="jpeg", quality=80)
            print(OUT / name)
        tab.set_content(f"<!doctype html><html><body style='margin:0'>{LOGO}</body></html>")
        logo = tab.locator("div").first
        logo.screenshot(path=str(OUT / "logo.png"), omit_background=True)
        print(OUT / "logo.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
