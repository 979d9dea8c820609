// The masklet web page: open an image or a video, click to segment, track, export.
// Plain ES modules and canvases; every mask comes from the HTTP API as COCO RLE.
import { request, frameBitmap, propagate, authHeaders } from "./api.js";
import { decodeRle } from "./rle.js";

// object colours come from the server (GET /v1/colors, and each mask record's `color`): one
// Python function (masklet.io.overlay.object_color) colours the page and every export
const COLORS = new Map();    // id -> "#rrggbb"
const FALLBACK_COLOR = "#808080";
async function loadColors() {
  try {
    const colors = await request("GET", "/v1/colors?count=256");
    for (const [id, color] of Object.entries(colors)) COLORS.set(Number(id), color);
  } catch (e) { /* the masks' own colours still arrive with every result */ }
}
const defaultColor = (id) => COLORS.get(id) || FALLBACK_COLOR;
const MASK_ALPHA = 0.5;
const DRAG_PIXELS = 6;       // a press that moves farther than this is a box, not a click
const FRAME_CACHE = 48;      // decoded frame bitmaps kept for scrubbing
const FOLLOW_MS = 150;       // while tracking, show the newest frame at most this often

const $ = (id) => document.getElementById(id);
const frameCanvas = $("frame"), overlay = $("overlay");
const state = {
  mode: null,               // "image" | "video"
  imageFile: null, image: null,
  session: null,            // SessionInfo of the video session
  frame: 0, playing: null,
  objects: [], active: null, nextId: 1,
  prompts: new Map(),       // `${frame}:${objId}` -> {points: [[x, y]], labels: [], box}
  masks: new Map(),         // frame -> Map(objId -> {rle, pixels})
  frames: new Map(),        // frame -> ImageBitmap (LRU)
  tracking: null,           // AbortController while propagating
  lastShown: 0,
};

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function colorOf(id) {
  const obj = state.objects.find((o) => o.id === id);
  return obj ? obj.color : defaultColor(id);
}

// ---- objects --------------------------------------------------------------------------

function addObject() {
  const id = state.nextId++;
  state.objects.push({ id, name: `object_${id}`, color: defaultColor(id) });
  state.active = id;
  renderObjects();
}

async function removeObject(id) {
  if (state.mode === "video" && state.session) {
    try { await request("DELETE", `/v1/sessions/${state.session.id}/objects/${id}`); }
    catch (e) { if (e.status !== 404) return status(e.message, true); }
  }
  state.objects = state.objects.filter((o) => o.id !== id);
  for (const key of [...state.prompts.keys()]) if (key.endsWith(`:${id}`)) state.prompts.delete(key);
  for (const masks of state.masks.values()) masks.delete(id);
  if (state.active === id) state.active = state.objects.length ? state.objects[0].id : null;
  renderObjects();
  if (state.mode === "image") await segmentImage(); else draw();
}

function renderObjects() {
  const list = $("objects");
  list.replaceChildren();
  for (const obj of state.objects) {
    const li = document.createElement("li");
    li.classList.toggle("active", obj.id === state.active);
    li.dataset.id = obj.id;
    const color = Object.assign(document.createElement("input"), { type: "color", value: obj.color });
    color.oninput = () => { obj.color = color.value; draw(); };
    const name = Object.assign(document.createElement("input"), { type: "text", value: obj.name });
    name.onchange = () => renameObject(obj, name.value.trim() || obj.name);
    const remove = Object.assign(document.createElement("button"), { textContent: "✕", title: "remove" });
    remove.onclick = (event) => { event.stopPropagation(); removeObject(obj.id); };
    li.onclick = () => { state.active = obj.id; renderObjects(); };
    li.append(color, name, remove);
    list.append(li);
  }
}

async function renameObject(obj, name) {
  obj.name = name;
  if (state.mode !== "video" || !state.session) return;
  try { await request("PATCH", `/v1/sessions/${state.session.id}/objects/${obj.id}`, { name }); }
  catch (e) { if (e.status !== 404) status(e.message, true); }  // 404: no prompt yet
}

// ---- drawing --------------------------------------------------------------------------

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function draw() {
  const w = overlay.width, h = overlay.height;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  if (!w || !h) return;
  const masks = state.masks.get(state.frame);
  if (masks && masks.size) {
    const image = ctx.createImageData(w, h);
    for (const [id, m] of masks) {
      if (!m.pixels) m.pixels = decodeRle(m.rle);
      if (m.pixels.length !== w * h) continue;
      const [r, g, b] = hexToRgb(colorOf(id));
      for (let i = 0; i < m.pixels.length; i++) {
        if (!m.pixels[i]) continue;
        image.data[4 * i] = r; image.data[4 * i + 1] = g; image.data[4 * i + 2] = b;
        image.data[4 * i + 3] = 255 * MASK_ALPHA;
      }
    }
    ctx.putImageData(image, 0, 0);
  }
  const radius = Math.max(3, Math.min(w, h) / 120);
  for (const [key, p] of state.prompts) {
    const [frame, id] = key.split(":").map(Number);
    if (frame !== state.frame) continue;
    if (p.box && !p.quiet) {  // a region's box prompt is not drawn: its mask shows it
      ctx.strokeStyle = colorOf(id); ctx.lineWidth = Math.max(1, radius / 2);
      ctx.strokeRect(p.box[0], p.box[1], p.box[2] - p.box[0], p.box[3] - p.box[1]);
    }
    p.points.forEach(([x, y], k) => {
      ctx.beginPath(); ctx.arc(x, y, radius, 0, 2 * Math.PI);
      ctx.fillStyle = p.labels[k] ? "#00ff00" : "#ff0000"; ctx.fill();
      ctx.lineWidth = 1; ctx.strokeStyle = "#fff"; ctx.stroke();
    });
  }
}

function setSize(w, h) {
  for (const c of [frameCanvas, overlay]) { c.width = w; c.height = h; }
  fitStage();
}

// show the picture as large as the page allows, small ones scaled up too (the overlay covers
// the frame canvas, and clicks map through its on-screen box, so any scale works)
function fitStage() {
  const w = frameCanvas.width, h = frameCanvas.height;
  if (!w || !h) { frameCanvas.style.width = frameCanvas.style.height = ""; return; }
  const scale = Math.min($("stage-wrap").clientWidth / w, (window.innerHeight * 0.72) / h);
  frameCanvas.style.width = `${Math.floor(w * scale)}px`;
  frameCanvas.style.height = `${Math.floor(h * scale)}px`;
}
window.addEventListener("resize", fitStage);

function storeMasks(frame, objects) {
  const masks = new Map();
  for (const o of objects) {
    if (o.color && !COLORS.has(o.id)) COLORS.set(o.id, o.color);
    if (o.area > 0) masks.set(o.id, { rle: o.mask, pixels: null });
  }
  state.masks.set(frame, masks);
}

async function showFrame(index) {
  if (!state.session) return;
  const n = state.session.num_frames;
  index = Math.max(0, Math.min(n - 1, index));
  state.frame = index;
  $("slider").value = index;
  $("frame-label").textContent = `${index} / ${n - 1}`;
  let bitmap = state.frames.get(index);
  if (!bitmap) {
    bitmap = await frameBitmap(state.session.id, index);
    state.frames.set(index, bitmap);
    if (state.frames.size > FRAME_CACHE) state.frames.delete(state.frames.keys().next().value);
  }
  if (state.frame !== index) return;  // a newer request won
  frameCanvas.getContext("2d").drawImage(bitmap, 0, 0);
  draw();
}

// ---- opening files --------------------------------------------------------------------

function reset() {
  stopPlaying();
  Object.assign(state, { session: null, image: null, imageFile: null, frame: 0, objects: [],
    active: null, nextId: 1 });
  state.prompts.clear(); state.masks.clear(); state.frames.clear();
  addObject();
}

async function openFile(file) {
  if (state.session) request("DELETE", `/v1/sessions/${state.session.id}`).catch(() => {});
  reset();
  const video = file.type.startsWith("video/") || /\.(mp4|mov|mkv|webm|avi)$/i.test(file.name);
  $("player").hidden = $("video-tools").hidden = $("exports-video").hidden = !video;
  $("exports-image").hidden = video;
  try {
    if (video) await openVideo(file); else await openImage(file);
  } catch (e) {
    // nothing usable is open: no stale picture, no tools that would act on nothing
    reset();
    state.mode = null;
    $("player").hidden = $("video-tools").hidden = true;
    $("exports-video").hidden = $("exports-image").hidden = true;
    setSize(0, 0);
    status(e.message, true);
  }
}

async function openImage(file) {
  state.mode = "image";
  state.imageFile = file;
  try { state.image = await createImageBitmap(file); }
  catch (_) { throw new Error(await serverImageError(file)); }
  setSize(state.image.width, state.image.height);
  frameCanvas.getContext("2d").drawImage(state.image, 0, 0);
  draw();
  status(`${file.name}: ${state.image.width}×${state.image.height}. Click the object.`);
}

// the browser cannot decode the file: show what the server says about it (it names the
// problem and the formats it reads), not the browser's generic decode message
async function serverImageError(file) {
  const form = new FormData();
  form.append("image", file);
  form.append("prompts", JSON.stringify({ objects: [{ id: 1, points: [[0, 0]] }] }));
  try { await request("POST", "/v1/images:segment", form); }
  catch (e) { return e.message; }
  return `${file.name}: this browser cannot show this image; convert it to PNG or JPEG`;
}

async function openVideo(file) {
  state.mode = "video";
  status(`uploading ${file.name}…`);
  const form = new FormData();
  form.append("video", file);
  state.session = await request("POST", "/v1/sessions", form);
  const s = state.session;
  setSize(s.width, s.height);
  $("slider").max = s.num_frames - 1;
  await showFrame(0);
  status(`${s.num_frames} frames, ${s.width}×${s.height} at ${s.fps.toFixed(2)} fps. Click the object.`);
}

// ---- prompts --------------------------------------------------------------------------

function promptOf(frame, id) {
  const key = `${frame}:${id}`;
  if (!state.prompts.has(key)) state.prompts.set(key, { points: [], labels: [], box: null });
  return state.prompts.get(key);
}

async function addPrompt(point, label, box) {
  if (!state.mode) return;
  if (state.active === null) addObject();
  const p = promptOf(state.frame, state.active);
  if (box) { p.box = box; } else { p.points.push(point); p.labels.push(label); }
  draw();
  try {
    if (state.mode === "image") await segmentImage(); else await sendVideoPrompt(state.frame, state.active);
  } catch (e) { status(e.message, true); }
}

function imagePrompts(outputs = []) {
  const objects = [];
  for (const obj of state.objects) {
    const p = state.prompts.get(`0:${obj.id}`);
    if (!p || (!p.points.length && !p.box)) continue;
    const entry = { id: obj.id, name: obj.name };
    if (p.points.length) { entry.points = p.points; entry.labels = p.labels; }
    if (p.box) entry.box = p.box;
    objects.push(entry);
  }
  return { objects, outputs };
}

async function segmentImage(outputs = []) {
  const prompts = imagePrompts(outputs);
  if (!prompts.objects.length) { state.masks.delete(0); draw(); return null; }
  const form = new FormData();
  form.append("image", state.imageFile);
  form.append("prompts", JSON.stringify(prompts));
  status("segmenting…");
  const result = await request("POST", "/v1/images:segment", form);
  storeMasks(0, result.objects);
  draw();
  status(result.objects.map((o) => `${o.name || "object_" + o.id}: score ${o.score.toFixed(2)}`).join(" · "));
  return result;
}

async function sendVideoPrompt(frame, id) {
  const p = promptOf(frame, id);
  const obj = state.objects.find((o) => o.id === id);
  const body = { frame, object_id: id, name: obj ? obj.name : undefined };
  if (p.points.length) { body.points = p.points; body.labels = p.labels; }
  if (p.box) body.box = p.box;
  status("segmenting…");
  const result = await request("POST", `/v1/sessions/${state.session.id}/prompts`, body);
  storeMasks(result.frame, result.objects);
  if (state.frame === result.frame) draw();
  status(`frame ${frame}: masks updated. Press t to track.`);
}

// ---- text prompts -------------------------------------------------------------------

// Objects the server found (a text prompt's boxes, segment everything's regions) join the
// list under the server's ids and names; a local object with the same id but no prompt yet
// (the empty object_1 of a fresh page) is taken over. `promptFor(found)` is the object's
// prompt on the page: later clicks are added to it.
function adoptFound(frame, found, promptFor) {
  for (const d of found) {
    const obj = state.objects.find((o) => o.id === d.id);
    if (obj) obj.name = d.name;
    else state.objects.push({ id: d.id, name: d.name, color: defaultColor(d.id) });
    Object.assign(promptOf(frame, d.id), { points: [], labels: [], box: null, quiet: false }, promptFor(d));
    state.nextId = Math.max(state.nextId, d.id + 1);
  }
  if (found.length) state.active = found[0].id;
  renderObjects();
}

// the detector's box is a text object's prompt
const adoptDetections = (frame, detections) => adoptFound(frame, detections, (d) => ({ box: d.box }));

async function findText() {
  const text = $("text-prompt").value.trim();
  if (!state.mode) return status("open an image or a video first", true);
  if (!text) return status("type what to find, e.g. “a dog. a red car.”", true);
  status(`finding “${text}”…`);
  $("find").disabled = true;
  try {
    let frame = 0, result;
    if (state.mode === "image") {
      const form = new FormData();
      form.append("image", state.imageFile);
      form.append("prompts", JSON.stringify({ ...imagePrompts(), text }));
      result = await request("POST", "/v1/images:segment", form);
      result.added = result.detections;
    } else {
      frame = state.frame;
      result = await request("POST", `/v1/sessions/${state.session.id}/text`, { frame, text });
    }
    adoptDetections(frame, result.added);
    storeMasks(frame, result.objects);
    if (state.frame === frame) draw();
    const names = result.added.map((d) => `${d.name} (${d.score.toFixed(2)})`).join(", ");
    status(result.added.length ? `found ${names}` : `nothing found for “${text}”`);
  } catch (e) { status(e.message, true); }
  finally { $("find").disabled = false; }
}

// ---- segment everything -------------------------------------------------------------

// What the page asks for: the numbers in "settings". Their defaults are the reference's, made
// for the official models; the server says when nothing passes them (see everythingDone).
function everythingSettings() {
  return {
    points_per_side: Math.round(Number($("everything-points").value)),
    pred_iou_thresh: Number($("everything-iou").value),
    stability_score_thresh: Number($("everything-stability").value),
  };
}

// Every region found on the picture (or the frame shown) that no object covers becomes an
// object. On an image its prompt is its box (not drawn: clicks refine it, and the image is
// segmented again from the prompts); on a video frame the server keeps the region's mask as
// its prompt, so clicks there correct the mask itself.
async function segmentEverything() {
  if (!state.mode) return status("open an image or a video first", true);
  const settings = everythingSettings();
  status("segmenting everything…");
  $("segment-everything").disabled = true;
  try {
    let frame = 0, result, added;
    if (state.mode === "image") {
      const prompts = imagePrompts();
      const form = new FormData();
      form.append("image", state.imageFile);
      form.append("prompts", JSON.stringify({ ...prompts, everything: settings }));
      result = await request("POST", "/v1/images:segment", form);
      const given = new Set(prompts.objects.map((o) => o.id));
      // a region's box has inclusive ends; a box prompt has exclusive ones
      added = result.objects.filter((o) => !given.has(o.id)).map((o) => ({
        id: o.id, name: o.name, score: o.score, box: [o.box[0], o.box[1], o.box[2] + 1, o.box[3] + 1],
      }));
      adoptFound(frame, added, (d) => ({ box: d.box, quiet: true }));
    } else {
      frame = state.frame;
      result = await request("POST", `/v1/sessions/${state.session.id}/everything`, { frame, ...settings });
      added = result.added;
      adoptFound(frame, added, () => ({}));
    }
    storeMasks(frame, result.objects);
    if (state.frame === frame) draw();
    if (added.length) status(`found ${added.length} regions: ${added.map((d) => d.name).join(", ")}`);
    else status(`no new region: none passed min quality ${settings.pred_iou_thresh} and min `
      + `stability ${settings.stability_score_thresh}, or objects cover them (try lower values in settings)`);
  } catch (e) { status(e.message, true); }
  finally { $("segment-everything").disabled = false; }
}

async function clearFrame() {
  const id = state.active;
  if (id === null || !state.prompts.has(`${state.frame}:${id}`)) return;
  state.prompts.delete(`${state.frame}:${id}`);
  try {
    if (state.mode === "image") { await segmentImage(); return; }
    const result = await request("POST", `/v1/sessions/${state.session.id}/clear`,
      { frame: state.frame, object_id: id });
    storeMasks(result.frame, result.objects);
    draw();
  } catch (e) { status(e.message, true); }
}

// ---- mouse ----------------------------------------------------------------------------

let press = null;

function toPixels(event) {
  const r = overlay.getBoundingClientRect();
  return [(event.clientX - r.left) * overlay.width / r.width,
          (event.clientY - r.top) * overlay.height / r.height];
}

overlay.addEventListener("contextmenu", (event) => event.preventDefault());
overlay.addEventListener("mousedown", (event) => {
  press = { start: toPixels(event), screen: [event.clientX, event.clientY],
    label: event.button === 2 || event.shiftKey ? 0 : 1 };
});
overlay.addEventListener("mouseup", (event) => {
  if (!press) return;
  const [x0, y0] = press.start, [x1, y1] = toPixels(event);
  const moved = Math.hypot(event.clientX - press.screen[0], event.clientY - press.screen[1]);
  const label = press.label;
  press = null;
  const clamp = (v, hi) => Math.max(0, Math.min(hi, v));
  if (moved > DRAG_PIXELS) {
    const box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
    addPrompt(null, 1, [clamp(box[0], overlay.width), clamp(box[1], overlay.height),
      clamp(box[2], overlay.width), clamp(box[3], overlay.height)].map(Math.round));
  } else {
    addPrompt([Math.round(clamp(x0, overlay.width)), Math.round(clamp(y0, overlay.height))], label, null);
  }
});

// ---- tracking -------------------------------------------------------------------------

async function track() {
  if (state.mode !== "video" || state.tracking) return;
  state.tracking = new AbortController();
  $("track").disabled = true; $("cancel").disabled = false;
  $("progress").value = 0;
  try {
    await propagate(state.session.id, { direction: $("direction").value }, onTrackEvent,
      state.tracking.signal);
  } catch (e) {
    if (e.name !== "AbortError") status(e.message, true);
  } finally {
    state.tracking = null;
    $("track").disabled = false; $("cancel").disabled = true;
  }
}

function onTrackEvent(name, data) {
  if (name === "start") status(`tracking ${data.total} frames…`);
  else if (name === "frame") {
    storeMasks(data.frame, data.objects);
    state.lastTracked = data.frame;
    $("progress").value = data.done / data.total;
    const now = performance.now();
    if (data.frame === state.frame) draw();
    else if (now - state.lastShown > FOLLOW_MS) { state.lastShown = now; showFrame(data.frame); }
  } else if (name === "done" || name === "cancelled") {
    // following is throttled: end on the last tracked frame, not on one shown before it
    if (state.lastTracked !== undefined && state.frame !== state.lastTracked) showFrame(state.lastTracked);
  }
  if (name === "done") {
    $("progress").value = 1;
    status(`tracked ${data.frames} frames in ${data.seconds.toFixed(1)} s. Click a frame to correct, then track again.`);
  } else if (name === "cancelled") status(`cancelled after ${data.frames} frames`);
  else if (name === "error") status(data.message, true);
}

async function cancelTrack() {
  if (!state.tracking) return;
  try { await request("POST", `/v1/sessions/${state.session.id}/cancel`); } catch (_) { /* gone */ }
}

// ---- player ---------------------------------------------------------------------------

function stopPlaying() {
  if (state.playing) clearInterval(state.playing);
  state.playing = null;
  $("play").textContent = "▶";
}

function togglePlay() {
  if (state.mode !== "video") return;
  if (state.playing) return stopPlaying();
  $("play").textContent = "⏸";
  state.playing = setInterval(() => {
    if (state.frame >= state.session.num_frames - 1) return stopPlaying();
    showFrame(state.frame + 1).catch((e) => status(e.message, true));
  }, 1000 / Math.min(state.session.fps || 10, 30));
}

// ---- export ---------------------------------------------------------------------------

function download(url, name) {
  const a = Object.assign(document.createElement("a"), { href: url, download: name || "" });
  document.body.append(a); a.click(); a.remove();
}

async function exportVideo(format) {
  if (!state.session) return;
  status(`exporting ${format}…`);
  const colors = Object.fromEntries(state.objects.map((o) => [o.id, o.color]));
  try {
    const result = await request("POST", `/v1/sessions/${state.session.id}/export`, { format, colors });
    download(result.url);
    status(`exported ${format}`);
  } catch (e) { status(e.message, true); }
}

async function exportImage(kind) {
  try {
    const result = await segmentImage([kind]);
    if (!result) return status("click an object first", true);
    const data = kind === "overlay" ? result.overlay_png : result.id_mask_png;
    download(`data:image/png;base64,${data}`, `${kind}.png`);
  } catch (e) { status(e.message, true); }
}

// ---- wiring ---------------------------------------------------------------------------

$("file").onchange = (event) => {
  const file = event.target.files[0];
  event.target.value = "";  // choosing the same file again (e.g. after entering a key) reopens it
  if (file) openFile(file);
};
$("add-object").onclick = addObject;
$("text-find").onsubmit = (event) => { event.preventDefault(); findText(); };
$("everything").onsubmit = (event) => { event.preventDefault(); segmentEverything(); };
$("track").onclick = track;
$("cancel").onclick = cancelTrack;
$("play").onclick = togglePlay;
$("prev").onclick = () => showFrame(state.frame - 1);
$("next").onclick = () => showFrame(state.frame + 1);
$("slider").oninput = (event) => showFrame(Number(event.target.value));
for (const b of document.querySelectorAll("[data-export]")) b.onclick = () => exportVideo(b.dataset.export);
for (const b of document.querySelectorAll("[data-image-export]")) b.onclick = () => exportImage(b.dataset.imageExport);
// the key lives for this tab (sessionStorage); "remember" keeps it in localStorage as well
const KEY_NAME = "masklet-api-key";
$("remember-key").checked = localStorage.getItem(KEY_NAME) !== null;
$("api-key").value = sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || "";
function storeKey() {
  const key = $("api-key").value.trim();
  sessionStorage.setItem(KEY_NAME, key);
  if ($("remember-key").checked) localStorage.setItem(KEY_NAME, key);
  else localStorage.removeItem(KEY_NAME);
}
$("api-key").onchange = storeKey;
$("remember-key").onchange = storeKey;

// the server keeps a session until its idle TTL: delete it when the page goes away (reload,
// close, navigation). keepalive lets the request outlive the page; sendBeacon cannot DELETE.
window.addEventListener("pagehide", () => {
  if (!state.session) return;
  fetch(`/v1/sessions/${state.session.id}`, { method: "DELETE", keepalive: true,
                                              headers: authHeaders() }).catch(() => {});
});

document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" && event.target.type !== "range") return;
  const keys = {
    " ": togglePlay, ArrowLeft: () => showFrame(state.frame - 1),
    ArrowRight: () => showFrame(state.frame + 1), n: addObject, t: track, Escape: cancelTrack,
    Delete: () => state.active !== null && removeObject(state.active), c: clearFrame,
  };
  const action = keys[event.key];
  if (action) { event.preventDefault(); action(); }
});

// for tests and scripting: the page's state (read-only use)
window.masklet = { state, openFile };
reset();
loadColors().then(() => {
  for (const obj of state.objects) if (obj.color === FALLBACK_COLOR) obj.color = defaultColor(obj.id);
  renderObjects();
});
