"""The HTML page of a scene: <model-viewer> with AR, hotspot labels, legend, QR code.

Pure string building (the QR code is computed, not fetched). The page loads the
model-viewer component from the app itself (no CDN), the GLB for the browser, WebXR and
Android's Scene Viewer, and the USDZ for iOS Quick Look.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import dataclass
from html import escape

from ar_viewer.model import Scene

MODEL_VIEWER_JS = "/ar/static/model-viewer.min.js"
# The page's one inline script (marks the body when the model has loaded); the CSP allows
# it by its hash and no other inline script.
LOADED_SCRIPT = """
 const v = document.getElementById('viewer');
 v.addEventListener('load', () => document.body.dataset.modelLoaded = 'yes');
 v.addEventListener('error', (e) => document.body.dataset.modelLoaded = 'error');
"""


def content_security_policy() -> str:
    """The page's CSP: scripts from the app and the hashed inline one; model-viewer reads
    the model and textures through blob: and data: URLs."""
    digest = base64.b64encode(hashlib.sha256(LOADED_SCRIPT.encode()).digest()).decode()
    return (
        f"default-src 'self'; script-src 'self' 'sha256-{digest}'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self' data: blob:; worker-src 'self' blob:; media-src 'self' data: blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@dataclass(frozen=True, slots=True)
class PageLinks:
    glb_url: str
    usdz_url: str
    png_url: str
    page_url: str  # absolute: what the QR code opens on a phone
    account_url_template: str = "/api/v1/accounts/{id}"  # "" for no links (share pages)


def qr_svg(url: str) -> str:
    """An inline SVG QR code of url (no XML declaration, scalable)."""
    import qrcode
    import qrcode.image.svg

    img = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    buf = io.BytesIO()
    img.save(buf)
    svg = buf.getvalue().decode()
    svg = re.sub(r"^<\?xml[^>]*>\s*", "", svg)
    return svg.replace(
        "<svg ", '<svg role="img" aria-label="QR code of this AR view" class="qr" ', 1
    )


def render_page(scene: Scene, links: PageLinks) -> str:
    hotspots = []
    for i, label in enumerate(scene.labels):
        x, y, z = label.position_m
        link = ""
        if label.account_id is not None and links.account_url_template:
            href = links.account_url_template.format(id=label.account_id)
            link = f' <a href="{escape(href)}">account</a>'
        hotspots.append(
            f'<button class="hotspot" slot="hotspot-{i}" data-position="{x:.4f} {y + 0.01:.4f} {z:.4f}" '
            f'data-normal="0 1 0" data-visibility-attribute="visible">'
            f'<span class="label"><b>{escape(label.text)}</b><br>{escape(label.detail)}{link}</span></button>'
        )
    groups: dict[str, list[str]] = {}
    for e in scene.legend:
        groups.setdefault(e.group, []).append(
            f'<li><span class="swatch" style="background:{e.hex}"></span>{escape(e.meaning)}</li>'
        )
    legend = "".join(
        f"<h2>{escape(g)}</h2><ul>{''.join(items)}</ul>" for g, items in groups.items()
    )
    issues = ""
    if scene.issues:
        rows = "".join(
            f"<li><b>{escape(i.kind.replace('_', ' '))}</b> {escape(i.subject)} ({escape(i.field)}): {escape(i.message)}</li>"
            for i in scene.issues[:200]
        )
        more = f"<p>and {len(scene.issues) - 200} more</p>" if len(scene.issues) > 200 else ""
        issues = f'<details id="issues"><summary>{len(scene.issues)} data problem(s)</summary><ul>{rows}</ul>{more}</details>'
    stats = ", ".join(f"{k}: {v}" for k, v in scene.stats.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(scene.title)} · fieldmesh AR</title>
<script type="module" src="{MODEL_VIEWER_JS}"></script>
<style>
 body {{ margin:0; font:14px system-ui, sans-serif; display:flex; height:100vh; background:#fafafa; }}
 main {{ flex:1; display:flex; }}
 model-viewer {{ flex:1; height:100vh; background:#ffffff; --poster-color:#ffffff; }}
 aside {{ width:300px; padding:12px; overflow:auto; border-left:1px solid #ddd; }}
 h1 {{ font-size:17px; margin:0 0 6px; }} h2 {{ font-size:13px; margin:10px 0 4px; text-transform:capitalize; }}
 /* a phone (where a customer opens the link): the scene on top at the screen's width, the
    legend under it; side by side it was a sliver 65 px wide beside a 300 px legend */
 @media (max-width: 700px) {{
   body {{ flex-direction:column; height:auto; }}
   main {{ flex:none; }}
   model-viewer {{ height:65vh; }}
   aside {{ width:auto; border-left:0; border-top:1px solid #ddd; }}
 }}
 ul {{ list-style:none; padding:0; margin:0; }} li {{ margin:2px 0; }}
 .swatch {{ display:inline-block; width:14px; height:14px; margin-right:6px; vertical-align:middle; border:1px solid #0003; }}
 .hotspot {{ background:#fff; border:1px solid #333; border-radius:10px; width:12px; height:12px; padding:0; position:relative; }}
 .hotspot .label {{ display:none; position:absolute; left:14px; top:-6px; background:#fff; border:1px solid #999;
   border-radius:4px; padding:4px 6px; white-space:nowrap; font-size:12px; }}
 .hotspot:hover .label, .hotspot:focus .label {{ display:block; }}
 .qr {{ width:160px; height:160px; }} .small {{ color:#555; font-size:12px; }}
 #ar-button {{ position:absolute; bottom:16px; left:16px; padding:10px 14px; font-size:15px; }}
</style></head>
<body>
<main>
<model-viewer id="viewer" src="{escape(links.glb_url)}" ios-src="{escape(links.usdz_url)}" poster="{escape(links.png_url)}"
  alt="{escape(scene.title)}" ar ar-modes="webxr scene-viewer quick-look" ar-placement="floor" ar-scale="auto"
  camera-controls touch-action="pan-y" shadow-intensity="0.6" exposure="1.0" environment-image="neutral"
  camera-orbit="{"30deg 55deg auto" if scene.kind == "territory" else "35deg 70deg auto"}">
  {"".join(hotspots)}
  <button slot="ar-button" id="ar-button">View in your space</button>
</model-viewer>
</main>
<aside>
 <h1>{escape(scene.title)}</h1>
 <p class="small">{escape(scene.scale_note)}</p>
 {legend}
 {issues}
 <h2>Open on a phone</h2>
 {qr_svg(links.page_url)}
 <p class="small"><a href="{escape(links.glb_url)}">GLB</a> · <a href="{escape(links.usdz_url)}">USDZ</a> ·
 <a href="{escape(links.png_url)}">PNG</a></p>
 <p class="small">{escape(stats)}</p>
</aside>
<script type="module">{LOADED_SCRIPT}</script>
</body></html>
"""
