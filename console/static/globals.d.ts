// The parts of Leaflet 1.9.4 (a classic script setting the global `L`; the npm package ships
// no types) that the console uses. Declared loosely: options stay open records.

type LatLngLike = [number, number] | LeafletLatLng;

interface LeafletLatLng { lat: number; lng: number }
interface LeafletPoint { x: number; y: number; distanceTo(other: LeafletPoint): number }
interface LeafletBounds { pad(ratio: number): LeafletBounds }

interface LeafletEvented {
  on(type: string, fn: (e: any) => void): this;
  off(type: string, fn?: (e: any) => void): this;
}

interface LeafletLayer extends LeafletEvented {
  options: Record<string, any>;
  addTo(target: LeafletMap | LeafletFeatureGroup): this;
  remove(): this;
  bindTooltip(content: string | ((layer: LeafletLayer) => string), options?: Record<string, any>): this;
  openTooltip(): this;
  getElement?(): HTMLElement | SVGElement | undefined;
}

interface LeafletPath extends LeafletLayer { setStyle(style: Record<string, any>): this }
interface LeafletCircleMarker extends LeafletPath {
  setLatLng(ll: LatLngLike): this;
  getLatLng(): LeafletLatLng;
  setRadius(r: number): this;
  getRadius(): number;
}
interface LeafletPolyline extends LeafletPath { setLatLngs(lls: LatLngLike[]): this }
interface LeafletMarker extends LeafletLayer { getLatLng(): LeafletLatLng }
interface LeafletFeatureGroup extends LeafletPath { clearLayers(): this }
interface LeafletControl { addTo(map: LeafletMap): this }
interface LeafletHandler { enable(): this; disable(): this }

interface LeafletMap extends LeafletEvented {
  setView(center: LatLngLike, zoom: number, options?: Record<string, any>): this;
  fitBounds(bounds: LeafletBounds, options?: Record<string, any>): this;
  getCenter(): LeafletLatLng;
  getContainer(): HTMLElement;
  latLngToContainerPoint(ll: LatLngLike): LeafletPoint;
  distance(a: LatLngLike, b: LatLngLike): number;
  doubleClickZoom: LeafletHandler;
  getZoom(): number;
  flyTo?(center: LatLngLike, zoom?: number): this;
  remove(): this;
  createPane(name: string): HTMLElement;
  invalidateSize(): this;
}

interface LeafletStatic {
  map(el: HTMLElement, options?: Record<string, any>): LeafletMap;
  tileLayer(url: string, options?: Record<string, any>): LeafletLayer;
  featureGroup(layers?: LeafletLayer[]): LeafletFeatureGroup;
  geoJSON(data: any, options?: Record<string, any>): LeafletFeatureGroup;
  circleMarker(ll: LatLngLike, options?: Record<string, any>): LeafletCircleMarker;
  circle(ll: LatLngLike, options?: Record<string, any>): LeafletCircleMarker;
  marker(ll: LatLngLike, options?: Record<string, any>): LeafletMarker;
  polygon(lls: LatLngLike[], options?: Record<string, any>): LeafletPolyline;
  polyline(lls: LatLngLike[], options?: Record<string, any>): LeafletPolyline;
  divIcon(options: Record<string, any>): unknown;
  canvas(options?: Record<string, any>): unknown;
  svg(options?: Record<string, any>): unknown;
  markerClusterGroup?(options?: Record<string, any>): LeafletClusterGroup;
  latLngBounds(lls: LatLngLike[]): LeafletBounds;
  control: {
    layers(base: Record<string, LeafletLayer> | null, overlays: Record<string, LeafletLayer>): LeafletControl;
    scale(options?: Record<string, any>): LeafletControl;
  };
}

interface LeafletClusterGroup extends LeafletFeatureGroup {
  addLayers(layers: LeafletLayer[]): this;
  getChildCount?(): number;
}

interface Window {
  L?: LeafletStatic;
  // topojson-client 3 (UMD global): TopoJSON to GeoJSON
  topojson?: { feature(topology: any, object: any): any };
}

// The audio worklet's scope (capture-worklet.js), which TypeScript's libraries do not declare.
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
}
declare function registerProcessor(name: string, processor: new () => AudioWorkletProcessor): void;
