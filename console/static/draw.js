// @ts-check
// Polygon and circle drawing by clicks (no draw plugin): polygon = click vertices, then
// Enter/double-click or click the first vertex to close; circle = click centre, click edge.
// Escape cancels. Calls done({geometry, radius_m, layer}) with a GeoJSON geometry (lon, lat).
export function startDrawing(L, map, mode, done, say) {
  const pts = [];
  const preview = mode === 'polygon'
    ? L.polygon([], { color: '#0969da', dashArray: '4 4' }).addTo(map)
    : L.circle(map.getCenter(), { radius: 1, color: '#0969da', dashArray: '4 4' });
  map.doubleClickZoom.disable();
  map.getContainer().classList.add('drawing');
  say(mode === 'polygon' ? 'Click the vertices; Enter or double-click to finish; Esc cancels' : 'Click the centre, then the edge; Esc cancels');

  function finish(cancel) {
    map.off('click', onClick); map.off('dblclick', onDbl); map.off('mousemove', onMove);
    document.removeEventListener('keydown', onKey);
    map.doubleClickZoom.enable();
    map.getContainer().classList.remove('drawing');
    if (cancel) { preview.remove(); say('drawing cancelled'); return; }
    say('saving…');
    if (mode === 'polygon') {
      const ring = pts.map((p) => [p.lng, p.lat]);
      ring.push(ring[0]);
      done({ geometry: { type: 'Polygon', coordinates: [ring] }, layer: preview });
    } else {
      const c = preview.getLatLng();
      done({ geometry: { type: 'Point', coordinates: [c.lng, c.lat] }, radius_m: preview.getRadius(), layer: preview });
    }
  }
  function onClick(e) {
    if (mode === 'polygon') {
      if (pts.length >= 3 && map.latLngToContainerPoint(pts[0]).distanceTo(e.containerPoint) < 10) { finish(false); return; }
      pts.push(e.latlng);
      preview.setLatLngs(pts);
    } else if (!pts.length) {
      pts.push(e.latlng);
      preview.setLatLng(e.latlng).addTo(map);
    } else {
      preview.setRadius(map.distance(pts[0], e.latlng));
      finish(false);
    }
  }
  function onMove(e) {
    if (mode === 'circle' && pts.length) preview.setRadius(map.distance(pts[0], e.latlng));
  }
  function onDbl() { if (mode === 'polygon' && pts.length >= 3) finish(false); }
  function onKey(e) {
    if (e.key === 'Escape') finish(true);
    if (e.key === 'Enter' && mode === 'polygon' && pts.length >= 3) finish(false);
  }
  map.on('click', onClick); map.on('dblclick', onDbl); map.on('mousemove', onMove);
  document.addEventListener('keydown', onKey);
}
