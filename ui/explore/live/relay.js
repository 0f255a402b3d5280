// The relay: a component of its own, a few lines long, so that a server-slider change (which reruns only the server
// sliders' fragment) does not carry the live view's whole script again. It hands the z the server moved to the
// page's live parts (main.js: window.__vaeExplore.fromPython), which move the map's star, and the image decoded there
// (a server slider's), which the "server" part draws.
export default function relay({ data }) {
  if (data && window.__vaeExplore) window.__vaeExplore.fromPython(data.group, data.z, data.z_version, data.image);
}
